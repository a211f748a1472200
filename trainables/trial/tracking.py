"""MLflow logging from inside a trial: one child run per trial under the study's parent run.

Logging happens in the trial, not through a driver callback: it lets the run survive a restore. Each step's
metrics go in one batch, sent before the step is reported to Tune (a trial stopped at a rung is ended without its
clean-up); after a crash the steps since the last checkpoint are recomputed, and those MLflow holds are skipped. A trial restarted from a checkpoint, or whose first attempt died
before one, finds its run by the trial id tag instead of creating a second one, and skips the steps the run
already holds. A tracking failure never kills the trial: it is printed (the worker log) and counted in
`tracking_errors`. A metric MLflow rejects (an invalid name) is dropped alone, named, and tagged on the run
(`tracking_dropped_metrics`); the rest of its batch is logged.
"""

from __future__ import annotations

import sys
import time
import traceback

from trainables.trial.status import STATUS_TAG, TrialStatus


def _rejected(error: Exception) -> bool:
    """MLflow refused the request's content (a bad name or value): sending it again cannot help."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode

    return isinstance(error, MlflowException) and error.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)



def find_trial_run(client, experiment_id: str, parent_run_id: str, trial_id: str):
    """A trial's MLflow run under a study's parent run (None if it has none yet): the one query for it, used by
    the trial reopening its run after a restore and by the driver's recorders (study.tracking)."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.trial_id = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=1,
    )
    return found[0] if found else None

class TrialRun:
    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, trial_id: str, trial_name: str,
                 params: dict, tags: dict | None = None):
        self.errors = 0
        self.run_id: str | None = None
        # Steps up to here are in MLflow already (a restored trial's earlier life); -1: none (a gate-only trial
        # reports step 0).
        self.logged_through = -1
        self._buffer: list = []
        self.dropped: set[str] = set()  # metric names MLflow rejected (an invalid name): named once, tagged
        self._open_args: tuple | None = None  # None: no tracking configured
        if not tracking_uri:
            return
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri)
        self._open_args = (experiment_id, parent_run_id, trial_id, trial_name, params, tags or {})
        self._call(self._open, *self._open_args)

    def _call(self, fn, *args) -> bool:
        """Run one MLflow call; True if it succeeded."""
        try:
            fn(*args)
            return True
        except Exception:  # noqa: BLE001 - tracking must never end a trial
            self._failed()
            return False

    def _failed(self) -> None:
        """Count and print the exception being handled."""
        self.errors += 1
        print(f"[trial tracking] MLflow call failed ({self.errors}):\n{traceback.format_exc()}", file=sys.stderr)

    def _open(self, experiment_id, parent_run_id, trial_id, trial_name, params, tags):
        from mlflow.entities import Param, RunTag

        found = find_trial_run(self.client, experiment_id, parent_run_id, trial_id)
        if found is not None:
            self.run_id = found.info.run_id
            history = self.client.get_metric_history(self.run_id, "step")
            self.logged_through = int(max((m.value for m in history), default=-1))
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
            return
        run = self.client.create_run(
            experiment_id,
            run_name=trial_name,
            tags={"mlflow.parentRunId": parent_run_id, "trial_id": trial_id, STATUS_TAG: TrialStatus.RUNNING, **tags},
        )
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())])

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Buffer one step's metrics; a step MLflow already holds is skipped, so a restored trial that replays
        steps past its checkpoint (the driver's saved state can lag the trial) never logs one twice."""
        from mlflow.entities import Metric

        if step <= self.logged_through:
            return
        ts = int(time.time() * 1000)
        # A name MLflow rejected once is not sent again (it would cost a one-by-one resend at every flush).
        self._buffer.extend(Metric(k, float(v), ts, step) for k, v in metrics.items() if k not in self.dropped)

    def flush(self) -> None:
        """Send buffered metrics; what fails stays buffered for the next flush (a server that blinks loses
        nothing). A run that could not be opened at the start is opened now."""
        if self._open_args is None:
            return
        if self.run_id is None and not self._call(self._open, *self._open_args):
            return
        while self.run_id is not None and self._buffer:
            chunk = self._buffer[:1000]  # MLflow's log_batch limit
            try:
                self.client.log_batch(self.run_id, chunk)
            except Exception as e:  # noqa: BLE001 - tracking must never end a trial
                if not _rejected(e):
                    self._failed()  # a server that blinks: the batch stays for the next flush
                    return
                # MLflow refuses a whole batch for one bad item: send the items one by one and drop (and name)
                # only those it rejects.
                for k, metric in enumerate(chunk):
                    try:
                        self.client.log_batch(self.run_id, [metric])
                    except Exception as item_error:  # noqa: BLE001
                        if not _rejected(item_error):
                            self._failed()
                            del self._buffer[:k]
                            return
                        self._drop(metric, item_error)
            del self._buffer[: len(chunk)]

    def _drop(self, metric, error) -> None:
        self.errors += 1
        if metric.key not in self.dropped:
            self.dropped.add(metric.key)
            print(f"[trial tracking] MLflow rejected metric {metric.key!r}, dropped ({error})", file=sys.stderr)
            self._call(self.client.set_tag, self.run_id, "tracking_dropped_metrics", ",".join(sorted(self.dropped)))

    def finish(self, status: TrialStatus, attempts: int = 6, wait_s: float = 5.0) -> None:
        """Flush and close the run; retried for about half a minute, since after this the trial is gone."""
        if self._open_args is None:
            return
        for attempt in range(attempts):
            self.flush()
            if (not self._buffer and self.run_id is not None
                    and self._call(self.client.set_tag, self.run_id, STATUS_TAG, status)
                    and self._call(self.client.set_terminated, self.run_id, status.run_status)):
                return
            if attempt < attempts - 1:
                time.sleep(wait_s)
