"""Runs a study: validate and prepare (before Ray), open the MLflow parent run, run the trials with Ray Tune,
then summarise the trials' final results."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import yaml

from trainables.setup import TrialSetup

from .config import StudyConfig, parse_config
from .prepare import prepare_study, storage_path, tracking_uri
from .pareto_tracking import ParetoRecorder, trial_status
from .search import make_scheduler, make_searcher, scalarization_weights
from .tracking import check_tracking_server, child_runs, latest_parent_run, start_parent_run

SUMMARY_METRICS = ("forget_efficacy", "utility", "xlang_utility", "mixed_utility", "es_forget", "step")


def trial_extras(cfg: StudyConfig) -> dict:
    """What trials must report for this study's searcher and scheduler."""
    weights = tuple(scalarization_weights(cfg).items()) if cfg.scheduler.type == "asha" else ()
    return {"collateral_every_step": "xlang_utility" in cfg.search.objectives, "objective_weights": weights}


def _init_ray(cfg: StudyConfig) -> None:
    import ray

    # Ray saves the study's state (which trials exist) on its own schedule, every few minutes on a long study; a
    # driver that dies loses the trials started since. Saving every 2 s keeps that window short.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)


def _trainable(cfg: StudyConfig, setup: TrialSetup):
    from ray import tune

    from trainables.trainable import unlearning_trainable

    resources = {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(unlearning_trainable, setup=setup), resources)


def _recorder(cfg: StudyConfig, setup: TrialSetup, log) -> ParetoRecorder:
    return ParetoRecorder(setup.tracking_uri, setup.experiment_id, setup.parent_run_id, list(cfg.search.objectives),
                          cfg.utility_floor, log=log, num_samples=cfg.search.num_samples)


def experiment_name(cfg: StudyConfig, parent_run_id: str) -> str:
    return f"{cfg.study}-{parent_run_id[:8]}"


def experiment_path(cfg: StudyConfig, parent_run_id: str) -> str:
    """Ray's folder for the study (a local path or a URI such as s3://...): its trials' checkpoints and the state a
    resume starts from."""
    return f"{storage_path(cfg).rstrip('/')}/{experiment_name(cfg, parent_run_id)}"


def run_trials(cfg: StudyConfig, setup: TrialSetup, log=print):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    searcher = make_searcher(cfg, setup.model_shape)
    if cfg.search.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=cfg.search.max_concurrent)
    tuner = tune.Tuner(
        _trainable(cfg, setup),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(cfg),
                                    num_samples=cfg.search.num_samples, reuse_actors=True),
        run_config=tune.RunConfig(
            name=experiment_name(cfg, setup.parent_run_id),
            storage_path=storage_path(cfg),
            failure_config=tune.FailureConfig(max_failures=cfg.resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[_recorder(cfg, setup, log)],
            verbose=0,
        ),
    )
    return tuner.fit()


