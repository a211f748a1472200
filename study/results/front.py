"""A finished study read back from MLflow, and its Pareto front as rows and as a table.

The exporter and the terminal report need the trials' final values, their knobs and the study's settings after the
driver is gone; MLflow is the one record that holds all of them (the parent run's tags and flattened config, one
child run per trial). The front is recomputed here from the final objective values with `study.pareto.build_front`,
not read from the `pareto` tags, so it is right even for a study whose driver died before it last updated them.
A trial is one row (`trial_row`) here and in the driver's live recorder (study.tracking.front_recorder), so the
table, `pareto_front.json`, `unlearn-study front` and the views (study.results.front_views) show the same columns.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import trainables.methods.variants  # noqa: F401  (registers every variant and adapter)
from study.eligibility import FrontRule
from study.oracle import FRONT_METRICS
from study.pareto import Front, build_front
from study.results.table import cell, format_table
from study.tracking.parent_run import child_runs, readable_parent_run, redact_uri
from trainables.methods.registry import Knob, get_variant
from trainables.metrics.mmie import gates_verdict, verdict_label
from trainables.trial.status import FINAL_STATUSES, STATUS_TAG, TrialStatus


def parse_value(text: str) -> Any:
    """An MLflow param (always a string) as the int or float it was logged from, else the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass
class TrialRecord:
    """One trial's child run: its settings (numbers as numbers) and final metric values."""

    run_id: str
    trial_id: str
    status: TrialStatus
    params: dict[str, Any]
    metrics: dict[str, float]
    pareto: bool
    pareto_rank: int | None

    @property
    def variant(self) -> str:
        return self.params["variant"]

    @property
    def adapter(self) -> str:
        return get_variant(self.variant).adapter_of(self.params)

    def knob_specs(self) -> tuple[Knob, ...]:
        return get_variant(self.variant).knobs_with([self.adapter])

    def knobs(self) -> dict[str, Any]:
        """Every knob of the trial's variant and adapter; a knob it did not log ran at its default."""
        return {k.name: self.params.get(k.name, k.default) for k in self.knob_specs()}


@dataclass
class StudyRecord:
    """One study run (a parent run) and its trials, in the order they started."""

    study: str
    tracking_uri: str
    parent_run_id: str
    objectives: list[str]
    steps: int
    seed: int
    config: dict[str, str]  # the flattened study config as logged (strings: paths and hashes stay verbatim)
    trials: list[TrialRecord] = field(default_factory=list)
    parent_status: str = ""  # the parent run's MLflow status (FINISHED, RUNNING, ...)
    parent_metrics: dict[str, float] = field(default_factory=dict)  # the study's own figures (the oracle's)

    def describe(self) -> str:
        """Which parent run this is, for a read command to say what it took."""
        return (f"study {self.study!r}: parent run {self.parent_run_id} ({self.parent_status}, "
                f"{len(self.trials)} trials) at {redact_uri(self.tracking_uri)}")

    @property
    def utility_floor(self) -> float | None:
        value = self.config.get("utility_floor", "None")
        return None if value == "None" else float(value)

    def front_rule(self, include_diverged: bool | None = None, include_degenerate: bool | None = None) -> FrontRule:
        """The study's own rule (its config's `front:` settings), with either inclusion overridden."""
        def flag(key: str, override: bool | None) -> bool:
            return override if override is not None else self.config.get(f"front.{key}", "False") == "True"

        return FrontRule(tuple(self.objectives), self.utility_floor, flag("include_diverged", include_diverged),
                         flag("include_degenerate", include_degenerate))


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def load_study(tracking_uri: str, study: str, parent_run_id: str | None = None, log=_warn) -> StudyRecord:
    """Read a study from MLflow: its latest finished parent run with trials (or `parent_run_id`; see
    `study.tracking.parent_run.readable_parent_run`) and every trial under it."""
    client = MlflowClient(tracking_uri)
    parent = _parent_run(client, tracking_uri, study, parent_run_id, log)
    tags = parent.data.tags
    missing = [t for t in ("objectives", "study_steps", "study_seed") if t not in tags]
    if missing:
        raise ValueError(f"parent run {parent.info.run_id} of study {study!r} at {tracking_uri} lacks tags {missing}")
    return StudyRecord(
        study=study,
        tracking_uri=tracking_uri,
        parent_run_id=parent.info.run_id,
        objectives=tags["objectives"].split(","),
        steps=int(tags["study_steps"]),
        seed=int(tags["study_seed"]),
        config=dict(parent.data.params),
        trials=[_trial(run) for run in child_runs(client, parent.info.experiment_id, parent.info.run_id)],
        parent_status=parent.info.status,
        parent_metrics=dict(parent.data.metrics),
    )


