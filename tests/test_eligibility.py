"""One rule for which trials the front ranks (study.eligibility), live (ParetoRecorder) and read back (front_table):
diverged and degenerate trials stay off by default; a study can include either. No Ray runtime, no training."""

import math

import pytest

from study.eligibility import FrontRule
from study.results.front import StudyRecord, TrialRecord, front_table
from study.tracking.front_recorder import ParetoRecorder

OBJECTIVES = ["forget_efficacy", "utility"]
# trial id, status, final metrics: "broken" dominates every other trial, but its output is degenerate; "blew_up"
# diverged at step 40 of 100 with values that would also dominate.
TRIALS = [
    ("good", "completed", {"forget_efficacy": 0.8, "utility": 0.9, "degenerate": 0.0, "step": 100}),
    ("mild", "completed", {"forget_efficacy": 0.3, "utility": 1.0, "degenerate": 0.0, "step": 100}),
    ("broken", "completed", {"forget_efficacy": 1.0, "utility": 1.0, "degenerate": 1.0, "step": 100}),
    ("blew_up", "diverged", {"forget_efficacy": 0.95, "utility": 0.95, "degenerate": 0.0, "step": 40}),
    ("partial", "stopped_early", {"forget_efficacy": 0.99, "utility": 0.99, "degenerate": 0.0, "step": 25}),
    ("nan", "completed", {"forget_efficacy": math.nan, "utility": 1.0, "step": 100}),
]


def _record(front: dict | None = None) -> StudyRecord:
    config = {"utility_floor": "None", **{f"front.{k}": str(v) for k, v in (front or {}).items()}}
    trials = [TrialRecord(run_id=tid, trial_id=tid, status=status, params={"variant": "ga"}, metrics=dict(m),
                          pareto=False, pareto_rank=None) for tid, status, m in TRIALS]
    return StudyRecord(study="s", tracking_uri="", parent_run_id="p", objectives=OBJECTIVES, steps=100, seed=0,
                       config=config, trials=trials)


def _live(include_diverged=False, include_degenerate=False) -> set[str]:
    recorder = ParetoRecorder("", "", "", FrontRule(tuple(OBJECTIVES), include_diverged=include_diverged,
                                                   include_degenerate=include_degenerate))
    for tid, status, m in TRIALS:
        recorder.record_result({**m, "trial_id": tid, "finished": float(status == "completed"),
                                "diverged": float(status == "diverged")}, {"variant": "ga"}, error=False)
    front, _ = recorder.front()
    return {row["trial_id"] for row in front.member_items()}


@pytest.mark.parametrize("include_diverged,include_degenerate,front", [
    (False, False, {"good", "mild"}),
    (True, False, {"blew_up", "mild"}),
    (False, True, {"broken"}),
])
def test_live_and_read_back_fronts_agree_and_keep_diverged_and_degenerate_off_by_default(
        include_diverged, include_degenerate, front):
    assert _live(include_diverged, include_degenerate) == front
    record = _record({"include_diverged": include_diverged, "include_degenerate": include_degenerate})
    assert {r["trial_id"] for r in front_table(record)} == front


def test_exclusion_names_the_reason():
    rule = FrontRule(tuple(OBJECTIVES), utility_floor=0.95)
    reasons = {tid: rule.exclusion(status, m) for tid, status, m in TRIALS}
    assert reasons == {"good": "utility below the floor 0.95", "mild": None, "broken": "degenerate",
                       "blew_up": "diverged", "partial": "status stopped_early", "nan": "no finite forget_efficacy"}


def test_the_three_objective_front_keeps_the_trials_that_spare_the_neighbours():
    """A trial that forgets most by wrecking the cross-lingual sets dominates, on two objectives, one that forgets
    nearly as much and keeps them; on the default three objectives both are on the front."""
    from study.pareto import hypervolume, reference_point

    trials = [("wreck", {"forget_efficacy": 1.0, "utility": 0.98, "xlang_utility": 0.01}),
              ("spare", {"forget_efficacy": 0.9, "utility": 0.97, "xlang_utility": 0.9}),
              ("idle", {"forget_efficacy": 0.0, "utility": 1.0, "xlang_utility": 1.0})]

    def front(objectives):
        record = StudyRecord(study="s", tracking_uri="", parent_run_id="p", objectives=objectives, steps=10, seed=0,
                             config={"utility_floor": "None"},
                             trials=[TrialRecord(t, t, "completed", {"variant": "ga"}, m, False, None)
                                     for t, m in trials])
        return {r["trial_id"] for r in front_table(record)}

    assert front(OBJECTIVES) == {"wreck", "idle"}
    three = ["forget_efficacy", "utility", "xlang_utility"]
    assert front(three) == {"wreck", "spare", "idle"}
    points = [[m[o] for o in three] for _, m in trials]
    assert hypervolume(points, reference_point(three)) > hypervolume(points[:1] + points[2:], reference_point(three))
