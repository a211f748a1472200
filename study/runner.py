"""Runs a study: validate and prepare (before Ray), open the MLflow parent run, run the trials with Ray Tune,
then summarise the trials' final results."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from study.config import StudyConfig, parse_config
from study.prepare import (check_ray_address, check_store_writable, check_writable, check_writable_folders,
                           experiment_name, experiment_path, local_folder, prepare_study, ray_address, storage_path,
                           tracking_uri)
from study.results.table import format_table
from study.tracking.store import check_local_store, ensure_store
from study.tracking.ui_link import runs_page_url
from study.tracking.uri import check_tracking_server, redact_uri, resolve_tracking_uri
from trainables.trial.setup import TrialSetup
from trainables.trial.status import STATUS_TAG, TrialStatus, trial_status

# Ray, MLflow and torch (through the searcher, the callbacks, the parent run and the oracle) are imported by the
# functions that use them, after every check before Ray has passed: a bad input is reported without loading them.
if TYPE_CHECKING:
    from study.progress import StudyProgress
    from study.tracking.front_recorder import ParetoRecorder

# Ray's switch for its single-machine mode (the default on Windows and macOS), in which it stays on 127.0.0.1.
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
SUMMARY_METRICS = ("forget_efficacy", "utility", "xlang_utility", "mixed_utility", "es_forget", "degenerate",
                   "relearn_forget_efficacy", "relearn_es_forget", "step")


def trial_extras(cfg: StudyConfig) -> dict:
    """What trials must report for this study's searcher and scheduler."""
    from study.oracle import robustness_settings
    from study.search import scalarization_weights

    weights = tuple(scalarization_weights(cfg).items()) if cfg.scheduler.type == "asha" else ()
    return {"collateral_every_step": "xlang_utility" in cfg.search.objectives, "objective_weights": weights,
            "robustness": robustness_settings(cfg)}


def _init_ray(cfg: StudyConfig) -> None:
    import ray

    # Ray saves the study's state (which trials exist) on its own schedule, every few minutes on a long study; a
    # driver that dies loses the trials started since. Saving every 2 s keeps that window short.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Ray's newer output engine prints its own header whatever the verbosity; study.progress is the study's output.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    if ray.is_initialized():
        return
    address = ray_address(cfg)
    options = dict(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)
    if address is not None:
        ray.init(**options)
        return
    # A local study listens on loopback only. Ray binds its servers (GCS, raylet, workers) to 127.0.0.1 only when
    # the node's IP is exactly that, and on Linux it replaces 127.0.0.1 by the machine's address unless its
    # Windows/macOS single-machine mode is on: on while Ray starts (its processes inherit the variable), then put
    # back, so that nothing else in this process (a multi-node test cluster) sees it.
    import ray._private.ray_constants as ray_constants

    saved = os.environ.get(SINGLE_MACHINE), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        # "local": a new instance of the study's own, never a cluster someone started on this machine with
        # `ray start` (which ray.init without an address would join, named in /tmp/ray/ray_current_cluster).
        ray.init(_node_ip_address="127.0.0.1", **{**options, "address": "local"})
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
        if saved[0] is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = saved[0]


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the study; Ray saved its state, so `unlearn-study resume` continues it."""


class RayStateUnreadable(RuntimeError):
    """`resume` could not read Ray's saved state of a study (a truncated or foreign tuner.pkl); raised before any
    trial starts, with the study's MLflow runs as they were."""


