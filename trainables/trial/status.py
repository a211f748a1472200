"""A trial's status: one type for the worker that sets it, the driver that tracks it and the readers of MLflow.

No Ray here, so the front, the report and the exporter read statuses without starting Ray. Being a `StrEnum`, a
status compares equal to the string stored in the run's `trial_status` tag, so a status read back from MLflow is
the same value the trial wrote.
"""

from __future__ import annotations

from enum import StrEnum

STATUS_TAG = "trial_status"  # the child run's tag that holds it


class TrialStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # ran its budget (or a gate-only trial's one measurement)
    STOPPED_EARLY = "stopped_early"  # the scheduler stopped it: its last values are partial
    DIVERGED = "diverged"  # crossed the adapter-norm bound at some step and ended there
    ERROR = "error"
    # Set by the driver, not the trial: open when the user stopped the study (`unlearn-study resume` continues
    # it), or unknown to Ray's saved state after the driver died (started in its last seconds).
    INTERRUPTED = "interrupted"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        """Are its last values final? A trial stopped early has partial values that would wrongly dominate
        finished ones."""
        return self in (TrialStatus.COMPLETED, TrialStatus.DIVERGED)

    @property
    def run_status(self) -> str:
        """The MLflow run status, as mlflow.optuna's storage maps Optuna's states (PRUNED -> KILLED, FAIL ->
        FAILED, COMPLETE -> FINISHED): a diverged trial ended on its own, so it is FINISHED with its tag saying
        why."""
        return {TrialStatus.RUNNING: "RUNNING", TrialStatus.STOPPED_EARLY: "KILLED", TrialStatus.ERROR: "FAILED",
                TrialStatus.INTERRUPTED: "KILLED", TrialStatus.LOST: "KILLED"}.get(self, "FINISHED")


FINAL_STATUSES = tuple(s for s in TrialStatus if s.is_final)
# The order tables and progress lines count them in.
ENDED_STATUSES = (TrialStatus.COMPLETED, TrialStatus.STOPPED_EARLY, TrialStatus.DIVERGED, TrialStatus.ERROR)


def trial_status(result: dict | None, error: bool = False) -> TrialStatus:
    """From a trial's last result: the trainable marks its own last report `finished` (all its steps, or none
    for a gate-only variant); a trial whose last report is not finished was stopped by the scheduler."""
    if error or not result:
        return TrialStatus.ERROR
    if result.get("diverged"):
        return TrialStatus.DIVERGED
    return TrialStatus.COMPLETED if result.get("finished") else TrialStatus.STOPPED_EARLY
