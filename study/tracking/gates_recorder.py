"""mmie.py's acceptance gates and verdict in MLflow, kept by the driver as trials finish.

Every finished trial's child run is tagged `mmie_gates` (feasible / infeasible / unknown: the search's
constraints) and `mmie_verdict` (mmie.py's decision under its fallback rule: PROCEED, or STOP with the failing
gates in mmie.py's names; G4 is not predicted), from its last result. The study's parent run gets the base
model's mmie.py measurements (`mmie/base/<name>`, step 0) from the first result that carries them (every trial of
a study measures the same base), and the tag `mmie_empty_replies`: "true" when the base model answers mmie.py's
prompts (whole lines) with empty or one-word replies at least half the time, so that mmie.py's ES measures
nothing on this model (also printed). A tracking failure is printed and never stops the study.
"""

from __future__ import annotations

import sys

from study.tracking.callback import MlflowCallback
from trainables.metrics.mmie import gates_verdict, replies_empty, verdict_label

TAG = "mmie_gates"
VERDICT_TAG = "mmie_verdict"
EMPTY_TAG = "mmie_empty_replies"
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
            self.client.set_tag(run_id, VERDICT_TAG, verdict_label(result))
        base = {k: float(v) for k, v in result.items() if k.startswith(BASE_PREFIXES) and v is not None}
        if base and not self.base_logged:
            if not any(k.startswith("mmie/base/") for k in self.client.get_run(self.parent).data.metrics):
                from mlflow.entities import Metric

                self.client.log_batch(self.parent, metrics=[Metric(k, v, 0, 0) for k, v in sorted(base.items())])
            empty = replies_empty(base)
            self.client.set_tag(self.parent, EMPTY_TAG, str(empty).lower())
            if empty:
                print(f"[{self.name}] the base model answers mmie.py's prompts with empty replies "
                      f"({base['mmie/base/empty_reply_share']:.0%} under two words): mmie.py's ES figures (and gates "
                      "G1, G3, G5, G7) measure nothing on this model", file=sys.stderr)
            self.base_logged = True
