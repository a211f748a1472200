"""The base of the driver's Ray Tune callbacks that write to MLflow (the front, mmie.py's gates).

Ray pickles callbacks with the study's saved state: the MLflow client is made on first use and left out of the
pickle. A failed MLflow update is printed and never stops the study: the study matters more than its bookkeeping.
"""

from __future__ import annotations

import sys
import traceback

from mlflow.tracking import MlflowClient
from ray import tune

from trainables.trial.tracking import find_trial_run


class MlflowCallback(tune.Callback):
    name = "tracking"  # names the callback in a failure's message

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent = parent_run_id
        self._client: MlflowClient | None = None
        self._run_ids: dict[str, str] = {}  # trial id -> its MLflow run id, once found

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def trial_run_id(self, trial_id: str) -> str | None:
        """The trial's MLflow run id (None until the trial has opened its run)."""
        if trial_id not in self._run_ids:
            found = find_trial_run(self.client, self.experiment_id, self.parent, trial_id)
            if found is None:
                return None
            self._run_ids[trial_id] = found.info.run_id
        return self._run_ids[trial_id]

    def __getstate__(self):
        return {**self.__dict__, "_client": None}

    def _safely(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - the study matters more than its bookkeeping
            print(f"[{self.name}] MLflow update failed:\n{traceback.format_exc()}", file=sys.stderr)