def _fit(tuner, progress: StudyProgress | None = None):
    """tuner.fit(), with Ctrl-C made an error. On the first Ctrl-C, Ray Tune ends its loop, saves the study's
    state, stops the trials and then returns as if the study were done; a second Ctrl-C skips that. Tune's
    handler puts back the one it found when it takes a signal, and stays installed (swallowing later Ctrl-Cs)
    when it took none: which one is installed afterwards tells the two apart."""
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(signum, frame):
        raise StudyInterrupted()

    # Without Tune's handler (TUNE_DISABLE_SIGINT_HANDLER), ours raises at the first Ctrl-C and there is nothing
    # to tell apart afterwards.
    in_main = _main_thread() and os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") == "0"
    if in_main:
        signal.signal(signal.SIGINT, interrupted)
    try:
        grid = tuner.fit()
        if in_main and signal.getsignal(signal.SIGINT) is interrupted:
            raise StudyInterrupted()
        return grid
    finally:
        if progress:
            progress.close()  # what is printed next starts on a line of its own
        if in_main:
            signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _close_interrupted(client, experiment_id: str, parent: str, log) -> None:
    """After Ctrl-C: the trials' runs still open are marked interrupted and closed (KILLED)."""
    from study.tracking.parent_run import child_runs

    try:
        for run in child_runs(client, experiment_id, parent):
            if run.info.status == "RUNNING":
                client.set_tag(run.info.run_id, STATUS_TAG, TrialStatus.INTERRUPTED)
                client.set_terminated(run.info.run_id, TrialStatus.INTERRUPTED.run_status)
    except Exception as e:  # noqa: BLE001 - the interrupt, not a tracking error, is what the user must see
        log(f"could not close the trials' MLflow runs ({e})")
    log(f"study interrupted: parent run {parent} marked KILLED; `unlearn-study resume` continues it")


def _trainable(cfg: StudyConfig, setup: TrialSetup):
    from ray import tune

    from trainables.trial.trainable import unlearning_trainable

    resources = {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(unlearning_trainable, setup=setup), resources)


def _recorder(cfg: StudyConfig, setup: TrialSetup) -> ParetoRecorder:
    from study.tracking.front_recorder import ParetoRecorder

    return ParetoRecorder(setup.tracking_uri, setup.experiment_id, setup.parent_run_id, cfg.front_rule())


def _progress(cfg: StudyConfig, progress: bool) -> StudyProgress | None:
    from study.progress import StudyProgress

    return StudyProgress(cfg.search.num_samples, sys.stdout) if progress else None


def run_trials(cfg: StudyConfig, setup: TrialSetup, progress: bool = True):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from study.progress import ProgressCallback
    from study.search import make_scheduler, make_searcher
    from study.tracking.gates_recorder import MmieGatesRecorder

    searcher = make_searcher(cfg, setup.model_shape)
    recorder, shown = _recorder(cfg, setup), _progress(cfg, progress)
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
            callbacks=[recorder, ProgressCallback(recorder, shown),
                       MmieGatesRecorder(setup.tracking_uri, setup.experiment_id, setup.parent_run_id)],
            verbose=0,
        ),
    )
    record_state_digest(setup.tracking_uri, setup.parent_run_id, experiment_path(cfg, setup.parent_run_id))
    return _fit(tuner, shown)


# The sha256 of Ray's tuner.pkl, written once when the study's Tuner is made (a restore reads it, never rewrites it),
# recorded on the parent run: `resume` unpickles a folder's tuner.pkl only when it matches.
STATE_DIGEST_TAG = "ray_state_tuner_sha256"


def state_digest(folder: str) -> str | None:
    """The sha256 of tuner.pkl in a local Ray folder; None for a remote one (s3://...) or none there."""
    state = Path(folder) / "tuner.pkl"
    if "://" in folder or not state.is_file():
        return None
    return hashlib.sha256(state.read_bytes()).hexdigest()


def record_state_digest(uri: str, parent: str, folder: str) -> None:
    from mlflow.tracking import MlflowClient

    digest = state_digest(folder)
    if digest is not None:
        MlflowClient(uri).set_tag(parent, STATE_DIGEST_TAG, digest)


def summarize(grid) -> list[dict]:
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        status = trial_status(metrics, error=result.error is not None)
        rows.append({"trial": metrics.get("trial_id", ""), "status": status, **(result.config or {}),
                     **{m: metrics.get(m) for m in SUMMARY_METRICS}})
    rows.sort(key=lambda r: (-(r.get("forget_efficacy") or -1e9)))
    return rows


