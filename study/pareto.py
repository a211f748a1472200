"""Pareto tools for the study's objectives: dominance, non-dominated sorting, crowding, hypervolume, knee.

Unlearning trades forgetting against utility, so a study has no single best trial; it has a front. These pure
numpy functions (no Ray) serve the multi-objective ASHA scheduler (study/schedulers.py) and the study report.

Conventions: every objective is MAXIMISED (negate a "min" objective before calling). Points are finite arrays
of shape (n, k); hypervolume supports k = 2 and 3, the platform's objective counts (forget_efficacy, utility
and optionally xlang_utility); the knee (`knee`, never a trial that did not unlearn) and `build_front` any k.

Hypervolume reference point: the worst acceptable value of each objective, given in `DEFAULT_REFERENCE`
(0.0 for each: a trial that forgets nothing or keeps no utility is worth nothing). The hypervolume measures
the region between the reference and the front; a point that is not strictly better than the reference in
every objective adds nothing to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.settings import MIN_FORGOTTEN

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


# The knee's rule (docs/results.md "Reading the front" quotes it): a trial whose forgetting is below this did not
# unlearn, and is never the knee, however well it keeps utility; the attack sweep's shares use the same floor.
KNEE_MIN_FORGET = MIN_FORGOTTEN


def is_forgetting(objective: str) -> bool:
    """Whether an objective measures forgetting (forget_efficacy, relearn_forget_efficacy, 1-es_forget) rather than
    what the model keeps (utility, xlang_utility)."""
    return "forget" in objective


@dataclass(frozen=True)
class Knee:
    """The front's knee and why: the front member closest to the ideal point among those that unlearned.

    Gaps: per objective, (ideal - value) / (ideal - reference), where the ideal is the front's best value and the
    reference the hypervolume's (0 for the platform's objectives): a share of the objective's useful range, so a
    utility of 0.95 against 0.997 is a gap of 5%, not the whole range of the front (min-max normalising over the
    front made such a member look as bad on xlang_utility as one that forgot nothing looked on forgetting).
    Weights: forgetting counts as one objective against the utilities together, half each (shared equally within
    each half; all to one half when the other has no objective). Distance: the weighted Euclidean norm of the gaps.
    Candidates: front members whose first forgetting objective is at least `min_forget`; none: no knee (`index`
    None). Ties go to the better forgetting, then the lower index.
    """

    objectives: tuple[str, ...]
    members: np.ndarray  # indices (into the points) of the front's members
    distance: np.ndarray  # per member: weighted distance to the ideal point; NaN where it did not unlearn
    ideal: np.ndarray
    reference: np.ndarray
    weights: np.ndarray
    min_forget: float
    forget_index: int | None  # the objective that decides "unlearned"; None: no forgetting objective
    index: int | None  # the knee (into the points); None when no member unlearned

    def distance_of(self, point_index: int) -> float:
        """A point's distance to the ideal (NaN for a point off the front or one that did not unlearn)."""
        where = np.flatnonzero(self.members == point_index)
        return float(self.distance[where[0]]) if len(where) else float("nan")

    def rule(self) -> str:
        """The definition in one line, with this front's numbers."""
        forget = [o for o in self.objectives if is_forgetting(o)]
        keep = [o for o in self.objectives if not is_forgetting(o)]
        weights = ", ".join(f"{o} {w:.2g}" for o, w in zip(self.objectives, self.weights))
        floor = (f"among members with {self.objectives[self.forget_index]} >= {self.min_forget:g}, "
                 if self.forget_index is not None else "")
        halves = (f"forgetting ({', '.join(forget)}) against the utilities ({', '.join(keep)}) half and half"
                  if forget and keep else "objectives weighted equally")
        return (f"knee: {floor}the closest to the front's ideal point "
                f"({', '.join(f'{v:.3g}' for v in self.ideal)}) by weighted distance of the gaps to it, as shares "
                f"of the range above the reference point; {halves} ({weights})")

    def why(self, labels: list[str]) -> str:
        """Why the knee is the knee, naming each front member by `labels` (one per point)."""
        if self.index is None:
            return (f"no knee: no front member has {self.objectives[self.forget_index]} >= {self.min_forget:g} "
                    "(none unlearned)")
        parts = []
        order = sorted(range(len(self.members)), key=lambda j: (np.isnan(self.distance[j]), self.distance[j]))
        for j in order:
            name = labels[self.members[j]]
            if np.isnan(self.distance[j]):
                parts.append(f"{name} did not unlearn ({self.objectives[self.forget_index]} < {self.min_forget:g})")
            else:
                parts.append(f"{name} {self.distance[j]:.3f}")
        return f"knee {labels[self.index]}: distance to the ideal, smallest first: " + "; ".join(parts)


