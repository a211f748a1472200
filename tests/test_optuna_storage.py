"""A study with `search.optuna_storage` leaves an Optuna study that Optuna's API and optuna-dashboard open: each
trial's state, values and mmie.py gate constraints agree with what MLflow holds for the same trial. The study is a
real one (Ray, MLflow, training), run through `unlearn-study run --quiet`."""

import contextlib
import io
import json
import os

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from study.cli import main
from trainables.metrics.mmie import ACCEPTANCE_GATES, REQUIRED_GATES
from trainables.trial.status import TrialStatus

pytestmark = pytest.mark.slow

OBJECTIVES = ["forget_efficacy", "utility"]
CONFIG = {
    "study": "dashboard",
    "variants": ["ga", "npo"],
    # A strict cut at step 2 makes a trial stopped early (PRUNED in Optuna) likely among 4.
    "scheduler": {"type": "moasha", "grace_period": 2, "reduction_factor": 4},
    "search": {"num_samples": 4, "max_concurrent": 2, "seed": 1, "objectives": OBJECTIVES},
    "train": {"steps": 4, "eval_every": 2, "checkpoint_every": 2, "batch_size": 8, "es_prompts": 4,
              "final_es_prompts": 8},
    "mmie_eval": {"items": 2, "final_items": 2, "max_new_tokens": 8, "teacher_forced_items": 8},
    "robustness": {"oracle": False, "relearn": False},  # not what is checked here, and the attack outlasts the trial
}


@pytest.fixture(scope="module")
def study(ray_local, embedded, tmp_path_factory):
    """The study's Optuna storage, its MLflow child runs by trial id, and what the quiet CLI printed."""
    tmp = tmp_path_factory.mktemp("dashboard")
    storage = f"sqlite:///{tmp / 'optuna.db'}"
    (tmp / "study.yaml").write_text(yaml.safe_dump({**CONFIG, "search": {**CONFIG["search"],
                                                                         "optuna_storage": str(tmp / "optuna.db")}}))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    here = os.getcwd()
    os.chdir(tmp)  # Ray's results folder
    try:
        out = io.StringIO()  # capsys is per test; this fixture serves the module
        with contextlib.redirect_stdout(out):
            assert main(["run", "--config", str(tmp / "study.yaml"), "--tracking-uri", uri, "--quiet"]) == 0
    finally:
        os.chdir(here)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dashboard")
    runs = {r.data.tags["trial_id"]: r for r in client.search_runs([exp.experiment_id])
            if r.data.tags.get("role") != "study"}
    return storage, runs, out.getvalue()


def test_quiet_prints_the_result_table_only(study):
    _, runs, printed = study
    lines = printed.splitlines()
    assert lines[0].split()[:2] == ["trial", "status"] and len(lines) == 1 + len(runs), printed
    assert "trials done" not in printed and "MLflow run" not in printed


def test_optuna_storage_holds_each_trials_state_values_and_gate_constraints(study):
    storage, runs, _ = study
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["dashboard"]
    loaded = optuna.load_study(study_name="dashboard", storage=storage)
    assert len(loaded.trials) == len(runs) == 4
    gates = loaded.user_attrs["constraints"]
    assert gates == list(ACCEPTANCE_GATES)
    for trial in loaded.trials:
        run = runs[trial.user_attrs["trial_id"]]  # the Optuna trial names its MLflow run
        status, metrics = run.data.tags["trial_status"], run.data.metrics
        if status == TrialStatus.STOPPED_EARLY:
            assert trial.state == optuna.trial.TrialState.PRUNED and trial.values is None
            assert trial.user_attrs["stopped_at_step"] == metrics["step"] < 4
        else:
            assert status in (TrialStatus.COMPLETED, TrialStatus.DIVERGED)
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert trial.values == pytest.approx([metrics[o] for o in OBJECTIVES])
        # The gates as Optuna stores constraints (<= 0 feasible), equal to the trial's gate metrics. A trial stopped
        # at a checkpoint measured the forget set only: a missing gate other than the required G1/G2 counts 0
        # (passes, as in mmie.py's gates); a missing required one counts infeasible.
        assert trial.system_attrs["constraints"] == pytest.approx(
            [metrics.get(f"mmie/gate_{g}", 1.0 if g in REQUIRED_GATES else 0.0) for g in gates])
        assert list(trial.constraints.values()) == trial.system_attrs["constraints"]
    assert {t.state for t in loaded.trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}


