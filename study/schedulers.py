"""Multi-objective asynchronous successive halving (ASHA) as a Ray Tune scheduler.

Ray's ASHA stops a trial at a rung when its single metric falls below the rung's top-1/eta quantile. Unlearning
studies optimise several objectives at once (forget_efficacy, utility, ...), so here the trials recorded at a
rung are put in one strict order and a trial continues only if its position is within the top ceil(n/eta). The
structure follows Ray's `AsyncHyperBandScheduler` with one bracket (ray/tune/schedulers/async_hyperband.py).

The order: non-domination rank first; within a rank, the larger exclusive hypervolume contribution (the volume
lost if the trial alone were removed: SMS-EMOA's criterion, Beume, Naujoks & Emmerich 2007), measured from the
platform's reference point (0 for forget_efficacy and utility: pareto.DEFAULT_REFERENCE); then the larger
crowding distance; then the earlier trial id. NSGA-II's crowding distance alone is not used first because it is
infinite at both extremes of every front: with two objectives both extremes tie at the top, so with three
non-dominated trials and eta = 3 two would continue against a quota of one, and the trial that does nothing
(forget_efficacy near 0, the highest utility) would always survive. Its hypervolume contribution is near 0, so it
ranks behind every trial of its front that adds more. The last key, the trial id, makes the order strict, so at most
ceil(n/eta) of the n trials at a rung are ever judged to continue; Ray's trial ids sort in creation order.

Each decision is taken on the records present when the trial reaches the rung, as in ASHA (Li et al. 2020): the
first trials at a rung are judged against few others, and over a whole asynchronous run more trials can pass a
rung than the quota of its final records.

The decision uses each trial's POSITION in that order. Syne Tune's MOASHA instead argsorts the trials and reads
`ordering[i]` as trial i's rank, which can stop a newcomer that dominates every other trial.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
from ray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

from study.pareto import DEFAULT_REFERENCE, crowding_distance, hypervolume, nondominated_ranks


def hypervolume_contributions(front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each point's exclusive hypervolume contribution within one front (mutually non-dominated points, k = 2
    or 3): the hypervolume lost if it alone were removed.

    Computed over the distinct points, so duplicates share a value rather than hiding each other (removing one
    copy of a duplicated point loses nothing). Rounded to 12 significant digits of the front's hypervolume, so
    that points contributing equally in exact arithmetic tie instead of being ordered by rounding noise.
    """
    distinct, inverse = np.unique(front, axis=0, return_inverse=True)
    total = hypervolume(distinct, reference)
    if total == 0:
        return np.zeros(len(front))
    lost = np.array([total - hypervolume(np.delete(distinct, i, axis=0), reference) for i in range(len(distinct))])
    lost = np.round(np.maximum(lost, 0.0) / total, 12) * total
    return lost[inverse.reshape(-1)]


def resolve_reference(points: np.ndarray, reference: Sequence[float] | None) -> np.ndarray:
    """The reference point (maximised) for these points: `reference` where given; for an objective without one
    (None or NaN), the rung's worst value less a tenth of its range, so its worst trial still counts."""
    k = points.shape[1]
    ref = np.full(k, np.nan) if reference is None else np.array(reference, dtype=float).reshape(k)
    unknown = np.isnan(ref)
    if unknown.any():
        span = np.ptp(points, axis=0)
        fallback = points.min(axis=0) - np.where(span > 0, 0.1 * span, 1.0)
        ref[unknown] = fallback[unknown]
    return ref


def order_positions(points: np.ndarray, reference: Sequence[float] | None = None,
                    ids: Sequence[str] | None = None) -> np.ndarray:
    """Each point's position (0 = best) in the strict order of the module docstring: non-domination rank, then
    larger hypervolume contribution within the rank, then larger crowding distance, then the smaller id.

    Points are maximised; `reference` is the hypervolume reference point (see `resolve_reference`); `ids` name
    the points (default: their indices). The positions are a permutation of 0..n-1 that depends on the points
    and their ids, not on the order they were recorded in. With other than 2 or 3 objectives the hypervolume
    key is skipped.
    """
    points = np.asarray(points, dtype=float)
    n = len(points)
    ids = list(range(n)) if ids is None else list(ids)
    ranks = nondominated_ranks(points)
    crowding = np.zeros(n)
    contribution = np.zeros(n)
    ref = resolve_reference(points, reference) if n else None
    for rank in np.unique(ranks):
        members = ranks == rank
        crowding[members] = crowding_distance(points[members])
        if points.shape[1] in (2, 3):
            contribution[members] = hypervolume_contributions(points[members], ref)
    order = sorted(range(n), key=lambda i: (ranks[i], -contribution[i], -crowding[i], ids[i]))
    positions = np.empty(n, dtype=int)
    positions[order] = np.arange(n)
    return positions