def _finish(grid, cfg: StudyConfig, setup: TrialSetup, client, log) -> list[dict]:
    """After the trials: the front from every trial's final result (a resumed study's earlier trials included),
    the summary table on the terminal and on the parent run."""
    recorder = _recorder(cfg, setup)
    for result in grid:
        if (result.metrics or {}).get("trial_id"):  # a trial that failed before its first report has nothing to rank
            recorder.record_result(result.metrics, result.config or {}, error=result.error is not None)
    recorder.write_front()
    if cfg.robustness.audit:  # the attacker sweep on the front (study.results.audit)
        _audit_front(grid, cfg, setup, client, log)
    rows = summarize(grid)
    table = format_table(rows)
    client.log_text(setup.parent_run_id, table, "trials.txt")
    log(table)
    log(f"the study in MLflow's UI (`mlflow ui`, see README): {runs_page_url(setup.experiment_id, setup.tracking_uri)}")
    return rows


def _audit_front(grid, cfg: StudyConfig, setup: TrialSetup, client, log) -> None:
    from study.results.audit import STATE_FILE, audit

    with tempfile.TemporaryDirectory() as tmp:
        states = {}
        for result in grid:
            trial_id = (result.metrics or {}).get("trial_id")
            if trial_id and result.checkpoint is not None:
                states[trial_id] = Path(result.checkpoint.to_directory(f"{tmp}/{trial_id}")) / STATE_FILE
        try:  # the trials and their front stand whatever happens here; the audit can be run again
            audit(cfg, setup, client, setup.parent_run_id, checkpoints=states, log=log)
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            client.set_tag(setup.parent_run_id, "audit_error", f"{type(e).__name__}: {e}"[:5000])
            log(f"audit of the front failed ({type(e).__name__}: {e}); run `unlearn-study audit --study {cfg.study}`")


def run_study(cfg: StudyConfig, log=print, progress: bool = True, **setup_overrides) -> list[dict]:
    """Run the whole study; `progress`: show it on stdout while it runs (study.progress); setup_overrides replace
    TrialSetup fields (tests use crash_at_step)."""
    uri = tracking_uri(cfg)
    check_tracking_server(uri)
    check_local_store(uri)  # a damaged store is named before anything is built
    check_writable_folders(cfg, uri)  # a read-only folder too (MLflow would retry it for minutes)
    check_ray_address(ray_address(cfg))
    setup = prepare_study(cfg, log=log, address=ray_address(cfg))  # every check that can fail, before Ray
    from study.space import check_one_distribution_per_knob

    check_one_distribution_per_knob(cfg, setup.model_shape)
    from study.oracle import with_oracle
    from study.tracking.parent_run import start_parent_run

    ensure_store(uri)  # made once, under a lock: two studies started at once would both migrate it
    client, exp_id, parent = start_parent_run(uri, cfg, _config_text(cfg))
    setup = replace(setup, tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent, **trial_extras(cfg),
                    **setup_overrides)
    log(f"study {cfg.study!r}: MLflow run {parent} at {redact_uri(uri)}; Ray state in {experiment_path(cfg, parent)}")

    def trials():
        measured = with_oracle(cfg, setup, client, parent, log)  # the retain-only reference, before any trial
        return _finish(run_trials(cfg, measured, progress), cfg, measured, client, log)

    return _run_parent(cfg, client, exp_id, parent, trials, log)


def _config_text(cfg: StudyConfig) -> str:
    data = cfg.model_dump(mode="json")
    data["tracking_uri"] = redact_uri(data["tracking_uri"])
    return yaml.safe_dump(data, sort_keys=False)


