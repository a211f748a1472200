"""The study as MLflow shows it: run statuses as mlflow.optuna maps them, and (in headless Chromium, when it is
installed) the runs table with the parent and its child runs, and the parent's front artifacts."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.tracking.parent_run import child_runs, latest_parent_run
from study.tracking.ui_link import run_page_url, runs_page_url

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_mlflow_ui", ROOT / "bench" / "check_mlflow_ui.py")
check_mlflow_ui = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = check_mlflow_ui  # its dataclass looks its module up there
_spec.loader.exec_module(check_mlflow_ui)


@pytest.fixture(scope="module")
def quick_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-ui")
    return check_mlflow_ui.quick_store(root, "ui-check"), root


def test_links_open_the_model_training_view_on_the_right_server():
    assert runs_page_url("7") == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert runs_page_url("7", "http://mlflow.lab:8080/").startswith("http://mlflow.lab:8080/#/experiments/7/runs?")
    assert runs_page_url("7", "sqlite:////data/mlflow.db").startswith("http://127.0.0.1:5000/#/")
    assert run_page_url("7", "abc", tab="artifacts").endswith("/#/experiments/7/runs/abc/artifacts?workflowType="
                                                              "machine_learning")


@pytest.mark.slow  # shares the store (a tiny study, written once) with the browser check
def test_trial_runs_end_with_the_status_mlflow_optuna_gives_their_optuna_state(quick_store):
    uri, _ = quick_store
    client, exp_id, parent = latest_parent_run(uri, "ui-check")
    runs = child_runs(client, exp_id, parent)
    assert len(runs) == len(check_mlflow_ui.QUICK_TRIALS)
    pairs = {(r.data.tags["trial_status"], r.info.status) for r in runs}
    assert pairs == {("completed", "FINISHED"), ("stopped_early", "KILLED"), ("error", "FAILED")}
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(parent)}
    assert {"pareto_front.png", "pareto_front.html", "pareto_front.json"} <= artifacts


@pytest.mark.slow
@pytest.mark.skipif(check_mlflow_ui.chromium() is None,
                    reason="needs Debian's chromium (apt-get install -y chromium) for a headless browser")
def test_browser_shows_the_runs_table_the_child_runs_and_the_front(quick_store):
    uri, root = quick_store
    with check_mlflow_ui.mlflow_server(uri, root) as base:
        pages = {p.name: p for p in check_mlflow_ui.pages(uri, "ui-check", base)}
        # The front HTML's views render inside MLflow's iframe, outside the page's DOM: the bench's page 6 opens the
        # HTML itself (tests/test_benches.py), tests/test_front_views.py checks its traces.
        for name in ("2-runs-flat", "3-parent-artifacts", "5-front-html"):
            page = pages[name]
            dom = check_mlflow_ui.browse(page.url, root / "chromium-profile")
            assert len(page.must_show) >= (1 if name == "5-front-html" else 3)
            assert [s for s in page.must_show if s not in dom] == [], name
            assert [s for s in page.must_not_show if s in dom] == [], name
    shutil.rmtree(root / "chromium-profile", ignore_errors=True)
