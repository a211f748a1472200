"""A finished study read back from MLflow, and its Pareto front as a table.

The exporter and the terminal report need the trials' final values, their knobs and the study's settings after the
driver is gone; MLflow is the one record that holds all of them (the parent run's tags and flattened config, one
child run per trial). The front is recomputed here from the final objective values with `study.pareto`, not read
from the `pareto` tags, so it is right even for a study whose driver died before it last updated them.
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
from study.pareto import pareto_front_mask
from study.tracking.parent_run import child_runs, readable_parent_run, redact_uri
from trainables.methods.registry import ADAPTERS, Knob, get_variant
from trainables.metrics.mmie import gates_verdict, verdict_label
from trainables.trial.status import STATUS_TAG, TrialStatus


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
        # The same precedence as the Unlearner: a variant that is an adapter (sine_bounded) logs no adapter param.
        return get_variant(self.variant).adapter or self.params.get("adapter", "lora")

    def knob_specs(self) -> tuple[Knob, ...]:
        variant = get_variant(self.variant)
        return variant.knobs() if variant.adapter else variant.knobs() + ADAPTERS.get(self.adapter).knobs

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


def front_table(record: StudyRecord, completed_only: bool = True) -> list[dict]:
    """The Pareto front's trials as rows, sorted by the first objective, highest first. `completed_only=False` also
    ranks trials still running or stopped early, on their latest values (a look at a study in progress)."""
    trials = ranked_trials(record, completed_only)
    if not trials:
        return []
    mask = pareto_front_mask(metric_points(trials, record.objectives))
    front = [t for t, on_front in zip(trials, mask) if on_front]
    first = record.objectives[0]
    front.sort(key=lambda t: (-t.metrics[first], t.trial_id))
    return [_row(record, t) for t in front]


def _row(record: StudyRecord, trial: TrialRecord) -> dict:
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "variant": trial.variant,
        "adapter": trial.adapter,
        **{o: trial.metrics[o] for o in record.objectives},
        "mmie_gates": gates_verdict(trial.metrics),
        "mmie_verdict": verdict_label(trial.metrics),
        **{m: trial.metrics[m] for m in FRONT_METRICS if m in trial.metrics and m not in record.objectives},
        **trial.knobs(),
    }


def format_front(rows: list[dict]) -> str:
    """A plain-text table; knob columns are the union over rows (variants have different knobs), '-' where absent."""
    if not rows:
        return "(no trial on the front)"
    columns = list(dict.fromkeys(c for row in rows for c in row))

    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    cells = [[cell(row[c]) if c in row else "-" for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = [columns, *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)