def _run_parent(cfg: StudyConfig, client, exp_id: str, parent: str, body, log, untouched_on=()):
    """Ray and the trials under an open parent run, which always ends marked: FINISHED, FAILED (an error, or a
    study that never started its trials) or KILLED (Ctrl-C, its open trial runs closed too). An error of a type in
    `untouched_on` leaves the run as it was (a resume that could not read Ray's state ran nothing)."""
    status = "FAILED"
    try:
        _init_ray(cfg)
        rows = body()
        status = "FINISHED"
        return rows
    except untouched_on:
        status = None
        raise
    except KeyboardInterrupt:
        status = "KILLED"
        _close_interrupted(client, exp_id, parent, log)
        raise
    finally:
        if status is not None:
            client.set_terminated(parent, status)


def _mark_lost_trials(client, experiment_id: str, parent: str, known: set, log) -> None:
    """Child runs of trials that Ray's saved state does not know (started in the seconds before the driver
    died): their runs stay, marked `lost`, so every run in MLflow is accounted for."""
    from study.tracking.parent_run import child_runs

    for run in child_runs(client, experiment_id, parent):
        if run.data.tags.get("trial_id") not in known:
            for key, value in ((STATUS_TAG, TrialStatus.LOST), ("pareto", "false"), ("pareto_rank", "none")):
                client.set_tag(run.info.run_id, key, value)
            client.set_terminated(run.info.run_id, TrialStatus.LOST.run_status)
            log(f"trial {run.data.tags.get('trial_id')} was lost with the driver (MLflow run {run.info.run_id})")


def _show_restored_progress(tuner, progress: StudyProgress | None) -> None:
    """Ray restores the study's callbacks from its saved state, without the stream their progress went to: the
    resumed driver's own is set on them (Tune has no public access to a restored Tuner's callbacks)."""
    from study.progress import ProgressCallback

    for callback in tuner._local_tuner.get_run_config().callbacks or ():
        if isinstance(callback, ProgressCallback):
            callback.progress = progress


def resume_study(study: str, tracking: str | None = None, log=print, path: str | None = None,
                 trust_remote_code: bool = False, progress: bool = True) -> list[dict]:
    """Continue a study whose driver died, from Ray's state in the working directory it ran in (or `path`, the
    study's folder that `run` printed).

    Finished trials are not run again; unfinished ones continue from their last checkpoints and keep their MLflow
    runs (found by trial id). Ray's experiment state is pickled, so where it is read from is never taken from the
    tracking store (anyone who can write to it would choose what is unpickled), nor is trust_remote_code: both
    come from this command line.
    """
    from ray import tune

    from study.oracle import resumed_oracle_share, with_oracle_share
    from study.tracking.parent_run import parent_runs

    if path is not None and "://" not in path:  # a relative folder is the working directory's (pyarrow takes
        path = str(Path(path).resolve())         # a relative path for a URI without a scheme)
    uri = resolve_tracking_uri(tracking)
    check_tracking_server(uri)
    copy = "resume from a copy of the study's folder in one you can write"
    check_store_writable(uri, fix=copy)
    client, exp_id, runs = parent_runs(uri, study)
    parent, cfg, here = resume_target(client, study, runs, uri, path, trust_remote_code, log)
    if local_folder(here) is not None:
        check_writable(local_folder(here), "Ray keeps the study's state and checkpoints", copy)
    check_ray_address(ray_address(cfg))
    setup = prepare_study(cfg, log=log, address=ray_address(cfg))
    setup = replace(setup, tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent, **trial_extras(cfg))
    setup = with_oracle_share(setup, resumed_oracle_share(client, parent))
    log(f"resuming study {study!r} (MLflow run {parent}) from {here}")
    # On stderr whatever --quiet says: what follows runs the code in that folder's pickles.
    checked = (f"its tuner.pkl is the one run {parent[:8]} recorded (sha256); the searcher's and trials' saved state "
               "are not checked" if STATE_DIGEST_TAG in _tags(client, parent) else
               f"run {parent[:8]} recorded no digest of it (a study started before digests were recorded): unchecked")
    print(f"warning: Ray's saved state in {here} is pickled and unpickling it runs code; resume only from a folder "
          f"you trust ({checked})", file=sys.stderr)

    def body():
        try:
            tuner = tune.Tuner.restore(here, trainable=_trainable(cfg, setup), resume_unfinished=True,
                                       resume_errored=True)
        except Exception as e:  # noqa: BLE001 - whatever the unpickling raised, nothing has run yet
            reason = (str(e).strip().splitlines() or [""])[0][:300]
            raise RayStateUnreadable(
                f"the Ray state in {here} cannot be read ({type(e).__name__}: {reason}); nothing was resumed and "
                f"study {study!r} (MLflow run {parent}) is as it was: `front`/`export` read what it logged, "
                f"`unlearn-study run` starts a new one") from e
        shown = _progress(cfg, progress)
        _show_restored_progress(tuner, shown)
        grid = _fit(tuner, shown)
        _mark_lost_trials(client, exp_id, parent, {(r.metrics or {}).get("trial_id") for r in grid}, log)
        return _finish(grid, cfg, setup, client, log)

    return _run_parent(cfg, client, exp_id, parent, body, log, untouched_on=(RayStateUnreadable,))


