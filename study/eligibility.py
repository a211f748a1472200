"""Which trials a study's Pareto front is made of: one rule, used live by the driver (study.tracking.front_recorder) and
on read-back (study.results.front, and through it export and the notebook). No Ray here, so both can import it.

A trial is ranked when its values are final (it completed, or diverged), every objective is finite, its utility is
at or above the study's floor, and:
- it did not diverge, unless the study asks for diverged trials (`front.include_diverged`): a trial that crossed
  the adapter-norm bound at step k is a run of k steps, not of the study's budget;
- its forget continuations are not degenerate (trainables.metrics.degenerate), unless the study asks for them
  (`front.include_degenerate`): output that is not language is not forgetting. Export never picks one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainables.trial.status import FINAL_STATUSES, TrialStatus


@dataclass(frozen=True)
class FrontRule:
    objectives: tuple[str, ...]
    utility_floor: float | None = None
    include_diverged: bool = False
    include_degenerate: bool = False

    def exclusion(self, status: str, metrics: dict, final_only: bool = True) -> str | None:
        """Why a trial with this status and these (final) metrics is kept off the front; None if it is ranked.
        `final_only=False` also ranks trials still running or stopped early (a look at a study in progress)."""
        if final_only and status not in FINAL_STATUSES:
            return f"status {status}"
        if status == TrialStatus.DIVERGED and not self.include_diverged:
            return "diverged"
        if metrics.get("degenerate") and not self.include_degenerate:
            return "degenerate"
        for name in self.objectives:
            value = metrics.get(name)
            if value is None or not math.isfinite(value):
                return f"no finite {name}"
        if self.utility_floor is not None and metrics.get("utility", 0.0) < self.utility_floor:
            return f"utility below the floor {self.utility_floor:g}"
        return None

    def ranks(self, status: str, metrics: dict, final_only: bool = True) -> bool:
        return self.exclusion(status, metrics, final_only) is None
