"""study.pareto: hand-built cases, then property tests against brute force on small integer grids, where ties
and duplicates are common and the exact hypervolume is a count of unit cells."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from study import pareto
from study.pareto import (
    DEFAULT_REFERENCE,
    apply_floor,
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_history,
    knee_point,
    nondominated_ranks,
    pareto_front_mask,
    reference_point,
)

# --- hand-built cases -------------------------------------------------------------------------------------------


def test_dominates():
    assert dominates((2, 2), (1, 2))
    assert not dominates((1, 2), (1, 2))  # equal: neither dominates
    assert not dominates((3, 0), (0, 3))
    assert not dominates((1, 2), (2, 2))


def test_ranks_by_hand():
    points = [(1, 3), (2, 2), (3, 1), (1, 1), (1, 1), (0, 0), (2, 2)]
    assert nondominated_ranks(points).tolist() == [0, 0, 0, 1, 1, 2, 0]
    assert pareto_front_mask(points).tolist() == [True, True, True, False, False, False, True]
    assert nondominated_ranks(np.zeros((0, 2))).shape == (0,)


def test_hypervolume_2d_by_hand():
    assert hypervolume([(1, 3), (2, 2), (3, 1)], [0, 0]) == pytest.approx(6.0)
    # (0, 5) is not strictly better than the reference in the first objective: it adds nothing
    assert hypervolume([(1, 3), (0, 5)], [0, 0]) == pytest.approx(3.0)
    assert hypervolume(np.zeros((0, 2)), [0, 0]) == 0.0


def test_hypervolume_3d_by_hand():
    # three boxes of volume 2; each pair and the triple overlap in the unit cube: 3*2 - 3*1 + 1 = 4
    points = [(2, 1, 1), (1, 2, 1), (1, 1, 2)]
    assert hypervolume(points, [0, 0, 0]) == pytest.approx(4.0)
    assert pareto._sweep_hypervolume(np.array(points, dtype=float), np.zeros(3)) == pytest.approx(4.0)
    assert hypervolume([(0.5, 0.9, 1.2)], [0.0, 0.5, 1.0]) == pytest.approx(0.5 * 0.4 * 0.2)


def test_hypervolume_rejects_other_dimensions():
    with pytest.raises(ValueError):
        hypervolume([(1, 2, 3, 4)], [0, 0, 0, 0])
    with pytest.raises(ValueError):
        hypervolume([(1,)], [0])
    with pytest.raises(ValueError):
        hypervolume([(1, 2, 3)], [0, 0])


def test_reference_point():
    assert reference_point(["utility", "forget_efficacy"]).tolist() == [0.0, 0.0]
    assert len(reference_point(list(DEFAULT_REFERENCE))) == len(DEFAULT_REFERENCE)
    with pytest.raises(ValueError, match="loss"):
        reference_point(["forget_efficacy", "loss"])


def test_crowding_distance_by_hand():
    d = crowding_distance([(0, 3), (1, 2), (2, 1), (3, 0)])
    assert np.isinf(d[[0, 3]]).all()
    assert d[1:3] == pytest.approx([4 / 3, 4 / 3])  # (2-0)/3 + (3-1)/3
    assert np.isinf(crowding_distance([(0, 1), (1, 0)])).all()
    assert crowding_distance(np.zeros((0, 2))).shape == (0,)


def test_knee_point():
    assert knee_point([(1, 3), (2, 2), (3, 1)]) == 1
    # dominated points are never the knee, however balanced
    assert knee_point([(0.5, 0.5), (0.0, 1.0), (0.45, 0.45), (1.0, 0.0), (0.1, 0.95)]) == 0
    # 3-D: normalised (1,0,0), (0,1,0), (0,0,1), (.5,.5,.5) -> the balanced point
    assert knee_point([(2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, 1)]) == 3
    assert knee_point([(0.3, 0.7)]) == 0
    # A two-member front ties on max-min (each member's worst is 0): the better forgetting wins, not the first
    # listed (the default study's knee was a trial that forgot nothing, best only on collateral utility).
    assert knee_point([(0.008, 1.0, 0.997), (0.714, 1.0, 0.962)]) == 1
    assert knee_point([(0.714, 1.0, 0.962), (0.008, 1.0, 0.997)]) == 0
    with pytest.raises(ValueError):
        knee_point(np.zeros((0, 2)))


def test_apply_floor():
    points = np.array([(0.9, 0.5), (0.2, 0.95), (0.6, 0.9)])
    assert apply_floor(points, 1, 0.9).tolist() == [False, True, True]
    assert apply_floor(np.zeros((0, 2)), 0, 0.5).shape == (0,)


def test_hypervolume_history_by_hand():
    history = hypervolume_history([(1, 1), (2, 2), (1, 3), (0.5, 0.5)], [0, 0])
    assert history == pytest.approx([1.0, 4.0, 5.0, 5.0])
    assert hypervolume_history(np.zeros((0, 2)), [0, 0]) == []


# --- properties against brute force ----------------------------------------------------------------------------

GRID = 4  # values 0..GRID: a small grid, so ties and duplicates occur often


@st.composite
def point_sets(draw, min_size=0):
    k = draw(st.sampled_from([2, 3]))
    n = draw(st.integers(min_size, 12))
    values = draw(st.lists(st.integers(0, GRID), min_size=n * k, max_size=n * k))
    return np.array(values, dtype=float).reshape(n, k)


def brute_dominates(a, b):
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def brute_ranks(points):
    ranks, remaining, rank = {}, set(range(len(points))), 0
    while remaining:
        front = {i for i in remaining if not any(brute_dominates(points[j], points[i]) for j in remaining)}
        ranks.update(dict.fromkeys(front, rank))
        remaining -= front
        rank += 1
    return [ranks[i] for i in range(len(points))]


def grid_hypervolume(points, reference):
    """Unit cells [c, c+1]^k above the integer reference covered by some point's box."""
    k = len(reference)
    cells = itertools.product(*[range(int(r), GRID) for r in reference])
    return sum(any(all(p[m] >= c[m] + 1 for m in range(k)) for p in points) for c in cells)