def test_optuna_dashboard_serves_the_study_with_its_constraints(study):
    """optuna-dashboard's own WSGI app (what `optuna-dashboard sqlite:///optuna.db` serves), called in-process."""
    pytest.importorskip("optuna_dashboard", reason="the `dashboard` extra: pip install -e .[dashboard]")
    from wsgiref.util import setup_testing_defaults

    import optuna_dashboard

    storage, _, _ = study
    app = optuna_dashboard.wsgi(storage)

    def get(path):
        environ, status = {"PATH_INFO": path}, []
        setup_testing_defaults(environ)
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        assert status[0].startswith("200"), (path, status, body[:300])
        return json.loads(body)

    (summary,) = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "dashboard"
    detail = get(f"/api/studies/{summary['study_id']}")
    loaded = optuna.load_study(study_name="dashboard", storage=storage)
    shown = {t["number"]: t for t in detail["trials"]}
    assert len(shown) == len(loaded.trials)
    for trial in loaded.trials:
        assert shown[trial.number]["state"] == trial.state.name.capitalize()
        # the dashboard's plots tell feasible from infeasible trials by these
        assert shown[trial.number]["constraints"] == pytest.approx(trial.system_attrs["constraints"])


# ---- search.optuna_storage: mlflow, on a real `mlflow server` ---------------------------------------------------


def _bench():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "check_mlflow_ui.py"
    spec = importlib.util.spec_from_file_location("check_mlflow_ui", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_mlflow_storage_keeps_the_optuna_study_on_the_tracking_server(embedded, tmp_path, monkeypatch):
    """The searcher a study with `search.optuna_storage: mlflow` builds, asked and told three trials as Ray would
    (no Ray, no training): Optuna's study is then on the server, in experiment `<study>-optuna`, with each trial's
    values and mmie.py gate constraints, and Optuna's own plots read it from there."""
    from study.config import load_config
    from study.search import make_searcher, mlflow_optuna_storage, optuna_experiment

    monkeypatch.chdir(tmp_path)  # a client that fell back to MLflow's default store would write ./mlflow.db here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    objectives = ["forget_efficacy", "utility", "xlang_utility"]
    with _bench().mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path) as url:
        cfg = load_config(overrides={"study": "onestore", "tracking_uri": url, "variants": ["ga"],
                                     "search.optuna_storage": "mlflow", "search.objectives": objectives,
                                     "search.num_samples": 3})
        searcher = make_searcher(cfg)
        told = {}
        for i, values in enumerate([(0.9, 0.6, 0.5), (0.5, 0.9, 0.7), (0.3, 0.4, 0.4)]):
            trial_id = f"t{i}"
            assert "lr" in searcher.suggest(trial_id)
            result = {**dict(zip(objectives, values)), "finished": True, "mmie/gate_G1_es_forget": 0.1 * i - 0.1,
                      "mmie/gate_G2_ppl": -0.05, "mmie/gate_G3_es_mixed": 0.0, "mmie/gate_G1S_es_forget_sem": -0.1,
                      "mmie/gate_G3S_es_mixed_sem": 0.0}
            searcher.on_trial_complete(trial_id, result)
            told[trial_id] = (values, result)
        searcher._ot_study._storage.flush_all_batches()

        client = MlflowClient(url)
        experiment = client.get_experiment_by_name(optuna_experiment("onestore"))
        assert experiment is not None and client.search_runs([experiment.experiment_id])
        loaded = optuna.load_study(study_name="onestore", storage=mlflow_optuna_storage(url, "onestore-optuna"))
        assert len(loaded.trials) == 3
        for trial in loaded.trials:
            values, result = told[trial.user_attrs["trial_id"]]
            assert trial.state == optuna.trial.TrialState.COMPLETE and trial.values == pytest.approx(list(values))
            assert list(trial.constraints.values()) == pytest.approx(
                [result[f"mmie/gate_{g}"] for g in loaded.user_attrs["constraints"]])
        # t2 breaks G1 (0.1 > 0): infeasible, so never on Optuna's Pareto set, though t0 and t1 do not dominate it
        assert {t.user_attrs["trial_id"] for t in loaded.best_trials} == {"t0", "t1"}
        pareto = optuna.visualization.plot_pareto_front(loaded, target_names=objectives)
        assert any(t.type == "scatter3d" for t in pareto.data)
        history = optuna.visualization.plot_hypervolume_history(loaded, reference_point=[0.0, 0.0, 0.0])
        assert list(history.data[0].y)[-1] > 0
    assert not (tmp_path / "mlflow.db").exists()
