"""Peers' scheduling rules, replayed beside this project's: what another library would decide on the same records.

`SyneTuneRankReading` is the multi-objective ASHA of study/schedulers.py with one change, the rule by which Syne Tune's
MOASHA (syne_tune/optimizer/schedulers/multiobjective/moasha.py, `_Bracket.on_result`) reads an order. Syne Tune
puts the rung's records in arrival order with the newcomer last, sorts them (`priorities`: the indices of the records,
best first), and reads `searchsorted(sorted(priorities), priorities)[-1] / n` as the newcomer's rank. Since the
priorities are a permutation of 0..n-1, that value is `ordering[n - 1] / n`: the index of the record in the LAST
place of the order, not the newcomer's own place. The newcomer stops if it is above 1/eta. Here the order is this
project's (non-domination rank, hypervolume contribution, crowding, trial id), so the rows differ by the reading
alone, not by Syne Tune's epsilon-net sort.
"""

from __future__ import annotations

import numpy as np

from study.schedulers import MultiObjectiveASHA, order_positions


def synetune_continues(points: np.ndarray, reduction_factor: float, reference, ids: list[str]) -> bool:
    """Syne Tune's decision for the newcomer, the last of `points` (arrival order): continue unless the index at
    the order's last place, over n, exceeds 1/eta."""
    n = len(points)
    positions = order_positions(points, reference, ids)
    ordering = np.argsort(positions)  # indices of the records, best first
    return not ordering[n - 1] / n > 1 / reduction_factor


class SyneTuneRankReading(MultiObjectiveASHA):
    def _continues(self, recorded: dict[str, np.ndarray], trial_id: str) -> bool:
        ids = list(recorded)  # arrival order: the newcomer, just recorded, is last
        assert ids[-1] == trial_id
        points = np.array([recorded[t] for t in ids], dtype=float)
        return synetune_continues(points, self._reduction_factor, self._reference, ids)
