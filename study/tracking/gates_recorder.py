"""mmie.py's acceptance gates in MLflow, kept by the driver as trials finish.

Every finished trial's child run is tagged `mmie_gates` (feasible / infeasible / unknown) from its last result,
and the study's parent run gets the base model's mmie.py measurements (`mmie/base/<name>`, step 0) from the first
result that carries them: mmie.py's gates compare to them, and every trial of a study measures the same base.
A tracking failure is printed and never stops the study.
"""

from __future__ import annotations

from study.tracking.callback import MlflowCallback
from trainables.metrics.mmie import gates_verdict

TAG = "mmie_gates"
BASE_PREFIXES = ("mmie/base/", "mia_min_k_auc_base")


class MmieGatesRecorder(MlflowCallback):
    name = "mmie tracking"

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        super().__init__(tracking_uri, experiment_id, parent_run_id)
        self.base_logged = False

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._safely(self.record, trial.trial_id, dict(trial.last_result or {}))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._safely(self.record, trial.trial_id, dict(trial.last_result or {}))

    def record(self, trial_id: str, result: dict) -> None:
        run_id = self.trial_run_id(trial_id)
        if run_id is not None:
            self.client.set_tag(run_id, TAG, gates_verdict(result))
        base = {k: float(v) for k, v in result.items() if k.startswith(BASE_PREFIXES) and v is not None}
        if base and not self.base_logged:
            if not any(k.startswith("mmie/base/") for k in self.client.get_run(self.parent).data.metrics):
                from mlflow.entities import Metric

                self.client.log_batch(self.parent, metrics=[Metric(k, v, 0, 0) for k, v in sorted(base.items())])
            self.base_logged = True
