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
    KNEE_MIN_FORGET,
    apply_floor,
    build_front,
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_history,
    knee,
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
    # 3-D: gaps (0.5, 0.5, 0.5) beat (0, 1, 1); the members that forgot nothing are not candidates
    assert knee_point([(2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, 1)]) == 3
    assert knee_point([(0.3, 0.7)]) == 0
    with pytest.raises(ValueError):
        knee_point(np.zeros((0, 2)))


DEFAULT = ["forget_efficacy", "utility", "xlang_utility"]


def test_knee_of_the_default_studys_two_member_front_is_the_trial_that_unlearned():
    # The default study as a new user ran it: a sine-bounded trial and a DualOptim trial that forgot nothing. Min-max
    # normalising over the front tied them and the tie-break exported the one that forgot nothing.
    sine, dual = (0.58, 0.995, 0.95), (0.008, 1.0, 0.997)
    for points, expected in (([sine, dual], 0), ([dual, sine], 1)):
        found = knee(points, DEFAULT)
        assert found.index == expected
        assert np.isnan(found.distance_of(1 - expected))  # did not unlearn: no distance, never a candidate
        why = found.why(["sine", "dual"] if expected == 0 else ["dual", "sine"])
        assert why.startswith("knee sine:") and "dual did not unlearn (forget_efficacy < 0.1)" in why
    # Even with the minimum off, the reference-scaled distance prefers it: the 5% xlang gap is not a whole range.
    assert knee([sine, dual], DEFAULT, min_forget=0.0).index == 0


def test_knee_of_three_member_fronts():
    # Max-min over the min-max-normalised front picked the first (each member's worst is 0; it has the largest sum).
    keeps, forgets, wrecks = (0.01, 1.0, 1.0), (0.6, 0.9, 0.5), (0.7, 0.5, 0.95)
    found = knee([keeps, forgets, wrecks], DEFAULT)
    # gaps (0, 0.5, 0.05) against (0.14, 0.1, 0.5): distances 0.251 and 0.274, so the trial that forgets most
    assert found.index == 2 and found.distance_of(2) == pytest.approx(0.2512, abs=1e-4)
    assert found.distance_of(1) == pytest.approx(0.2743, abs=1e-4) and np.isnan(found.distance_of(0))
    assert found.weights.tolist() == [0.5, 0.25, 0.25]
    # A balanced member beats the extremes; a dominated point is never the knee.
    pts = [(0.9, 0.3, 0.4), (0.5, 0.9, 0.9), (0.2, 1.0, 1.0), (0.45, 0.85, 0.85)]
    assert knee(pts, DEFAULT).index == 1 and knee(pts, DEFAULT).members.tolist() == [0, 1, 2]
    # No member unlearned: no knee, and it says so.
    nothing = knee([(0.05, 1.0, 0.99), (0.02, 0.99, 1.0)], DEFAULT)
    assert nothing.index is None and nothing.why(["a", "b"]).startswith("no knee: no front member has forget_efficacy")


def test_knee_weighs_forgetting_against_the_utilities_together():
    # Two objectives: half each. Four: forgetting half, three utilities a sixth each.
    assert knee([(1, 3), (3, 1)], ["forget_efficacy", "utility"]).weights.tolist() == [0.5, 0.5]
    four = knee([(0.5, 0.9, 0.9, 0.9)], DEFAULT + ["mixed_utility"])
    assert four.weights == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6]) and four.index == 0
    # The rule names the objectives, the ideal point and the minimum.
    rule = knee([(0.58, 0.995, 0.95), (0.3, 1.0, 0.99)], DEFAULT).rule()
    assert "forget_efficacy >= 0.1" in rule and "0.58, 1, 0.99" in rule and "half and half" in rule


def test_build_front_from_rows():
    rows = [{"id": "a", "f": 0.9, "u": 0.5}, {"id": "b", "f": 0.5, "u": 0.9}, {"id": "c", "f": 0.4, "u": 0.4}]
    front = build_front(rows, ["forget_efficacy", "utility"], value=lambda r, o: r["f" if o == "forget_efficacy" else "u"])
    assert [r["id"] for r in front.member_items()] == ["a", "b"] and front.ranks.tolist() == [0, 0, 1]
    assert front.hypervolume() == pytest.approx(0.9 * 0.5 + 0.5 * 0.4)
    assert front.knee_item["id"] in {"a", "b"}
    assert build_front([], ["forget_efficacy", "utility"]).knee is None


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
    at = knee_point(points)
    if at is None:  # only when no front member unlearned
        assert (points[pareto_front_mask(points), 0] < KNEE_MIN_FORGET).all()
    else:
        assert pareto_front_mask(points)[at] and points[at, 0] >= KNEE_MIN_FORGET