def _parent_run(client: MlflowClient, uri: str, study: str, parent_run_id: str | None, log):
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        raise ValueError(f"no study {study!r} (MLflow experiment) at tracking URI {redact_uri(uri)}")
    if parent_run_id is None:
        return readable_parent_run(uri, study, log)
    try:
        run = client.get_run(parent_run_id)
    except MlflowException:
        run = None
    if run is None or run.info.experiment_id != experiment.experiment_id or run.data.tags.get("role") != "study":
        raise ValueError(f"no parent run {parent_run_id!r} in study {study!r} at tracking URI {redact_uri(uri)}")
    return run


def _status(run) -> TrialStatus:
    tag = run.data.tags.get(STATUS_TAG, TrialStatus.RUNNING)
    try:
        return TrialStatus(tag)
    except ValueError:
        raise ValueError(f"MLflow run {run.info.run_id}: tag {STATUS_TAG}={tag!r} is not a trial status "
                         f"({', '.join(TrialStatus)})") from None


def _trial(run) -> TrialRecord:
    tags = run.data.tags
    rank = tags.get("pareto_rank", "none")
    return TrialRecord(
        run_id=run.info.run_id,
        trial_id=tags.get("trial_id", run.info.run_id),
        status=_status(run),
        params={k: parse_value(v) for k, v in run.data.params.items()},
        metrics=dict(run.data.metrics),  # MLflow keeps each metric's value at its latest step here
        pareto=tags.get("pareto") == "true",
        pareto_rank=None if rank == "none" else int(rank),
    )


def metric_points(trials: list[TrialRecord], names: list[str]) -> np.ndarray:
    """The trials' final values of `names` as an (n, k) array; a missing value is NaN."""
    values = [[t.metrics.get(m, math.nan) for m in names] for t in trials]
    return np.array(values, dtype=float).reshape(len(trials), len(names))


def ranked_trials(record: StudyRecord, completed_only: bool = True, rule: FrontRule | None = None) -> list[TrialRecord]:
    """The trials the front is made of, by `rule` (default: the study's own, study.eligibility): final values
    (unless `completed_only` is False), finite objectives, at or above the utility floor, neither diverged nor
    degenerate unless the study includes them."""
    rule = rule or record.front_rule()
    return [t for t in record.trials if rule.ranks(t.status, t.metrics, final_only=completed_only)]


def robustness_metrics(metrics: dict) -> dict[str, float]:
    """The robustness figures a trial has: the relearning attack's (study.oracle.FRONT_METRICS) and the worst case
    over attackers (`worst_*`, where an audit logged them); whatever of them exists."""
    worst = {k: v for k, v in metrics.items() if k.startswith("worst_") and not k.rsplit("_", 1)[-1].isdigit()}
    return {**{m: metrics[m] for m in FRONT_METRICS if m in metrics}, **dict(sorted(worst.items()))}


def trial_row(trial_id: str, status: str, variant: str, adapter: str, metrics: dict, objectives, knobs: dict) -> dict:
    """One trial as the front shows it, live (study.tracking.front_recorder) and read back: its objectives,
    mmie.py's gates, the degenerate and diverged flags, its robustness figures and its knobs."""
    row = {"trial_id": trial_id, "status": str(status), "variant": variant, "adapter": adapter,
           **{o: metrics.get(o) for o in objectives}, "mmie_gates": gates_verdict(metrics),
           "mmie_verdict": verdict_label(metrics), "degenerate": bool(metrics.get("degenerate")), "diverged": str(status) == TrialStatus.DIVERGED}
    row.update({k: v for k, v in robustness_metrics(metrics).items() if k not in row})
    row.update({k: v for k, v in knobs.items() if k not in row})
    return row


def finite(row: dict, objectives) -> bool:
    """Whether a row has a finite value of every objective (what a plot can place)."""
    return all(isinstance(row.get(o), (int, float)) and math.isfinite(row[o]) for o in objectives)


