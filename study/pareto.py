"""Pareto tools for the study's objectives: dominance, non-dominated sorting, crowding, hypervolume, knee.

Unlearning trades forgetting against utility, so a study has no single best trial; it has a front. These pure
numpy functions (no Ray) serve the multi-objective ASHA scheduler (study/schedulers.py) and the study report.

Conventions: every objective is MAXIMISED (negate a "min" objective before calling). Points are finite arrays
of shape (n, k); hypervolume and the knee support k = 2 and 3, the platform's objective counts
(forget_efficacy, utility and optionally xlang_utility).

Hypervolume reference point: the worst acceptable value of each objective, given in `DEFAULT_REFERENCE`
(0.0 for each: a trial that forgets nothing or keeps no utility is worth nothing). The hypervolume measures
the region between the reference and the front; a point that is not strictly better than the reference in
every objective adds nothing to it.
"""

from __future__ import annotations

import numpy as np

# Reused from Optuna: its exact hypervolume (2-D sweep, 3-D O(n^2) cumulative-min method, WFG beyond), which
# MINIMISES, so `hypervolume` negates points and reference. It is private API and absent from early Optuna 4
# releases (which had a WFG class instead), hence the numpy fallback below.
try:
    from optuna._hypervolume import compute_hypervolume as _optuna_hypervolume
except ImportError:
    _optuna_hypervolume = None

DEFAULT_REFERENCE = {"forget_efficacy": 0.0, "utility": 0.0, "xlang_utility": 0.0, "relearn_forget_efficacy": 0.0}


def reference_point(objectives: list[str]) -> np.ndarray:
    """The hypervolume reference point for these objectives, in their order, from `DEFAULT_REFERENCE`."""
    unknown = [o for o in objectives if o not in DEFAULT_REFERENCE]
    if unknown:
        raise ValueError(f"no reference value for objectives {unknown}; known: {sorted(DEFAULT_REFERENCE)}")
    return np.array([DEFAULT_REFERENCE[o] for o in objectives], dtype=float)


def _as_points(points, k: int | None = None) -> np.ndarray:
    """Points as a float (n, k) array; an empty input becomes (0, k)."""
    arr = np.asarray(points, dtype=float)
    if arr.size == 0:
        return arr.reshape(0, k if k is not None else (arr.shape[-1] if arr.ndim == 2 else 0))
    if arr.ndim != 2:
        raise ValueError(f"points must have shape (n, k), got {arr.shape}")
    return arr


