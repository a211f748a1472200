"""study.schedulers.MultiObjectiveASHA: the rung decision by hand (including the Syne Tune MOASHA bug case), the
scheduler object fed fake trials, and one tiny real Ray Tune run."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from study.pareto import crowding_distance, nondominated_ranks
from study.schedulers import MultiObjectiveASHA, decide, order_positions, rung_milestones

CONTINUE, STOP = MultiObjectiveASHA.CONTINUE, MultiObjectiveASHA.STOP

# Eight trials recorded at a rung: a front of three, then dominated layers; the worst (index 5) is placed so
# that reading the ORDERING array as ranks misjudges a newcomer.
RECORDED = [(0.9, 0.2), (0.2, 0.9), (0.6, 0.6), (0.5, 0.4), (0.4, 0.5), (0.05, 0.05), (0.3, 0.3), (0.1, 0.2)]


def records(points):
    return {f"t{i}": np.array(p, dtype=float) for i, p in enumerate(points)}


def buggy_continue(points, index, eta):
    """Syne Tune MOASHA's reading: argsort by (rank, -crowding), then ordering[index] taken as index's rank."""
    points = np.array(points, dtype=float)
    ranks = nondominated_ranks(points)
    crowding = np.zeros(len(points))
    for r in np.unique(ranks):
        crowding[ranks == r] = crowding_distance(points[ranks == r])
    ordering = np.lexsort((-crowding, ranks))
    return ordering[index] < math.ceil(len(points) / eta)


def test_newcomer_dominating_all_continues_where_the_ordering_bug_stops_it():
    points = RECORDED + [(0.95, 0.95)]
    assert decide(records(points), "t8", 3)
    assert order_positions(np.array(points))[8] == 0
    assert not buggy_continue(points, 8, 3)  # the case discriminates: the buggy reading would stop it


def test_newcomer_dominated_by_all_stops():
    assert not decide(records(RECORDED + [(0.01, 0.01)]), "t8", 3)


def test_three_non_dominated_trials_at_eta_3_one_continues_and_not_the_do_nothing_trial():
    # (0.01, 1.0) forgets nothing and keeps all utility; both it and (0.9, 0.3) have infinite crowding distance.
    front = [(0.9, 0.3), (0.5, 0.6), (0.01, 1.0)]
    decisions = [decide(records(front), f"t{i}", 3, reference=[0, 0]) for i in range(3)]
    assert decisions == [False, True, False]  # hypervolume contributions 0.12, 0.147, 0.004
    # without the middle trial the two extremes alone: still one continues, the one that forgets
    assert [decide(records(front[::2]), f"t{i}", 3, reference=[0, 0]) for i in range(2)] == [True, False]


def test_a_do_nothing_extreme_ranks_last_on_its_front():
    front = [(i / 5, 1 - i / 5) for i in range(6)]  # six mutually non-dominated points; ceil(6/3) = 2 continue
    positions = order_positions(np.array(front), reference=[0, 0])
    # (0, 1) and (1, 0) add no hypervolume above the reference (0, 0): behind every interior point
    assert sorted(positions[[0, 5]]) == [4, 5]
    assert sum(decide(records(front), f"t{i}", 3, reference=[0, 0]) for i in range(6)) == 2


def test_the_scheduler_uses_the_platform_reference_for_its_objectives():
    s = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9, reduction_factor=3)
    assert report(s, "a", 1, forget_efficacy=0.9, utility=0.3) == CONTINUE  # alone: a quota of one
    assert report(s, "b", 1, forget_efficacy=0.5, utility=0.6) == CONTINUE  # contributes more than a
    # forgets nothing, highest utility: an extreme of the front, but adds almost no hypervolume
    assert report(s, "c", 1, forget_efficacy=0.01, utility=1.0) == STOP


def test_fewer_than_eta_records_are_judged_too():
    assert decide(records([(0.9, 0.9)]), "t0", 3)  # the first at a rung: a quota of one
    assert not decide(records([(0.9, 0.9), (0.0, 0.0)]), "t1", 3)
    assert decide(records([(0.9, 0.9), (0.0, 0.0)]), "t0", 3)
    assert not decide(records([(0.9, 0.9), (0.5, 0.5), (0.0, 0.0)]), "t2", 3)


def test_exact_ties_go_to_the_earlier_trial_id_within_the_quota():
    # three identical best points and two continuing slots: the two earliest ids continue, whatever the order
    same = {f"t{i}": np.array(p) for i, p in enumerate([(0.5, 0.5)] * 3 + [(0.1, 0.1)] * 3)}
    shuffled = dict(reversed(list(same.items())))
    for recs in (same, shuffled):
        assert [decide(recs, f"t{i}", 3) for i in range(6)] == [True, True] + [False] * 4


@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(st.tuples(st.sampled_from([0.0, 0.2, 0.5, 1.0]) | st.floats(-1, 2),
                              st.sampled_from([0.0, 0.5, 1.0]) | st.floats(-1, 2)), min_size=1, max_size=14),
    eta=st.sampled_from([2, 3, 4, 2.5]),
    three=st.booleans(),
)
def test_never_more_than_the_quota_continue(points, eta, three):
    # ties are common: values drawn from a few levels as well as at random, duplicates included
    pts = [p + (p[0] * p[1],) if three else p for p in points]
    recs = records(pts)
    continuing = sum(decide(recs, t, eta) for t in recs)
    assert continuing == math.ceil(len(pts) / eta)  # at most the quota, and the quota is filled
    assert sorted(order_positions(np.array(pts, dtype=float))) == list(range(len(pts)))
    # a trial no other dominates is never behind one that is dominated
    ranks = nondominated_ranks(np.array(pts, dtype=float))
    positions = order_positions(np.array(pts, dtype=float))
    assert all(positions[i] < positions[j] for i in range(len(pts)) for j in range(len(pts)) if ranks[i] < ranks[j])


def test_rung_milestones():
    assert rung_milestones(1, 9, 3) == [3, 1]
    assert rung_milestones(1, 10, 3) == [9, 3, 1]
    assert rung_milestones(2, 2, 3) == []


def trial(trial_id):
    return SimpleNamespace(trial_id=trial_id)


def report(scheduler, trial_id, t, **metrics):
    return scheduler.on_trial_result(None, trial(trial_id), {"training_iteration": t, **metrics})


def test_min_mode_objectives_are_negated():
    s = MultiObjectiveASHA(["forget_efficacy", "loss"], ["max", "min"], max_t=9)
    assert report(s, "a", 1, forget_efficacy=0.5, loss=1.0) == CONTINUE
    assert report(s, "b", 1, forget_efficacy=0.6, loss=0.5) == CONTINUE
    # highest loss: dominated once loss is minimised (maximising it would put d on the front and continue it)
    assert report(s, "d", 1, forget_efficacy=0.1, loss=2.0) == STOP
    assert report(s, "c", 1, forget_efficacy=0.7, loss=0.2) == CONTINUE


def test_scheduler_across_rungs_and_save_restore(tmp_path):
    s = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9, grace_period=1, reduction_factor=3)
    assert s.set_search_properties(None, None) and s.set_search_properties("utility", "max")
    assert report(s, "a", 1, forget_efficacy=0.8, utility=0.3) == CONTINUE  # alone at the rung
    # non-dominated, and adds more hypervolume than a (0.18 against 0.15): first of the two
    assert report(s, "b", 1, forget_efficacy=0.3, utility=0.9) == CONTINUE
    assert report(s, "c", 1, forget_efficacy=0.2, utility=0.2) == STOP  # dominated by a and b
    assert report(s, "d", 1, forget_efficacy=0.9, utility=0.9) == CONTINUE  # dominates everyone
    assert report(s, "a", 2, forget_efficacy=0.9, utility=0.4) == CONTINUE  # no rung at 2
    assert report(s, "a", 1, forget_efficacy=0.0, utility=0.0) == CONTINUE  # already judged at rung 1
    assert report(s, "e", 1, forget_efficacy=0.5) == STOP  # missing objective: worst
    assert report(s, "f", 1, forget_efficacy=float("nan"), utility=0.9) == STOP  # diverged
    assert report(s, "g", 1, utility=1.0) == STOP
    assert s.on_trial_result(None, trial("h"), {"forget_efficacy": 1.0, "utility": 1.0}) == CONTINUE  # no time
    assert report(s, "i", 4, forget_efficacy=0.1, utility=0.1) == CONTINUE  # skipped rung 1, first at rung 3
    assert report(s, "a", 3, forget_efficacy=0.9, utility=0.5) == CONTINUE
    assert report(s, "d", 9, forget_efficacy=1.0, utility=1.0) == STOP  # max_t reached

    state = s.get_state()
    rung3, rung1 = state["rungs"]
    assert (rung3["milestone"], sorted(rung3["records"])) == (3, ["a", "i"])
    assert (rung1["milestone"], sorted(rung1["records"])) == (1, ["a", "b", "c", "d"])
    assert state["num_stopped"] == 4
    assert "num_stopped=4" in s.debug_string()

    s.save(str(tmp_path / "moasha.json"))
    restored = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9)
    restored.restore(str(tmp_path / "moasha.json"))
    assert restored.get_state() == state
    # the restored rung 3 holds a and i: a third, middling trial is judged against them
    assert report(restored, "b", 3, forget_efficacy=0.5, utility=0.3) == STOP
    assert report(s, "b", 3, forget_efficacy=0.5, utility=0.3) == STOP

    other = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=27)
    with pytest.raises(ValueError):
        other.restore(str(tmp_path / "moasha.json"))


def test_a_trial_flagged_degenerate_stops_at_once_and_never_holds_a_place_at_a_rung():
    s = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9, grace_period=3,
                           reduction_factor=3, stop_flags=("degenerate",))
    assert report(s, "a", 2, forget_efficacy=0.99, utility=0.9, degenerate=1.0) == STOP  # between rungs
    assert report(s, "b", 2, forget_efficacy=0.2, utility=0.9, degenerate=0.0) == CONTINUE
    s.on_trial_complete(None, trial("c"), {"training_iteration": 3, "forget_efficacy": 0.99, "utility": 0.9,
                                           "degenerate": 1.0})
    # c, degenerate, was not recorded at rung 3: b is alone there and continues
    assert report(s, "b", 3, forget_efficacy=0.3, utility=0.9) == CONTINUE
    assert list(s.get_state()["rungs"][0]["records"]) == ["b"]
    unflagged = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9, grace_period=3)
    assert report(unflagged, "a", 2, forget_efficacy=0.99, utility=0.9, degenerate=1.0) == CONTINUE


def test_rejudging_stops_a_trial_that_passed_a_rung_alone_once_better_trials_are_recorded_there():
    def run(rejudge):
        s = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9, grace_period=1,
                               reduction_factor=3, rejudge=rejudge)
        assert report(s, "a", 1, forget_efficacy=0.1, utility=0.1) == CONTINUE  # alone at rung 1
        assert report(s, "b", 1, forget_efficacy=0.8, utility=0.8) == CONTINUE
        assert report(s, "c", 1, forget_efficacy=0.9, utility=0.9) == CONTINUE
        assert report(s, "d", 1, forget_efficacy=0.7, utility=0.7) == STOP  # third of four: quota 2
        # a's next step, between rungs: last of four at rung 1
        return report(s, "a", 2, forget_efficacy=0.2, utility=0.2), report(s, "b", 2, forget_efficacy=0.85,
                                                                           utility=0.85)

    assert run(rejudge=False) == (CONTINUE, CONTINUE)
    assert run(rejudge=True) == (STOP, CONTINUE)  # b is second of four at rung 1: within the quota of 2


def test_the_study_scheduler_stops_degenerate_trials_unless_its_front_ranks_them():
    from study.config import load_config
    from study.search import make_scheduler

    def stops(**overrides):
        s = make_scheduler(load_config(overrides={"train.steps": 60, **overrides}))
        return report(s, "a", 5, forget_efficacy=1.0, utility=1.0, xlang_utility=1.0, degenerate=1.0, step=5) == STOP

    assert stops()
    assert not stops(**{"front.include_degenerate": True})
    assert not stops(**{"scheduler.stop_degenerate": False})


def test_completed_trial_is_recorded_for_later_comparisons():
    s = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9)
    s.on_trial_complete(None, trial("a"), {"training_iteration": 1, "forget_efficacy": 0.9, "utility": 0.9})
    s.on_trial_complete(None, trial("b"), {"training_iteration": 9, "forget_efficacy": 1.0, "utility": 1.0})
    assert list(s.get_state()["rungs"][1]["records"]) == ["a"]  # b ended at max_t, past every rung
    assert report(s, "c", 1, forget_efficacy=0.5, utility=0.5) == STOP  # dominated by the completed a
    assert report(s, "d", 1, forget_efficacy=0.95, utility=0.95) == CONTINUE


def test_bad_arguments():
    with pytest.raises(ValueError):
        MultiObjectiveASHA(["a", "b"], ["max"])
    with pytest.raises(ValueError):
        MultiObjectiveASHA(["a"], ["maximise"])
    with pytest.raises(ValueError):
        MultiObjectiveASHA(["a"], ["max"], max_t=3, grace_period=4)
    with pytest.raises(ValueError):
        MultiObjectiveASHA(["a"], ["max"], reduction_factor=1)


# Configs for the real run: one trial whose objectives dominate every other trial's at every step, and seven
# dominated ones. Objectives grow with t, so a trial's standing is the same at every rung. (Two non-dominated
# trials would race: the second of them to reach a rung holds a quota of one only if it comes first.)
FRONT = [(0.9, 0.9)]
DOMINATED = [(0.2, 0.2), (0.25, 0.1), (0.1, 0.25), (0.2, 0.15), (0.15, 0.2), (0.1, 0.1), (0.3, 0.8)]


@pytest.fixture
def ray_two_cpus(monkeypatch):
    import ray

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()  # reuse a session's Ray (conftest's ray_local) if one is up
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
                 configure_logging=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tiny_ray_tune_run(ray_two_cpus, tmp_path):
    from ray import tune

    def two_objectives(config):  # defined here so Ray pickles it by value: workers cannot import tests/
        x, y = config["xy"]
        for t in range(1, 10):
            tune.report({"forget_efficacy": x * t / 9, "utility": y * t / 9})

    tuner = tune.Tuner(
        two_objectives,
        param_space={"xy": tune.grid_search(FRONT + DOMINATED)},
        tune_config=tune.TuneConfig(
            scheduler=MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9,
                                         grace_period=1, reduction_factor=3),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="moasha", verbose=0),
    )
    grid = tuner.fit()
    iterations = {tuple(r.config["xy"]): r.metrics["training_iteration"] for r in grid}
    assert all(r.error is None for r in grid)
    assert len(iterations) == 8
    assert all(iterations[p] == 9 for p in FRONT)
    assert any(iterations[p] < 9 for p in DOMINATED)
