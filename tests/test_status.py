"""Trial statuses: one type, read back from MLflow as the value the trial wrote, importable without Ray."""

import subprocess
import sys

import pytest
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from study.results.front import load_study
from trainables.trial.status import FINAL_STATUSES, STATUS_TAG, TrialStatus, trial_status


def test_trial_status_from_the_last_result():
    assert trial_status(None) is TrialStatus.ERROR
    assert trial_status({"finished": True}, error=True) is TrialStatus.ERROR
    assert trial_status({"finished": True, "diverged": 1.0}) is TrialStatus.DIVERGED
    assert trial_status({"finished": True, "diverged": 0.0}) is TrialStatus.COMPLETED
    assert trial_status({"finished": False, "diverged": 0.0}) is TrialStatus.STOPPED_EARLY
    assert FINAL_STATUSES == (TrialStatus.COMPLETED, TrialStatus.DIVERGED)


def test_every_status_is_an_mlflow_run_status_as_mlflow_optuna_maps_them():
    for status in TrialStatus:
        RunStatus.from_string(status.run_status)  # raises on a name MLflow does not know
    assert TrialStatus.STOPPED_EARLY.run_status == "KILLED" and TrialStatus.ERROR.run_status == "FAILED"
    assert TrialStatus.DIVERGED.run_status == "FINISHED" and TrialStatus.COMPLETED.run_status == "FINISHED"


def test_a_status_tag_reads_back_as_the_status_and_a_bad_one_names_the_run(tmp_path, mlflow_store):
    uri = mlflow_store(tmp_path)
    client = MlflowClient(uri)
    exp = client.create_experiment("st")
    parent = client.create_run(exp, tags={"role": "study", "objectives": "forget_efficacy,utility",
                                          "study_steps": "4", "study_seed": "0"}).info.run_id
    client.set_terminated(parent)
    for i, status in enumerate(TrialStatus):
        client.create_run(exp, tags={"mlflow.parentRunId": parent, "trial_id": f"t{i}", STATUS_TAG: status})
    record = load_study(uri, "st")
    assert [t.status for t in record.trials] == list(TrialStatus)
    assert all(isinstance(t.status, TrialStatus) for t in record.trials)
    bad = client.create_run(exp, tags={"mlflow.parentRunId": parent, "trial_id": "x", STATUS_TAG: "finished"})
    with pytest.raises(ValueError, match=f"MLflow run {bad.info.run_id}: tag trial_status='finished'"):
        load_study(uri, "st")


def test_statuses_and_the_front_rule_import_without_ray():
    code = "import sys, trainables.trial.status, study.eligibility, study.results.front; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

