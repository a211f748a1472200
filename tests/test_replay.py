"""The replay benchmark's engine (bench/replay): given a live study's arrival order, the replay takes its rung
decisions.

The live study runs the configurations tests/data/replay_curves.jsonl.gz recorded (the same random draws: its
header's spec, seed and batch size; `bench/replay/record.py`, command in the file's provenance), two at a time, under
the scheduler `run_study` builds; its scheduler notes, in the order Ray Tune's controller calls it, every trial added,
every result with its decision and every completion. The replay gets the same scheduler from the same config, the
recorded curves, and the live order of additions and results; what it tells the scheduler and what the scheduler
answers must be the live record, call for call.
"""

import json
from pathlib import Path

import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler

import study.search
from bench.replay.curves import CurvesFile
from bench.replay.engine import Replay, replay_config, simulate
from study.runner import run_study, trial_extras
from study.schedulers import MultiObjectiveASHA

CURVES = Path(__file__).parent / "data" / "replay_curves.jsonl.gz"
NOTES: dict[str, dict] = {}  # "live" and "replay": what each scheduler was told and answered


class Watching:
    """A scheduler that notes its calls, in module-level lists (Ray's controller may hold a copy of the object)."""

    notes = "live"

    def _notes(self) -> dict:
        return NOTES.setdefault(self.notes, {"log": [], "configs": {}, "values": {}})

    def on_trial_add(self, controller, trial):
        super().on_trial_add(controller, trial)
        self._notes()["configs"][trial.trial_id] = dict(trial.config)
        self._notes()["log"].append(("add", trial.trial_id))

    def on_trial_result(self, controller, trial, result):
        decision = super().on_trial_result(controller, trial, result)
        self._notes()["log"].append(("result", trial.trial_id, int(result["step"]), decision))
        self._notes()["values"][trial.trial_id, int(result["step"])] = {k: result[k] for k in OBJECTIVES if k in result}
        return decision

    def on_trial_complete(self, controller, trial, result):
        super().on_trial_complete(controller, trial, result)
        self._notes()["log"].append(("complete", trial.trial_id, int(result["step"])))


class WatchedMOASHA(Watching, MultiObjectiveASHA):
    pass


class WatchedASHA(Watching, AsyncHyperBandScheduler):
    pass


WATCHED = {MultiObjectiveASHA: WatchedMOASHA, AsyncHyperBandScheduler: WatchedASHA}
OBJECTIVES = ("forget_efficacy", "utility", "xlang_utility", "objective_scalar")


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["moasha", "asha"])
def test_replay_takes_the_live_studys_rung_decisions(scheduler, ray_local, embedded, tmp_path, monkeypatch,
                                                      mlflow_store):
    curves = CurvesFile.read(CURVES)
    monkeypatch.chdir(tmp_path)
    cfg = replay_config(curves, study=f"live-{scheduler}", tracking_uri=mlflow_store(tmp_path),
                        **{"search.searcher": "random", "search.seed": curves.header["seed"],
                           "search.num_samples": curves.header["batch_size"], "search.max_concurrent": 2,
                           "scheduler.type": scheduler, "scheduler.grace_period": 1, "scheduler.reduction_factor": 2})
    build = study.search.make_scheduler

    def watched(c):
        s = build(c)
        s.__class__ = WATCHED[type(s)]
        return s

    NOTES.clear()
    monkeypatch.setattr(study.search, "make_scheduler", watched)
    run_study(cfg, log=lambda *a: None, progress=False)
    live = NOTES["live"]

    replay = Replay(curves, watched(cfg), weights=trial_extras(cfg)["objective_weights"])
    replay.scheduler.notes = "replay"
    for event in live["log"]:
        if event[0] == "add":
            replay.add(event[1], live["configs"][event[1]])
        elif event[0] == "result" and replay.trials[event[1]].status == "running":  # else the logs differ below
            replay.report(event[1], event[2])
    assert replay.log == live["log"]
    assert NOTES["replay"]["log"] == live["log"]  # the replay's log is what its scheduler was told
    # Every live trial was answered by its own recorded configuration, and the scheduler was handed the values the
    # live trial reported (objective_scalar, Ray's ASHA's metric, included).
    for trial_id, t in replay.trials.items():
        assert t.curve.config == live["configs"][trial_id]
    assert NOTES["replay"]["values"].keys() == live["values"].keys()
    for key, seen in live["values"].items():
        assert NOTES["replay"]["values"][key] == pytest.approx(seen, rel=1e-4, abs=1e-9), key
    # What makes the comparison worth making: the live scheduler stopped a trial at a rung and let another go on.
    results = [e for e in live["log"] if e[0] == "result"]
    assert any(e[3] == "STOP" and e[2] < cfg.train.steps for e in results), live["log"]
    assert any(e[3] == "CONTINUE" for e in results), live["log"]