references = st.sampled_from([0, 1])


@settings(max_examples=100, deadline=None)
@given(point_sets())
def test_ranks_match_brute_force_peel(points):
    assert nondominated_ranks(points).tolist() == brute_ranks(points)


@settings(max_examples=60, deadline=None)
@given(point_sets())
def test_front_is_mutually_nondominated_and_dominates_the_rest(points):
    mask = pareto_front_mask(points)
    front, rest = points[mask], points[~mask]
    assert not any(dominates(a, b) for a in front for b in front)
    assert all(any(dominates(f, p) for f in front) for p in rest)


@settings(max_examples=100, deadline=None)
@given(point_sets(), references)
def test_hypervolume_matches_cell_count(points, r):
    reference = np.full(points.shape[1], float(r))
    expected = grid_hypervolume(points, reference)
    assert hypervolume(points, reference) == pytest.approx(expected)
    better = points[np.all(points > reference, axis=1)]
    if len(better):  # the fallback used when Optuna's implementation is missing
        assert pareto._sweep_hypervolume(better, reference) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(point_sets(min_size=1), references)
def test_hypervolume_monotone_and_history(points, r):
    reference = np.full(points.shape[1], float(r))
    history = hypervolume_history(points, reference)
    assert len(history) == len(points)
    assert all(b >= a - 1e-12 for a, b in zip(history, history[1:]))
    assert history[-1] == pytest.approx(hypervolume(points, reference))
    # the hypervolume only counts the front
    assert history[-1] == pytest.approx(hypervolume(points[pareto_front_mask(points)], reference))


@settings(max_examples=60, deadline=None)
@given(point_sets(min_size=1), st.randoms(use_true_random=False))
def test_crowding_ignores_input_order_and_knee_is_on_the_front(points, rnd):
    front = np.unique(points[pareto_front_mask(points)], axis=0)
    perm = list(range(len(front)))
    rnd.shuffle(perm)
    d = crowding_distance(front)
    assert np.array_equal(crowding_distance(front[perm]), d[perm])
    assert (d >= 0).all()
    if len(front) <= 2:
        assert np.isinf(d).all()
    else:  # each objective's extremes are boundary points
        for m in range(points.shape[1]):
            if np.ptp(front[:, m]) > 0:
                assert np.isinf(d[front[:, m] == front[:, m].max()]).any()
    knee = knee_point(points)
    assert pareto_front_mask(points)[knee]