def summarize(grid) -> list[dict]:
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        status = trial_status(metrics, error=result.error is not None)
        rows.append({"trial": metrics.get("trial_id", ""), "status": status, **(result.config or {}),
                     **{m: metrics.get(m) for m in SUMMARY_METRICS}})
    rows.sort(key=lambda r: (-(r.get("forget_efficacy") or -1e9)))
    return rows


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "(no trials)"
    cols = list(dict.fromkeys(c for r in rows for c in r if any(r2.get(c) is not None for r2 in rows)))
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    widths = {c: max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(cell(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def _finish(grid, cfg: StudyConfig, setup: TrialSetup, client, log) -> list[dict]:
    """After the trials: the front from every trial's final result (a resumed study's earlier trials included),
    the summary table on the terminal and on the parent run."""
    recorder = _recorder(cfg, setup, log)
    for result in grid:
        if (result.metrics or {}).get("trial_id"):  # a trial that failed before its first report has nothing to rank
            recorder.record_result(result.metrics, result.config or {}, error=result.error is not None)
    recorder.write_front()
    rows = summarize(grid)
    table = format_table(rows)
    client.log_text(setup.parent_run_id, table, "trials.txt")
    log(table)
    return rows


def run_study(cfg: StudyConfig, log=print, **setup_overrides) -> list[dict]:
    """Run the whole study; setup_overrides replace TrialSetup fields (tests use crash_at_step)."""
    uri = tracking_uri(cfg)
    check_tracking_server(uri)
    setup = prepare_study(cfg, log=log)  # every check that can fail does so before Ray starts
    client, exp_id, parent = start_parent_run(uri, cfg, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    setup = replace(setup, tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent, **trial_extras(cfg),
                    **setup_overrides)
    log(f"study {cfg.study!r}: MLflow run {parent} at {uri}; Ray state in {experiment_path(cfg, parent)}")
    status = "FAILED"
    try:
        _init_ray(cfg)
        rows = _finish(run_trials(cfg, setup, log=log), cfg, setup, client, log)
        status = "FINISHED"
        return rows
    finally:
        client.set_terminated(parent, status)


def _mark_lost_trials(client, experiment_id: str, parent: str, known: set, log) -> None:
    """Child runs of trials that Ray's saved state does not know (started in the seconds before the driver
    died): their runs stay, marked `lost`, so every run in MLflow is accounted for."""
    for run in child_runs(client, experiment_id, parent):
        if run.data.tags.get("trial_id") not in known:
            for key, value in (("trial_status", "lost"), ("pareto", "false"), ("pareto_rank", "none")):
                client.set_tag(run.info.run_id, key, value)
            client.set_terminated(run.info.run_id, "KILLED")
            log(f"trial {run.data.tags.get('trial_id')} was lost with the driver (MLflow run {run.info.run_id})")


def resume_study(study: str, tracking: str | None = None, log=print) -> list[dict]:
    """Continue a study whose driver died, from Ray's state in the working directory it ran in.

    Finished trials are not run again; unfinished ones continue from their last checkpoints and keep their MLflow
    runs (found by trial id). Ray's experiment state is pickled: resume only from a folder you trust.
    """
    from ray import tune

    uri = tracking or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    check_tracking_server(uri)
    client, exp_id, parent = latest_parent_run(uri, study)
    text = Path(client.download_artifacts(parent, "study.yaml", tempfile.mkdtemp())).read_text()
    cfg = parse_config(yaml.safe_load(text), source=f"study.yaml of MLflow run {parent}")
    setup = prepare_study(cfg, log=log)
    setup = replace(setup, tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent, **trial_extras(cfg))
    path = experiment_path(cfg, parent)
    if not tune.Tuner.can_restore(path):
        raise FileNotFoundError(f"no Ray study state at {path}: resume from the directory the study ran in")
    log(f"resuming study {study!r} (MLflow run {parent}) from {path}")
    status = "FAILED"
    try:
        _init_ray(cfg)
        tuner = tune.Tuner.restore(path, trainable=_trainable(cfg, setup), resume_unfinished=True,
                                   resume_errored=True)
        grid = tuner.fit()
        _mark_lost_trials(client, exp_id, parent, {(r.metrics or {}).get("trial_id") for r in grid}, log)
        rows = _finish(grid, cfg, setup, client, log)
        status = "FINISHED"
        return rows
    finally:
        client.set_terminated(parent, status)


def ladder_study_configs(cfg: StudyConfig, quick: bool = False) -> list[StudyConfig]:
    """One study per (rung, seed): the same budget, scheduler and search settings, the seed as search and training
    seed, named `<study>-<rung>-s<seed>` (the report finds them by that name)."""
    if cfg.ladder is None:
        raise ValueError(f"study config {cfg.study!r} has no `ladder:` section")
    configs = []
    for rung in cfg.ladder.rungs:
        for seed in cfg.ladder.seeds:
            d = cfg.model_dump(mode="json")
            d.update(study=f"{cfg.study}-{rung}-s{seed}", variants=[rung], ladder=None)
            d["search"]["seed"] = seed
            d["train"]["seed"] = seed
            if quick:
                d["search"]["num_samples"] = cfg.ladder.quick_num_samples
                d["train"]["steps"] = steps = cfg.ladder.quick_steps
                d["scheduler"]["grace_period"] = min(d["scheduler"]["grace_period"], max(steps // 4, 1))
                d["train"]["eval_every"] = min(d["train"]["eval_every"], max(steps // 4, 1))
                d["train"]["checkpoint_every"] = min(d["train"]["checkpoint_every"], max(steps // 4, 1))
            configs.append(parse_config(d, source=f"ladder rung {rung}, seed {seed}"))
    return configs


def run_ladder(cfg: StudyConfig, quick: bool = False, out_dir: str = "ladder_report", log=print) -> Path:
    from .report import write_report

    configs = ladder_study_configs(cfg, quick)
    for i, sub in enumerate(configs, 1):
        log(f"ladder {cfg.study}: study {i}/{len(configs)}: {sub.study}")
        run_study(sub, log=lambda *a: None)
    return write_report(tracking_uri(cfg), cfg.study, out_dir)