def knee(points, objectives: list[str] | tuple[str, ...], reference=None,
         min_forget: float = KNEE_MIN_FORGET) -> Knee:
    """The knee of the points' front (see `Knee`); `reference` defaults to 0 per objective."""
    pts = _as_points(points, k=len(objectives))
    if len(pts) == 0:
        raise ValueError("the knee of an empty point set")
    if pts.shape[1] != len(objectives):
        raise ValueError(f"points have {pts.shape[1]} objectives, names {len(objectives)}")
    ref = np.zeros(len(objectives)) if reference is None else np.asarray(reference, dtype=float).reshape(-1)
    members = np.flatnonzero(pareto_front_mask(pts))
    front = pts[members]
    ideal = front.max(axis=0)
    span = ideal - ref
    gaps = np.divide(ideal - front, span, out=np.zeros_like(front), where=span > 0)
    forgetting = np.array([is_forgetting(o) for o in objectives])
    weights = np.where(forgetting, 0.5 / max(forgetting.sum(), 1), 0.5 / max((~forgetting).sum(), 1))
    weights = weights / weights.sum()
    distance = np.sqrt((weights * gaps**2).sum(axis=1))
    forget_index = int(np.flatnonzero(forgetting)[0]) if forgetting.any() else None
    if forget_index is not None:
        distance[front[:, forget_index] < min_forget] = np.nan
    candidates = np.flatnonzero(~np.isnan(distance))
    index = None
    if len(candidates):
        forget_key = front[candidates, forget_index] if forget_index is not None else np.zeros(len(candidates))
        best = candidates[np.lexsort((candidates, -forget_key, distance[candidates]))[0]]
        index = int(members[best])
    return Knee(tuple(objectives), members, distance, ideal, ref, weights, min_forget, forget_index, index)


def knee_point(points, objectives: list[str] | tuple[str, ...] | None = None, reference=None,
               min_forget: float = KNEE_MIN_FORGET) -> int | None:
    """Index (into `points`) of the front's knee (`knee`), None when no front member unlearned. Without
    `objectives`, the first is the forgetting one and the others are utilities (the platform's order)."""
    pts = _as_points(points)
    if len(pts) == 0:
        raise ValueError("knee_point of an empty point set")
    names = objectives or ["forget_efficacy"] + [f"utility_{m}" for m in range(1, pts.shape[1])]
    return knee(pts, names, reference, min_forget).index


@dataclass
class Front:
    """A Pareto front built from rows (trials): the one construction the live recorder, the read-back front, the
    ladder report and the views share. `items` are the rows ranked (their eligibility is the caller's rule,
    study.eligibility), in the caller's order; `points[i]` are item i's objective values."""

    objectives: tuple[str, ...]
    items: list
    points: np.ndarray
    ranks: np.ndarray
    knee: Knee | None  # None for an empty front
    reference: np.ndarray

    @property
    def members(self) -> list[int]:
        """Indices of the items on the front."""
        return [int(i) for i in np.flatnonzero(self.ranks == 0)]

    def member_items(self) -> list:
        return [self.items[i] for i in self.members]

    @property
    def knee_item(self):
        return None if self.knee is None or self.knee.index is None else self.items[self.knee.index]

    def hypervolume(self) -> float:
        return hypervolume(self.points, self.reference) if len(self.items) else 0.0


def build_front(items, objectives, value=None, reference=None, min_forget: float = KNEE_MIN_FORGET) -> Front:
    """The front of `items` over `objectives`: `value(item, name)` reads an objective (default: item[name]); the
    reference defaults to `reference_point(objectives)` where every objective has one, else 0."""
    items = list(items)
    objectives = tuple(objectives)
    read = value or (lambda item, name: item[name])
    points = np.array([[read(it, o) for o in objectives] for it in items], dtype=float).reshape(len(items),
                                                                                              len(objectives))
    if reference is None:
        known = all(o in DEFAULT_REFERENCE for o in objectives)
        reference = reference_point(list(objectives)) if known else np.zeros(len(objectives))
    reference = np.asarray(reference, dtype=float)
    ranks = nondominated_ranks(points)
    found = knee(points, objectives, reference, min_forget) if len(items) else None
    return Front(objectives, items, points, ranks, found, reference)


def apply_floor(points, objective_index: int, floor: float) -> np.ndarray:
    """Mask of the points whose objective `objective_index` meets the floor (e.g. a minimum utility)."""
    pts = _as_points(points)
    return pts[:, objective_index] >= floor if len(pts) else np.zeros(0, dtype=bool)
