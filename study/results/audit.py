"""The worst-case robustness audit of a study's front (trainables.metrics.attack_sweep), against the oracle.

Each audited trial (the front's knee first, then the other members) is rebuilt from its last checkpoint in the
driver, attacked by every attacker of the grid, and its run gets the worst case (`worst_relearn_forget_efficacy`,
`worst_relearn_es_forget`, `worst_relearn_share_back`, `worst_relearn_excess`; tags `worst_attack`,
`worst_attack_at`), each attack's figures (`attack/<attack>/...`), its curves and a plot beside the oracle's
(`robustness.png`). The retain-only oracle goes through the same grid once; the parent run gets `oracle_worst_*`,
`oracle_attack/<attack>/...` and the tag `oracle_worst_attack`. It runs at the end of a study (`robustness.audit`)
and on a finished one (`unlearn-study audit`).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from study.config import StudyConfig, parse_config
from study.results.front import (
    StudyRecord,
    TrialRecord,
    load_study,
    metric_points,
    ranked_trials,
)
from trainables.metrics.attack_sweep import (
    AttackResult,
    SweepSettings,
    sweep,
    worst_case,
)
from trainables.trial.setup import TrialSetup

STATE_FILE = "unlearner.pt"  # the trainable's checkpoint file (trainables.trial.trainable)


@dataclass
class AuditTarget:
    trial: TrialRecord
    checkpoint: Path  # the trial's state file at its last step
    knee: bool


def stored_config(client, parent_run_id: str) -> StudyConfig:
    """The study config the parent run logged (study.yaml)."""
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(client.download_artifacts(parent_run_id, "study.yaml", tmp)).read_text(encoding="utf-8")
    return parse_config(yaml.safe_load(text), source=f"study.yaml of MLflow run {parent_run_id}")


def front_members(record: StudyRecord, top: int | None) -> list[tuple[TrialRecord, bool]]:
    """The front's members, the knee first (when one unlearned: study.pareto.knee), then by the first objective
    (at most `top`); (trial, is the knee)."""
    from study.pareto import knee_point, pareto_front_mask

    trials = ranked_trials(record)
    if not trials:
        return []
    points = metric_points(trials, record.objectives)
    front = [t for t, on in zip(trials, pareto_front_mask(points)) if on]
    at = knee_point(metric_points(front, record.objectives), list(record.objectives))
    knee = None if at is None else front[at]
    first = record.objectives[0]
    rest = sorted((t for t in front if t is not knee), key=lambda t: (-t.metrics[first], t.trial_id))
    members = ([(knee, True)] if knee is not None else []) + [(t, False) for t in rest]
    return members[:top] if top else members


def members_that_forgot(members: list[tuple[TrialRecord, bool]]) -> list[tuple[TrialRecord, bool]]:
    """The members whose forget_efficacy reaches MIN_FORGOTTEN: an attack on a trial that forgot next to nothing has
    nothing to bring back (its share back and excess are NaN), and each costs as much as one that did. The first
    member stays when none did, so an audit always reads one trial."""
    from trainables.settings import MIN_FORGOTTEN

    kept = [(t, knee) for t, knee in members if t.metrics.get("forget_efficacy", 0.0) >= MIN_FORGOTTEN]
    return kept or members[:1]


def named_trials(record: StudyRecord, trials: list[str]) -> list[tuple[TrialRecord, bool]]:
    """The trials named, in that order; (trial, is the knee). A ValueError naming any the study does not hold."""
    by_id = {t.trial_id: t for t in record.trials}
    missing = [t for t in trials if t not in by_id]
    if missing:
        raise ValueError(f"audit --trials: no trial {', '.join(missing)} in {record.describe()} (its trials: "
                         f"{', '.join(sorted(by_id))})")
    knee = {t.trial_id for t, is_knee in front_members(record, None) if is_knee}
    return [(by_id[t], t in knee) for t in trials]


def last_checkpoint(experiment_dir: Path, trial_id: str) -> Path:
    """The state file of a trial's newest checkpoint in the study's Ray folder (a clear error when there is none)."""
    found = sorted(experiment_dir.glob(f"*{trial_id}*/checkpoint_*/{STATE_FILE}"), key=lambda p: p.parent.name)
    if not found:
        raise FileNotFoundError(f"no checkpoint of trial {trial_id} under {experiment_dir}: audit from the directory "
                                "the study ran in, or give its Ray folder with --path")
    return found[-1]


# ---- logging ------------------------------------------------------------------------------------------------------


def _curve_metrics(results: list[AttackResult], prefix: str) -> list[tuple[str, float, int]]:
    """(key, forget_efficacy, step) for every point of every curve: steering points are numbered 1, 2, ..."""
    return [(f"{prefix}attack/{r.attack.slug}/curve", fe, int(x)) for r in results for x, fe in r.curve]


def _log(client, run_id: str, metrics: dict[str, float], curves: list[tuple[str, float, int]],
         tags: dict[str, str]) -> None:
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    entries = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and not math.isnan(v)]
    entries += [Metric(k, float(v), now, step) for k, v, step in curves]
    for start in range(0, len(entries), 900):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(run_id, metrics=entries[start:start + 900])
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def robustness_figure(title: str, results: list[AttackResult], oracle: list[AttackResult] | None):
    """Each relearning attack's forget_efficacy curve beside the oracle's under the same attack (dashed); the
    steering attack's points on their own panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steer = any(r.attack.kind == "steer" for r in results)
    if steer:
        fig, (ax, ax_steer) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
        ax_steer.set_xlabel("steering point (layer x strength, in order)")
        ax_steer.set_title("steering")
    else:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        ax_steer = ax
    theirs = {r.attack.name: r for r in oracle or []}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(results):
        axis = ax_steer if r.attack.kind == "steer" else ax
        colour = colours[i % len(colours)]
        xs, ys = zip(*r.curve)
        axis.plot(xs, ys, "-o", ms=3, color=colour, label=r.attack.name)
        if r.attack.name in theirs:
            oxs, oys = zip(*theirs[r.attack.name].curve)
            axis.plot(oxs, oys, "--", color=colour, alpha=0.7)
    ax.set_xlabel("attack step")
    ax.set_ylabel("forget_efficacy")
    ax.set_title(f"{title}: relearning attacks (dashed: the retain-only oracle)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---- the audit ----------------------------------------------------------------------------------------------------


def audit_oracle(setup: TrialSetup, oracle_path: str | None, settings: SweepSettings, client, parent_run_id: str,
                 log=print) -> list[AttackResult] | None:
    """The oracle under the grid, logged on the parent run (None without an oracle)."""
    if oracle_path is None:
        log("audit: the study has no retain-only oracle: no excess over it is measured")
        return None
    from study.oracle import oracle_evaluators

    log(f"audit: the retain-only oracle under {len(settings.attacks)} attacks")
    _, oracle = oracle_evaluators(setup, oracle_path)
    results = sweep(oracle, settings, log=log)
    metrics, tags = worst_case(results, prefix="oracle_worst_")
    for r in results:
        metrics.update(r.metrics(prefix="oracle_"))
    _log(client, parent_run_id, metrics, _curve_metrics(results, "oracle_"),
         {"oracle_worst_attack": tags["worst_attack"], "oracle_worst_attack_at": tags["worst_attack_at"]})
    return results


def audit_trial(setup: TrialSetup, target: AuditTarget, settings: SweepSettings, oracle: list[AttackResult] | None,
                client, log=print) -> dict:
    """One trial under the grid, from its last checkpoint; its worst case logged on its run. Returns its row."""
    from trainables.unlearner import Unlearner

    trial = target.trial
    hparams = {k: v for k, v in trial.params.items() if k != "trial_id"}
    unlearner = Unlearner(setup, hparams)
    unlearner.restore(target.checkpoint)
    log(f"audit: trial {trial.trial_id} ({trial.variant}{', the knee' if target.knee else ''}) at step "
        f"{unlearner.step}")
    results = sweep(unlearner, settings, log=log)
    metrics, tags = worst_case(results, oracle)
    for r in results:
        metrics.update(r.metrics())
    _log(client, trial.run_id, metrics, _curve_metrics(results, ""), tags)
    import matplotlib.pyplot as plt

    fig = robustness_figure(f"trial {trial.trial_id} ({trial.variant})", results, oracle)
    client.log_figure(trial.run_id, fig, "robustness.png")
    plt.close(fig)
    return {"trial": trial.trial_id, "variant": trial.variant, "knee": target.knee, **metrics, **tags}


def audit(cfg: StudyConfig, setup: TrialSetup, client, parent_run_id: str, checkpoints: dict[str, Path] | None = None,
          experiment_dir: Path | None = None, top: int | None = None, settings: SweepSettings | None = None,
          log=print, trials: list[str] | None = None) -> list[dict]:
    """The oracle and the front's members (at most `top`, the knee first), or the `trials` named, under the sweep;
    every figure logged. A trial's state comes from `checkpoints` (trial id -> state file), else from its newest
    checkpoint under `experiment_dir`."""
    from study.oracle import oracle_model_path

    settings = settings or cfg.robustness.sweep_settings()
    record = load_study(setup.tracking_uri or cfg.tracking_uri, cfg.study, parent_run_id, log=log)
    checkpoints = checkpoints or {}
    if trials is not None:
        members = named_trials(record, trials)
    else:
        front = front_members(record, None)
        members = members_that_forgot(front)  # before `top`: at most top members that forgot something
        if len(members) < len(front):
            log(f"audit: {len(front) - len(members)} front member(s) forgot next to nothing (forget_efficacy below "
                "the knee's floor): not attacked")
        top = top if top is not None else cfg.robustness.audit_top
        members = members[:top] if top else members
    targets = []
    for trial, knee in members:
        path = checkpoints.get(trial.trial_id) or last_checkpoint(experiment_dir, trial.trial_id)
        targets.append(AuditTarget(trial, Path(path), knee))
    if not targets:
        log("audit: the study has no front to audit")
        return []
    oracle = audit_oracle(setup, oracle_model_path(cfg, setup, log), settings, client, parent_run_id, log)
    return [audit_trial(setup, t, settings, oracle, client, log) for t in targets]


AUDIT_COLUMNS = ("trial", "variant", "knee", "worst_relearn_forget_efficacy", "worst_relearn_share_back",
                 "worst_relearn_es_forget", "worst_relearn_excess", "worst_attack", "worst_attack_at")


def audit_finished(uri: str, study: str, run_id: str | None = None, path: str | None = None, top: int | None = None,
                   attacks: list[str] | None = None, log=print, sweep: dict | None = None,
                   trials: list[str] | None = None) -> list[dict]:
    """`unlearn-study audit`: the sweep on a finished study's front (or on the `trials` named), its trials' states
    read from the study's Ray folder (`path`, else the one under ./ray_results or the study's storage_path). The
    model's own code is never run (trust_remote_code off, whatever the study ran with). `sweep`: other
    `robustness.attack_*` settings than the study's (bench/bench_robustness.py)."""
    from dataclasses import replace

    from mlflow.tracking import MlflowClient

    from study.prepare import prepare_study
    from study.prepare import experiment_path

    client = MlflowClient(uri)
    record = load_study(uri, study, run_id, log=log)
    if trials is not None:
        named_trials(record, trials)  # a wrong id is said before the model loads
    cfg = stored_config(client, record.parent_run_id).model_copy(update={"tracking_uri": uri,
                                                                         "trust_remote_code": False})
    changes = {**(sweep or {}), **({"attacks": attacks} if attacks else {})}
    if changes:
        cfg = cfg.model_copy(update={"robustness": cfg.robustness.model_validate(
            {**cfg.robustness.model_dump(), **changes})})
    setup = prepare_study(cfg, log=log)
    setup = replace(setup, tracking_uri=uri, experiment_id=client.get_run(record.parent_run_id).info.experiment_id,
                    parent_run_id=record.parent_run_id)
    where = Path(path) if path else Path(experiment_path(cfg, record.parent_run_id))
    log(f"{record.describe()}: auditing its front with {len(cfg.robustness.attacks)} attacks")
    return audit(cfg, setup, client, record.parent_run_id, experiment_dir=where, top=top, log=log, trials=trials)