def dominates(a, b) -> bool:
    """Whether a Pareto-dominates b: at least as good in every objective and better in one."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(a >= b) and np.any(a > b))


def _domination_matrix(pts: np.ndarray) -> np.ndarray:
    """dom[i, j] is True when point i dominates point j."""
    ge = np.all(pts[:, None, :] >= pts[None, :, :], axis=2)
    gt = np.any(pts[:, None, :] > pts[None, :, :], axis=2)
    return ge & gt


def nondominated_ranks(points) -> np.ndarray:
    """Non-dominated sorting: rank 0 is the Pareto front, rank 1 the front once rank 0 is removed, and so on.

    Identical points never dominate each other, so duplicates share a rank. O(n^2 k), fine for study sizes.
    """
    pts = _as_points(points)
    dom = _domination_matrix(pts)
    ranks = np.full(len(pts), -1, dtype=int)
    remaining = np.ones(len(pts), dtype=bool)
    rank = 0
    while remaining.any():
        dominated = (dom & remaining[:, None]).any(axis=0)
        front = remaining & ~dominated
        ranks[front] = rank
        remaining &= ~front
        rank += 1
    return ranks


def pareto_front_mask(points) -> np.ndarray:
    """True for the points no other point dominates."""
    return nondominated_ranks(points) == 0


def crowding_distance(points) -> np.ndarray:
    """NSGA-II crowding distance of points forming ONE front (not checked); larger means less crowded.

    Per objective, the two extreme points get inf and each other point the gap between its neighbours, divided
    by the objective's range; the distances add up over objectives. An objective with zero range is skipped
    (it says nothing about spread). To keep the result independent of input order, the distance is computed
    over the distinct points, so duplicates get the same value, and ties in one objective are ordered by the
    others. Fewer than three distinct points: all inf.
    """
    pts = _as_points(points)
    if len(pts) == 0:
        return np.zeros(0)
    distinct, inverse = np.unique(pts, axis=0, return_inverse=True)
    return _distinct_crowding(distinct)[inverse.reshape(-1)]


def _distinct_crowding(pts: np.ndarray) -> np.ndarray:
    n, k = pts.shape
    if n <= 2:
        return np.full(n, np.inf)
    distance = np.zeros(n)
    for m in range(k):
        span = pts[:, m].max() - pts[:, m].min()
        if span == 0:
            continue
        keys = np.roll(pts, -m, axis=1).T[::-1]  # np.lexsort's primary key is the last: objective m
        order = np.lexsort(keys)
        values = pts[order, m]
        distance[order[[0, -1]]] = np.inf
        distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def hypervolume(points, reference) -> float:
    """Exact hypervolume (k = 2 or 3) of the region dominated by the points and bounded below by `reference`.

    Only points strictly better than the reference in every objective count; see the module docstring for the
    reference convention and `reference_point` for the platform's default.
    """
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if len(ref) not in (2, 3):
        raise ValueError(f"hypervolume supports 2 or 3 objectives, got {len(ref)}")
    pts = _as_points(points, k=len(ref))
    if pts.shape[1] != len(ref):
        raise ValueError(f"points have {pts.shape[1]} objectives, the reference {len(ref)}")
    better = pts[np.all(pts > ref, axis=1)]
    if len(better) == 0:
        return 0.0
    if _optuna_hypervolume is not None:
        return float(_optuna_hypervolume(-better, -ref))
    return _sweep_hypervolume(better, ref)


def _sweep_hypervolume(pts: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of points all strictly better than ref (k = 2 or 3), by sweeping; O(n^2 log n)."""
    if pts.shape[1] == 2:
        area, covered_y = 0.0, ref[1]
        for x, y in pts[np.argsort(-pts[:, 0], kind="stable")]:
            # earlier points have larger x, so they already cover [ref_x, x] up to covered_y
            if y > covered_y:
                area += (x - ref[0]) * (y - covered_y)
                covered_y = y
        return float(area)
    # 3-D: between consecutive distinct z levels the slice is the 2-D hypervolume of the points reaching it
    levels = np.unique(pts[:, 2])[::-1]
    floors = np.append(levels[1:], ref[2])
    return float(sum((z - floor) * _sweep_hypervolume(pts[pts[:, 2] >= z, :2], ref[:2])
                     for z, floor in zip(levels, floors)))


def hypervolume_history(points_in_completion_order, reference) -> list[float]:
    """Hypervolume of the first i points, for i = 1..n: how the study's front grew (non-decreasing)."""
    ref = np.asarray(reference, dtype=float).reshape(-1)
    pts = _as_points(points_in_completion_order, k=len(ref))
    return [hypervolume(pts[: i + 1], ref) for i in range(len(pts))]


def knee_point(points) -> int:
    """Index (into `points`) of the front's knee, the best-balanced trade-off.

    Definition (max-min): min-max normalise the front members to [0, 1] per objective, where 1 is the front's
    best value (an objective constant over the front counts as 1 for all), and pick the member whose worst
    normalised objective is largest. Ties (every member of a two-member front has a worst of 0) go to the larger
    sum of normalised objectives, then to the better first objective (the study's forgetting), then to the
    lowest index: a member that forgot nothing is not the knee of a front that holds one that forgot.
    """
    pts = _as_points(points)
    if len(pts) == 0:
        raise ValueError("knee_point of an empty point set")
    members = np.flatnonzero(pareto_front_mask(pts))
    front = pts[members]
    low, span = front.min(axis=0), np.ptp(front, axis=0)
    normalised = np.divide(front - low, span, out=np.ones_like(front), where=span > 0)
    # np.lexsort sorts by its last key first; argmax of the sorted order's end is the best member.
    order = np.lexsort((-np.arange(len(front)), front[:, 0], normalised.sum(axis=1), normalised.min(axis=1)))
    return int(members[order[-1]])


def apply_floor(points, objective_index: int, floor: float) -> np.ndarray:
    """Mask of the points whose objective `objective_index` meets the floor (e.g. a minimum utility)."""
    pts = _as_points(points)
    return pts[:, objective_index] >= floor if len(pts) else np.zeros(0, dtype=bool)