def _tags(client, run_id: str) -> dict:
    return client.get_run(run_id).data.tags


def resume_target(client, study: str, runs: list, uri: str, path: str | None, trust_remote_code: bool,
                  log=print) -> tuple[str, StudyConfig, str]:
    """(parent run id, config, Ray folder) of the newest parent run whose Ray state is in the working directory's
    ray_results (or is `path`). The stored config's storage_path and trust_remote_code are not used. A FINISHED run
    is refused: resuming it would only rewrite its end."""
    from ray import tune

    for run in runs:
        with tempfile.TemporaryDirectory() as tmp:
            text = Path(client.download_artifacts(run.info.run_id, "study.yaml", tmp)).read_text(encoding="utf-8")
        stored = parse_config(yaml.safe_load(text), source=f"study.yaml of MLflow run {run.info.run_id}")
        cfg = stored.model_copy(update={"storage_path": None, "trust_remote_code": trust_remote_code,
                                        "tracking_uri": uri})
        here = path or experiment_path(cfg, run.info.run_id)
        if path is not None and Path(path).name != experiment_name(cfg, run.info.run_id):
            continue
        if tune.Tuner.can_restore(here):
            recorded, digest = run.data.tags.get(STATE_DIGEST_TAG), state_digest(here)
            if recorded is not None and digest is not None and digest != recorded:
                raise ValueError(f"the Ray state in {here} is not the one study {study!r} wrote: its tuner.pkl's "
                                 f"sha256 differs from the one recorded on MLflow run {run.info.run_id}; nothing "
                                 "was unpickled. Give the folder `run` printed, unchanged")
            if run.info.status == "FINISHED":
                raise ValueError(
                    f"study {study!r} (MLflow run {run.info.run_id}, Ray state in {here}) already FINISHED: there is "
                    f"nothing to resume; start a new one with `unlearn-study run --study {study}` (with the same "
                    "--config: a new parent run beside it)")
            if stored.trust_remote_code and not trust_remote_code:
                log("the study ran with trust_remote_code; it stays off unless --trust-remote-code is given")
            return run.info.run_id, cfg, here
    where = path or str(Path.cwd() / "ray_results")
    raise FileNotFoundError(f"no Ray state of study {study!r} at {where}: resume from the directory the study ran "
                            "in, or give its folder with --path")


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


def run_ladder(cfg: StudyConfig, quick: bool = False, out_dir: str = "ladder_report", log=print,
               progress: bool = True) -> Path:
    from study.results.ladder_report import write_report

    configs = ladder_study_configs(cfg, quick)
    for i, sub in enumerate(configs, 1):
        log(f"ladder {cfg.study}: study {i}/{len(configs)}: {sub.study}")
        run_study(sub, log=lambda *a: None, progress=progress)
    return write_report(tracking_uri(cfg), cfg.study, out_dir)
