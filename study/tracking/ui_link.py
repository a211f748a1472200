"""Where MLflow's UI shows a study: its runs table, not the GenAI overview.

MLflow 3's UI decides what an experiment opens on from one global switch (GenAI / Model training), not from the
experiment: the page's `workflowType` query parameter, else the browser's last choice, else GenAI, whose landing
page is an empty "Overview" of traces. The experiment tag `mlflow.experimentKind` is ignored for this, and the
server has no option for it. So the links the study prints carry `workflowType=machine_learning`: the runs table,
the study's parent run `study-<name>` unfolding into one child run per trial.
"""

from __future__ import annotations

from urllib.parse import urlencode

# What `mlflow ui` / `mlflow server` serve on when the study logged to a local store (a sqlite file).
LOCAL_UI = "http://127.0.0.1:5000"
MODEL_TRAINING = {"workflowType": "machine_learning"}


def ui_base(tracking_uri: str | None) -> str:
    """The UI's address: the tracking server itself, or the local default for a file store."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return LOCAL_UI


def runs_page_url(experiment_id: str, tracking_uri: str | None = None, **query: str) -> str:
    """The experiment's runs table in the Model training view; `query` adds the UI's own parameters (for example
    `orderByKey` or `searchFilter`, either of which lists child runs flat instead of under their parent)."""
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs?{urlencode({**MODEL_TRAINING, **query})}"


def run_page_url(experiment_id: str, run_id: str, tracking_uri: str | None = None, tab: str = "") -> str:
    """One run's page (`tab="artifacts"`: its artifacts, the parent's front plot and table among them)."""
    path = f"/#/experiments/{experiment_id}/runs/{run_id}" + (f"/{tab}" if tab else "")
    return f"{ui_base(tracking_uri)}{path}?{urlencode(MODEL_TRAINING)}"
