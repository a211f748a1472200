"""Faults applied to a study's real files (issue 26): a real MLflow store with the parent run `run` creates, a real
Ray state folder written by Ray Tune, each then damaged or put in the state a user leaves it in. What the platform
must do: one line naming the file or folder (exit status 2), and never a finished study lost or rewritten."""

import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import TEST_STUDY
from study import cli
from study.config import load_config
from study.prepare import experiment_name
from study.runner import _config_text
from study.tracking.parent_run import start_parent_run

STUDY = "faulty"


@pytest.fixture(scope="module")
def ray_state(ray_local, tmp_path_factory):
    """A Ray Tune experiment folder (tuner.pkl, experiment state, one trial), written by a one-trial fit."""
    from ray import tune

    def report(config):  # defined here, so that it is pickled by value: Ray's workers cannot import tests/
        tune.report({"x": config["a"]})

    storage = tmp_path_factory.mktemp("ray_state")
    tune.Tuner(report, param_space={"a": 1},
               run_config=tune.RunConfig(name="state", storage_path=str(storage), verbose=0)).fit()
    assert tune.Tuner.can_restore(storage / "state")
    return storage / "state"


def _study_here(tmp_path, mlflow_store, ray_state, status):
    """A study in tmp_path as `run` leaves it: mlflow.db with its parent run (ended with `status`), and Ray's state
    under ray_results/<study>-<run id prefix>. Returns (uri, parent run id, Ray folder)."""
    uri = mlflow_store(tmp_path)
    cfg = load_config(overrides={"study": STUDY, "tracking_uri": uri, **TEST_STUDY})
    client, _, parent = start_parent_run(uri, cfg, _config_text(cfg))
    client.set_terminated(parent, status)
    here = tmp_path / "ray_results" / experiment_name(cfg, parent)
    shutil.copytree(ray_state, here)
    return uri, parent, here


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_resume_refuses_a_finished_study(tmp_path, monkeypatch, capsys, mlflow_store, ray_state):
    monkeypatch.chdir(tmp_path)
    uri, parent, _ = _study_here(tmp_path, mlflow_store, ray_state, "FINISHED")
    before = MlflowClient(uri).get_run(parent).info

    assert cli.main(["resume", "--study", STUDY, "--tracking-uri", uri]) == 2
    line = _one_error_line(capsys)
    assert "already FINISHED" in line and "unlearn-study run" in line and parent in line

    after = MlflowClient(uri).get_run(parent).info
    assert (after.status, after.end_time) == ("FINISHED", before.end_time)


def test_unreadable_ray_state_names_the_folder_and_leaves_the_study(
        tmp_path, monkeypatch, capsys, mlflow_store, ray_state, embedded):
    monkeypatch.chdir(tmp_path)
    uri, parent, here = _study_here(tmp_path, mlflow_store, ray_state, "KILLED")  # interrupted: resumable
    state = here / "tuner.pkl"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    before = MlflowClient(uri).get_run(parent).info

    assert cli.main(["resume", "--study", STUDY, "--tracking-uri", uri, "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert f"Ray state in {here} cannot be read" in line and "UnpicklingError" in line

    after = MlflowClient(uri).get_run(parent).info
    assert (after.status, after.end_time) == ("KILLED", before.end_time)
