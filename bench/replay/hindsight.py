"""What early stopping could save at best, on the trials a search proposed: a stopper with hindsight.

It knows every trial's final values, runs to the end only the fewest trials whose front reaches a target
hypervolume (chosen greedily: at each pick, the trial that raises the front's hypervolume most), and stops every
other trial after `min_steps` steps (1: the first report, the earliest any scheduler can stop). No real scheduler does
better on the same proposals, so if this one spends more than a target share of trial-steps, the target is out of
reach of early stopping on those proposals, whatever the rung rule: only other proposals could meet it. (Greedy
picking can need a trial more than the best subset; it is a bound up to that.)"""

from __future__ import annotations

from dataclasses import dataclass

from study.pareto import build_front


@dataclass(frozen=True)
class Hindsight:
    trial_steps: int  # what the hindsight stopper spends
    kept: int  # trials it runs to the end
    trials: int


def hindsight_stopping(finals: list[dict | None], objectives: list[str], target_hv: float, steps: int,
                       min_steps: int = 1) -> Hindsight | None:
    """`finals`: each proposed trial's final metrics, None for one its study's rule never ranks (degenerate,
    diverged, ...: stopped at once); `steps`: a whole trial's steps. None when even every ranked trial run to the end
    stays under `target_hv`."""
    ranked = [m for m in finals if m is not None]
    if not ranked or build_front(ranked, objectives).hypervolume() < target_hv:
        return None
    chosen: list[dict] = []
    while not chosen or build_front(chosen, objectives).hypervolume() < target_hv:
        rest = [m for m in ranked if not any(m is c for c in chosen)]
        chosen.append(max(rest, key=lambda m: build_front([*chosen, m], objectives).hypervolume()))
    kept = len(chosen)
    return Hindsight(kept * steps + (len(finals) - kept) * min_steps, kept, len(finals))