def front_of_rows(rows: list[dict], objectives) -> Front:
    """The front over trial rows (`trial_row`), every member marked `knee` (bool) and given its `knee_distance`
    (study.pareto.knee: the distance to the ideal point; None for one that did not unlearn)."""
    front = build_front(rows, objectives)
    for i, row in enumerate(front.items):
        on_front = front.ranks[i] == 0
        row["knee"] = front.knee is not None and front.knee.index == i
        distance = front.knee.distance_of(i) if front.knee is not None and on_front else math.nan
        row["knee_distance"] = None if math.isnan(distance) else round(distance, 4)
    return front


def study_front(record: StudyRecord, completed_only: bool = True) -> tuple[Front, list[dict]]:
    """The study's front over its ranked trials (as rows), and the finished trials it leaves out, each row with
    its reason (`excluded`): what the views draw apart."""
    rule = record.front_rule()
    rows, excluded = [], []
    for t in record.trials:
        row = _row(record, t)
        reason = rule.exclusion(t.status, t.metrics, final_only=completed_only)
        if reason is None:
            rows.append(row)
        elif t.status in FINAL_STATUSES and finite(row, record.objectives):
            excluded.append({**row, "excluded": reason})
    return front_of_rows(rows, record.objectives), excluded


def front_table(record: StudyRecord, completed_only: bool = True) -> list[dict]:
    """The Pareto front's trials as rows, sorted by the first objective, highest first. `completed_only=False` also
    ranks trials still running or stopped early, on their latest values (a look at a study in progress)."""
    front, _ = study_front(record, completed_only)
    return sort_rows(front.member_items(), record.objectives)


def sort_rows(rows: list[dict], objectives) -> list[dict]:
    return sorted(rows, key=lambda r: (-r[objectives[0]], r["trial_id"]))


def _row(record: StudyRecord, trial: TrialRecord) -> dict:
    return trial_row(trial.trial_id, trial.status, trial.variant, trial.adapter, trial.metrics, record.objectives,
                     trial.knobs())


# Short names for a 100-character terminal; `--format csv|json` keeps the full ones.
SHORT = {"forget_efficacy": "forget", "xlang_utility": "xlang", "relearn_forget_efficacy": "relearn_fe",
         "mmie_gates": "gates", "knee_distance": "d_ideal", "worst_relearn_excess": "worst_excess",
         "relearn_excess": "rl_excess"}
TERMINAL = 100


def compact_rows(rows: list[dict], objectives) -> list[dict]:
    """The front's rows as `unlearn-study front` prints them: the knee marked '*', the objectives, the distance to
    the ideal point, the gates, the flags that are set, the worst-case robustness where there is one, the knobs
    in one column."""
    fixed = {"trial_id", "status", "variant", "adapter", "knee", "knee_distance", "mmie_gates", "degenerate",
             "diverged", *objectives}
    out = []
    for r in rows:
        flags = ",".join(f for f in ("degenerate", "diverged") if r.get(f))
        robust = {k: r[k] for k in ("worst_relearn_excess", "relearn_excess") if r.get(k) is not None}
        knobs = " ".join(f"{k}={cell(v)}" for k, v in r.items() if k not in fixed and k not in robust
                         and not k.startswith(("relearn_", "worst_")))
        out.append({"": "*" if r.get("knee") else "", "trial": r["trial_id"], "variant": r["variant"],
                    **{o: r[o] for o in objectives}, "knee_distance": r.get("knee_distance"),
                    "mmie_gates": r["mmie_gates"], "flags": flags or None, **robust, "knobs": knobs or None})
    return out


def format_front(rows: list[dict], objectives=None, width: int | None = TERMINAL) -> str:
    """The front as a compact table (`compact_rows`) cut to `width` characters; without `objectives`, every
    column of the rows as they are (no width)."""
    if objectives is None:
        return format_table(rows, empty="(no trial on the front)")
    return format_table(compact_rows(rows, objectives), SHORT, width, empty="(no trial on the front)")


def knee_line(record: StudyRecord) -> str:
    """Why the knee is the knee, and the rule (study.pareto.knee), for the terminal."""
    front, _ = study_front(record)
    if front.knee is None:
        return "(no ranked trial: no knee)"
    import textwrap

    lines = (front.knee.why([r["trial_id"] for r in front.items]), front.knee.rule())
    return "\n".join(textwrap.fill(line, TERMINAL, subsequent_indent="  ") for line in lines)


def front_csv(rows: list[dict]) -> str:
    """Every column of every row, for scripts (`front --format csv`)."""
    import csv
    import io

    columns = list(dict.fromkeys(c for row in rows for c in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (str(v) if isinstance(v, TrialStatus) else v) for k, v in r.items()} for r in rows)
    return out.getvalue()
