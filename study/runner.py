"""Runs a study: validate and prepare (before Ray), open the MLflow parent run, run the trials with Ray Tune,
then summarise the trials' final results."""

from __future__ import annotations

import os
from dataclasses import replace

import yaml

from trainables.setup import TrialSetup

from .config import StudyConfig
from .prepare import prepare_study, storage_path, tracking_uri
from .space import define_by_run
from .tracking import start_parent_run

SUMMARY_METRICS = ("forget_efficacy", "utility", "xlang_utility", "mixed_utility", "es_forget", "step")


def _searcher(cfg: StudyConfig):
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    if cfg.search.searcher == "random":
        sampler = optuna.samplers.RandomSampler(seed=cfg.search.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.search.seed, n_startup_trials=max(cfg.search.num_samples // 3, 2))
    search = OptunaSearch(
        space=define_by_run(cfg),
        metric=list(cfg.search.objectives),
        mode=["max"] * len(cfg.search.objectives),
        sampler=sampler,
        study_name=f"{cfg.study}",
    )
    if cfg.search.max_concurrent:
        search = ConcurrencyLimiter(search, max_concurrent=cfg.search.max_concurrent)
    return search


def _init_ray(cfg: StudyConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)


def run_trials(cfg: StudyConfig, setup: TrialSetup):
    from ray import tune

    from trainables.trainable import unlearning_trainable

    resources = {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(unlearning_trainable, setup=setup), resources)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=_searcher(cfg), num_samples=cfg.search.num_samples, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{cfg.study}-{setup.parent_run_id[:8]}",
            storage_path=storage_path(cfg),
            failure_config=tune.FailureConfig(max_failures=cfg.resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=1,
        ),
    )
    return tuner.fit()


def summarize(grid) -> list[dict]:
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        if result.error is not None:
            status = "error"
        elif metrics.get("diverged"):
            status = "diverged"
        else:
            status = "completed"
        rows.append({"trial": metrics.get("trial_id", ""), "status": status, **(result.config or {}),
                     **{m: metrics.get(m) for m in SUMMARY_METRICS}})
    rows.sort(key=lambda r: (-(r.get("forget_efficacy") or -1e9)))
    return rows


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "(no trials)"
    cols = [c for c in rows[0] if any(r.get(c) is not None for r in rows)]
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    widths = {c: max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(cell(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def run_study(cfg: StudyConfig, log=print, **setup_overrides) -> list[dict]:
    """Run the whole study; setup_overrides replace TrialSetup fields (tests use crash_at_step)."""
    setup = prepare_study(cfg, log=log)  # every check that can fail does so before Ray starts
    uri = tracking_uri(cfg)
    client, exp_id, parent = start_parent_run(uri, cfg, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    setup = replace(setup, tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent, **setup_overrides)
    log(f"study {cfg.study!r}: MLflow run {parent} at {uri}")
    status = "FAILED"
    try:
        _init_ray(cfg)
        grid = run_trials(cfg, setup)
        rows = summarize(grid)
        table = format_table(rows)
        client.log_text(parent, table, "trials.txt")
        log(table)
        status = "FINISHED"
        return rows
    finally:
        client.set_terminated(parent, status)