def decide(rung_records: Mapping[str, np.ndarray], trial_id: str, reduction_factor: float,
           reference: Sequence[float] | None = None) -> bool:
    """Whether `trial_id` continues past the rung (True) or stops, given every objective vector (maximised)
    recorded at the rung, its own included: it continues if its position is below ceil(n/eta).

    As in Ray's ASHA there is no grace for a thinly populated rung: the first trial at a rung continues (a quota
    of one), the second only if it comes first of the two.
    """
    n = len(rung_records)
    ids = sorted(rung_records)
    points = np.array([rung_records[t] for t in ids], dtype=float)
    position = order_positions(points, reference, ids)[ids.index(trial_id)]
    return bool(position < math.ceil(n / reduction_factor))


def rung_milestones(grace_period: float, max_t: float, reduction_factor: float) -> list[float]:
    """The rungs grace_period * eta^k below max_t, highest first (a trial reaching max_t just stops)."""
    milestones = []
    t = grace_period
    while t < max_t:
        milestones.append(t)
        t *= reduction_factor
    return milestones[::-1]


class MultiObjectiveASHA(FIFOScheduler):
    """Asynchronous successive halving on several objectives (one bracket).

    Args:
        metrics: the objectives, keys of the reported results.
        modes: "max" or "min" for each metric; "min" objectives are negated so that all are maximised inside.
        time_attr: the result key measuring progress; must increase monotonically.
        max_t: trials are stopped when time_attr reaches it.
        grace_period: the first rung; no trial is stopped before it.
        reduction_factor: eta; about 1/eta of the trials reaching a rung go on past it.
        reference: the hypervolume reference point, one value per metric in the metric's own units (a trial
            no better than it in some objective adds no hypervolume). Default: pareto.DEFAULT_REFERENCE for the
            metrics it knows; for others, the rung's worst value less a tenth of its range.
        stop_flags: result keys that, when true, stop the trial at once, wherever it is: a flag that keeps a trial
            off the front for good (`degenerate`: study.eligibility) makes its remaining steps waste. A degenerate
            model forgets "well" by its per-step figures, so it would otherwise win its rungs and push trials that
            can reach the front out of the rung's top 1/eta.
        rejudge: judge a running trial again at each result, at the highest rung it passed, once more trials have
            been recorded there: it stops when it has fallen out of that rung's top ceil(n/eta). Without it, as in
            ASHA, the first trials at a rung pass on few records (the first one on none) and run to the end
            whatever comes after them.

    A result reaching a rung without every objective, with a non-finite one (a diverged trial), or flagged, stops
    the trial there: it is treated as worst. It is not recorded, so it neither takes a place in the rung's top
    1/eta nor puts inf/nan into the sorting.
    """

    def __init__(
        self,
        metrics: list[str],
        modes: list[str],
        time_attr: str = "training_iteration",
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 3,
        reference: Sequence[float | None] | None = None,
        stop_flags: Sequence[str] = (),
        rejudge: bool = False,
    ):
        if not metrics or len(metrics) != len(modes):
            raise ValueError("give one mode per metric, and at least one metric")
        if any(mode not in ("max", "min") for mode in modes):
            raise ValueError(f"modes must be 'max' or 'min', got {modes}")
        if not 0 < grace_period <= max_t:
            raise ValueError("need 0 < grace_period <= max_t")
        if reduction_factor <= 1:
            raise ValueError("reduction_factor must be > 1")
        if reference is None:
            reference = [DEFAULT_REFERENCE.get(m) for m in metrics]
        if len(reference) != len(metrics):
            raise ValueError("give one reference value per metric")
        super().__init__()
        self._metrics = list(metrics)
        self._modes = list(modes)
        self._signs = np.array([1.0 if mode == "max" else -1.0 for mode in modes])
        self._reference = self._signs * np.array([math.nan if r is None else r for r in reference], dtype=float)
        self._time_attr = time_attr
        self._stop_flags = tuple(stop_flags)
        self._rejudge = rejudge
        self._judged_on: dict[tuple[str, float], int] = {}  # (trial, rung): records it was last judged on
        self._max_t = max_t
        self._reduction_factor = reduction_factor
        # (milestone, {trial_id: maximised objective vector}), highest milestone first as in Ray's _Bracket
        self._rungs: list[tuple[float, dict[str, np.ndarray]]] = [
            (m, {}) for m in rung_milestones(grace_period, max_t, reduction_factor)
        ]
        self._num_stopped = 0

    def set_search_properties(self, metric, mode, **spec) -> bool:
        """Accept whatever Tune passes: the objectives come from the constructor."""
        return True

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t:
            return TrialScheduler.STOP
        if self._flagged(result) or (self._rejudge and not self._still_passes(trial.trial_id)):
            action = TrialScheduler.STOP
        else:
            action = self._judge(trial.trial_id, result)
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        """Record a final result that reached an unrecorded rung, so later trials are compared against it."""
        if self._time_attr in result and result[self._time_attr] < self._max_t:
            self._judge(trial.trial_id, result)

    def _judge(self, trial_id: str, result: dict) -> str:
        """Record the result at the highest rung it reached (once per trial and rung) and decide there."""
        t = result[self._time_attr]
        milestone, recorded = next(((m, records) for m, records in self._rungs if t >= m), (None, None))
        if recorded is None or trial_id in recorded:
            return TrialScheduler.CONTINUE  # before the first rung, or already judged at this one
        vector = self._objectives(result)
        if vector is None:
            return TrialScheduler.STOP
        recorded[trial_id] = vector
        self._judged_on[(trial_id, milestone)] = len(recorded)
        return TrialScheduler.CONTINUE if self._continues(recorded, trial_id) else TrialScheduler.STOP

    def _still_passes(self, trial_id: str) -> bool:
        """Whether the trial is still within the top ceil(n/eta) of the highest rung it passed, judged again there
        only once the rung holds more records than when the trial was last judged on it. Only the highest: the
        first of that rung then always runs on, so a study never ends with every trial stopped."""
        milestone, records = next(((m, r) for m, r in self._rungs if trial_id in r), (None, None))
        if records is None:
            return True
        n = len(records)
        if self._judged_on.get((trial_id, milestone), 0) >= n:
            return True  # nothing new there (after a restore, judged again once)
        self._judged_on[(trial_id, milestone)] = n
        return decide(records, trial_id, self._reduction_factor, self._reference)

    def _continues(self, recorded: dict[str, np.ndarray], trial_id: str) -> bool:
        """The rung's decision for `trial_id`, the last of `recorded` (the rung's records in arrival order)."""
        return decide(recorded, trial_id, self._reduction_factor, self._reference)

    def _flagged(self, result: dict) -> bool:
        return any(result.get(flag) for flag in self._stop_flags)

    def _objectives(self, result: dict) -> np.ndarray | None:
        """The result's objectives, all maximised; None if one is missing, not a number, or not finite, or the
        result is flagged."""
        if self._flagged(result):
            return None
        try:
            vector = self._signs * np.array([result[m] for m in self._metrics], dtype=float)
        except (KeyError, TypeError, ValueError):
            return None
        return vector if np.all(np.isfinite(vector)) else None

    def debug_string(self) -> str:
        rungs = " | ".join(
            f"t={m:g}: {len(records)} recorded, front of {self._front_size(records)}"
            for m, records in self._rungs
        )
        return f"Using MultiObjectiveASHA ({', '.join(self._metrics)}): num_stopped={self._num_stopped}\n{rungs}"

    @staticmethod
    def _front_size(records: dict[str, np.ndarray]) -> int:
        return int(np.sum(nondominated_ranks(np.array(list(records.values()))) == 0))

    def get_state(self) -> dict:
        """Plain, JSON-ready state: the rung records (maximised vectors) and the stop count."""
        return {
            "metrics": self._metrics,
            "modes": self._modes,
            "num_stopped": self._num_stopped,
            "rungs": [
                {"milestone": m, "records": {tid: v.tolist() for tid, v in records.items()}}
                for m, records in self._rungs
            ],
        }

    def set_state(self, state: dict) -> None:
        """Load `get_state` output; the objectives and rungs must match this scheduler's."""
        milestones = [rung["milestone"] for rung in state["rungs"]]
        if (state["metrics"], state["modes"]) != (self._metrics, self._modes) or milestones != [
            m for m, _ in self._rungs
        ]:
            raise ValueError("saved scheduler state has other objectives or rungs than this scheduler")
        self._num_stopped = state["num_stopped"]
        self._rungs = [
            (rung["milestone"], {tid: np.array(v, dtype=float) for tid, v in rung["records"].items()})
            for rung in state["rungs"]
        ]

    def save(self, checkpoint_path: str) -> None:
        # JSON rather than Ray ASHA's pickle of __dict__: readable, and safe to load
        with open(checkpoint_path, "w") as f:
            json.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.set_state(json.load(f))
