"""The study's MLflow parent run, created by the driver; trials log their own child runs under it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

import study
from study.config import StudyConfig
from study.tracking.uri import TrackingUnreachable, check_tracking_server, redact_uri  # noqa: F401  (also from here)


def code_version() -> str:
    """The git commit of the project (with +dirty), or the package version outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return study.__version__


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside a local database, not under each trial's cwd
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").as_uri()
    return client.create_experiment(name, artifact_location=artifacts)


def start_parent_run(uri: str, cfg: StudyConfig, config_text: str) -> tuple[MlflowClient, str, str]:
    """Create the study's parent run with the config as params and artifact. Returns (client, exp id, run id).

    Fails here, before any trial starts, if the tracking server cannot be reached.
    """
    client = MlflowClient(uri)
    exp_id = experiment_id(client, cfg.study, uri)
    tags = {"role": "study", "objectives": ",".join(cfg.search.objectives), "study_steps": str(cfg.train.steps),
            "study_seed": str(cfg.train.seed)}
    run = client.create_run(exp_id, run_name=f"study-{cfg.study}", tags=tags)
    params = _flatten(cfg.model_dump(mode="json") | {"tracking_uri": redact_uri(cfg.tracking_uri)})
    if cfg.data is not None:  # the file behind each set name (xlang_1 for उर्दू.jsonl)
        from trainables.data import DataPaths

        roles = DataPaths(cfg.data.forget, cfg.data.retain, cfg.data.mixed, tuple(cfg.data.xlang)).roles()
        params |= {f"set.{name}": path for name, path in roles.items()}
    params |= {"code_version": code_version(), "package_version": study.__version__}
    items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i : i + 100])
    client.log_text(run.info.run_id, config_text, "study.yaml")
    return client, exp_id, run.info.run_id


def parent_runs(uri: str, study: str) -> tuple[MlflowClient, str, list]:
    """(client, experiment id, the study's parent runs, newest first); a clear error if there is none."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(study)
    if exp is None:
        raise ValueError(f"no study {study!r} in the MLflow store at {redact_uri(uri)}")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.role = 'study'",
                              order_by=["attributes.start_time DESC"], max_results=1000)
    if not runs:
        raise ValueError(f"study {study!r} at {redact_uri(uri)} has no study (parent) run")
    return client, exp.experiment_id, list(runs)


def has_trials(client: MlflowClient, experiment_id: str, parent_run_id: str) -> bool:
    return bool(client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                   max_results=1))


def readable_parent_run(uri: str, study: str, log=print):
    """The parent run a read command (front, export) should show: the latest FINISHED one with trials, else the
    latest still RUNNING one with trials (a study in progress, or one whose driver died), with a warning. A run
    that failed or was interrupted never hides a finished one. Says which run it took."""
    client, exp_id, runs = parent_runs(uri, study)
    with_trials = [r for r in runs if has_trials(client, exp_id, r.info.run_id)]
    for wanted in ("FINISHED", "RUNNING"):
        for run in with_trials:
            if run.info.status == wanted:
                if wanted == "RUNNING":
                    log(f"warning: study {study!r} has no finished parent run with trials; showing run "
                        f"{run.info.run_id}, still RUNNING (a study in progress, or its driver died)")
                return run
    seen = ", ".join(f"{r.info.run_id[:8]} {r.info.status}" for r in runs[:5])
    raise ValueError(f"study {study!r} at {redact_uri(uri)} has no finished or running parent run with trials "
                     f"(parent runs, newest first: {seen}); pick one with --run-id")


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    """Every trial run under a parent run, oldest first (search_runs pages; a large study has many)."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def latest_parent_run(uri: str, study: str) -> tuple[MlflowClient, str, str]:
    """(client, experiment id, run id) of the study's most recent parent run, whatever its status."""
    client, exp_id, runs = parent_runs(uri, study)
    return client, exp_id, runs[0].info.run_id