def test_the_clock_orders_results_by_recorded_step_times():
    """The simulated study: the random searcher with the recording's seed proposes the recorded configurations, and
    results arrive in the order of the clock (each trial's reports its recorded seconds apart, from when a worker
    took it), never more trials running than workers."""
    curves = CurvesFile.read(CURVES)
    cfg = replay_config(curves, study="replayed", **{
        "search.searcher": "random", "search.seed": curves.header["seed"], "search.num_samples": len(curves.curves),
        "search.max_concurrent": 2, "scheduler.type": "moasha", "scheduler.grace_period": 1,
        "scheduler.reduction_factor": 2})
    out = simulate(curves, cfg)
    # Each proposal is answered by its own recorded configuration (the file's order is the runs' start order,
    # which two trials started together can swap).
    assert sorted(t.source for t in out.trials) == list(range(len(curves.curves)))
    assert all(t.trial.config == t.curve.config for t in out.trials)

    trials = {t.trial.trial_id: t for t in out.trials}
    started, arrivals, running, clock = {}, [], set(), 0.0
    for event in out.log:
        kind, trial_id = event[:2]
        if kind == "add":
            started[trial_id] = clock  # on the worker the last trial to end left, at that moment
            running.add(trial_id)
            assert len(running) <= 2
        elif kind == "result":
            t = trials[trial_id]
            index = t.curve.steps.index(event[2])
            clock = started[trial_id] + sum(t.curve.wall_s[:index + 1])
            arrivals.append(clock)
        else:
            running.discard(trial_id)
            assert out.ended_at[trial_id] == pytest.approx(clock)
    assert arrivals == sorted(arrivals) and len(arrivals) > len(out.trials)
    assert out.trial_steps == sum(t.step for t in out.trials) and out.wall_s == pytest.approx(max(arrivals))


def test_syne_tune_reading_stops_a_newcomer_that_dominates_the_rung_where_the_order_keeps_it():
    """The peer row's rule (bench/replay/peers.py) differs from the multi-objective ASHA's only in how it reads the
    order; on four records at eta 3 the newcomer dominating all three before it is first in the order (ours keeps it:
    position 0 < ceil(4/3)), while Syne Tune reads the index in the last place (2) over 4 as its rank and stops it."""
    import numpy as np

    from bench.replay.peers import SyneTuneRankReading
    from study.schedulers import decide

    records = {"a": np.array([0.5, 0.5]), "b": np.array([0.4, 0.4]), "c": np.array([0.1, 0.1]),
               "d": np.array([0.9, 0.9])}  # arrival order; d arrives last
    ours = MultiObjectiveASHA(["forget_efficacy", "utility"], ["max", "max"], max_t=9, grace_period=1,
                              reduction_factor=3)
    peer = SyneTuneRankReading(["forget_efficacy", "utility"], ["max", "max"], max_t=9, grace_period=1,
                               reduction_factor=3)
    assert decide(records, "d", 3) and ours._continues(records, "d")
    assert not peer._continues(records, "d")
    # Where the order's last place holds an early arrival, the two agree.
    assert peer._continues({"c": records["c"], "a": records["a"], "d": records["d"]}, "d")


def test_the_hindsight_stopper_runs_the_fewest_trials_that_reach_the_target_and_stops_the_rest_at_once():
    from bench.replay.hindsight import hindsight_stopping

    objectives = ["forget_efficacy", "utility"]
    point = lambda f, u: {"forget_efficacy": f, "utility": u}
    # Hypervolumes against 0: the balanced trial alone 0.36, with either corner 0.42, all three 0.48.
    finals = [point(0.6, 0.6), point(0.9, 0.2), point(0.2, 0.9), None]  # None: never ranked (degenerate)
    whole = 0.6 * 0.6 + (0.9 - 0.6) * 0.2 + (0.9 - 0.6) * 0.2
    one = hindsight_stopping(finals, objectives, 0.36, steps=60)
    assert (one.kept, one.trials, one.trial_steps) == (1, 4, 60 + 3)
    two = hindsight_stopping(finals, objectives, 0.36 + 0.06, steps=60, min_steps=5)
    assert (two.kept, two.trial_steps) == (2, 2 * 60 + 2 * 5)
    assert hindsight_stopping(finals, objectives, whole, steps=60).kept == 3
    assert hindsight_stopping(finals, objectives, whole + 0.01, steps=60) is None  # out of these proposals' reach
    assert hindsight_stopping([None, None], objectives, 0.1, steps=60) is None


def test_the_recorder_refuses_to_resume_a_file_recorded_on_another_model(tmp_path):
    """A curves file holds one model's curves: resuming it after the embedded default changed (its spec, so its
    cache key) would mix two models' curves into one search space, silently."""
    from argparse import Namespace

    from bench.replay.record import model_identity, open_curves

    curves = CurvesFile.read(CURVES)
    args = Namespace(out=str(tmp_path / "curves.jsonl.gz"), spec=json.dumps(curves.spec),
                     steps=curves.header["steps"], seed=curves.header["seed"], batch=curves.header["batch_size"])
    assert curves.header["model"] == model_identity(curves.spec)  # the test's file names the model it was made on
    curves.write(args.out)
    assert len(open_curves(args).curves) == len(curves.curves)  # same model: resumed
    for recorded in ("embedded:0123456789abcdef", None):  # another model's, or a file from before headers named it
        curves.header["model"] = recorded
        if recorded is None:
            del curves.header["model"]
        curves.write(args.out)
        with pytest.raises(SystemExit, match="'model': \\(" + ("'embedded:0123" if recorded else "None")):
            open_curves(args)
