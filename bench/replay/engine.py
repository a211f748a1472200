"""The replayer: a search replayed against recorded curves, with the study's own searcher and scheduler.

`Replay` stands where Ray Tune's controller stands (ray/tune/execution/tune_controller.py) and calls the scheduler
and the searcher as it does, with stub `ray.tune.experiment.Trial` objects (no Ray running):

- a new trial: the searcher's `suggest`, then the scheduler's `on_trial_add`;
- each result: the scheduler's `on_trial_result`, then (unless it said STOP) the searcher's `on_trial_result`;
- the trial's end, after a STOP or after its last report (its function returned: Tune stops it without asking the
  scheduler): the scheduler's `on_trial_complete` and the searcher's `on_trial_complete`, with the last result; for
  a recorded trial that failed, the scheduler's `on_trial_error` and the searcher's `on_trial_complete(error=True)`.

A trial's results are the recorded curve of the configuration nearest to its own (`CurvesFile.nearest`), the
metrics the recorded trial logged at each step, with Ray's `training_iteration`, and `objective_scalar` where the
scheduler ranks on it (Ray's ASHA). `simulate` orders the results with an event-driven clock: k workers, each
report arriving its recorded `wall_s` after the previous one of its trial, a new trial started on a worker as soon
as one ends (as `ConcurrencyLimiter(max_concurrent=k)` lets Tune create one). Ties in time go to the trial started
first. What the clock leaves out: a worker's start-up (process, model load) before its first trial.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from bench.replay.curves import Curve, CurvesFile
from study.config import StudyConfig, load_config
from trainables.trial.setup import objective_scalar
from trainables.trial.status import TrialStatus


@dataclass
class ReplayedTrial:
    trial: Trial
    curve: Curve
    source: int  # the index of its curve in the file
    reported: int = 0  # how many of its results the scheduler has seen
    status: TrialStatus = TrialStatus.RUNNING
    last_result: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        """The step it reached: its trial-steps."""
        return int(self.last_result.get("step", 0))

    @property
    def metrics(self) -> dict:
        """Its last report's metrics; the run's final values fill in what that report did not carry."""
        return {**self.curve.final, **self.last_result}


class Replay:
    """Drives a Ray Tune scheduler (and optionally a Ray Tune searcher) with recorded results.

    `log` holds what the scheduler was told and answered, in order: ("add", trial_id), ("result", trial_id, step,
    decision), ("complete", trial_id, step) or ("error", trial_id, step): the record tests compare with a live
    study's.
    """

    def __init__(self, curves: CurvesFile, scheduler, searcher=None, weights: tuple = ()):
        self.curves = curves
        self.scheduler = scheduler
        self.searcher = searcher
        self.weights = tuple(weights)  # (objective, weight) pairs: results then carry objective_scalar
        self.trials: dict[str, ReplayedTrial] = {}
        self.log: list[tuple] = []

    def add(self, trial_id: str, config: dict) -> ReplayedTrial:
        source = self.curves.nearest(config)
        t = ReplayedTrial(Trial("replay", config=config, trial_id=trial_id, stub=True), self.curves.curves[source],
                          source)
        self.trials[trial_id] = t
        self.scheduler.on_trial_add(None, t.trial)
        self.log.append(("add", trial_id))
        return t

    def suggest(self, trial_id: str) -> ReplayedTrial:
        return self.add(trial_id, self.searcher.suggest(trial_id))

    def report(self, trial_id: str, step: int | None = None) -> str:
        """The trial's next recorded result, to the scheduler; its decision. `step`, when given, must be that
        result's step (a caller replaying a given arrival order)."""
        t = self.trials[trial_id]
        if t.status != TrialStatus.RUNNING:
            raise ValueError(f"trial {trial_id} has ended ({t.status}); it reports nothing more")
        index = t.reported
        if step is not None and t.curve.steps[index] != step:
            raise ValueError(f"trial {trial_id}'s next recorded report is step {t.curve.steps[index]}, not {step}")
        result = {**t.curve.result(index), "step": t.curve.steps[index], "training_iteration": index + 1,
                  "trial_id": trial_id, "done": False}
        if self.weights:
            result["objective_scalar"] = objective_scalar(result, self.weights)
        t.reported, t.last_result = index + 1, result
        decision = self.scheduler.on_trial_result(None, t.trial, result)
        self.log.append(("result", trial_id, result["step"], decision))
        if decision != TrialScheduler.STOP and self.searcher is not None:
            self.searcher.on_trial_result(trial_id, result)
        last = t.reported == len(t.curve.steps)
        if decision == TrialScheduler.STOP or last:
            ended = TrialStatus(t.curve.status) if last else TrialStatus.STOPPED_EARLY
            self._complete(t, ended)
        return decision

    def _complete(self, t: ReplayedTrial, status: TrialStatus) -> None:
        t.status = status
        if status == TrialStatus.ERROR:  # the recorded trial failed after its last report: Tune's error path
            self.scheduler.on_trial_error(None, t.trial)
            if self.searcher is not None:
                self.searcher.on_trial_complete(t.trial.trial_id, error=True)
            self.log.append(("error", t.trial.trial_id, t.step))
            return
        result = {**t.last_result, "done": True}
        self.scheduler.on_trial_complete(None, t.trial, result)
        if self.searcher is not None:
            self.searcher.on_trial_complete(t.trial.trial_id, result=result)
        self.log.append(("complete", t.trial.trial_id, t.step))


@dataclass
class Outcome:
    """A replayed study: its trials in start order, when each ended on the simulated clock, and the order of
    events."""

    trials: list[ReplayedTrial]
    ended_at: dict[str, float]
    log: list[tuple]

    @property
    def trial_steps(self) -> int:
        return sum(t.step for t in self.trials)

    @property
    def wall_s(self) -> float:
        return max(self.ended_at.values(), default=0.0)


def replay_config(curves: CurvesFile, **overrides) -> StudyConfig:
    """The recorded study's config (its spec) with the strategy's overrides (dotted keys: searcher, scheduler,
    num_samples...); the budget is the recording's."""
    return load_config(overrides={**curves.spec, "train.steps": curves.header["steps"], **overrides})


def make_replay(curves: CurvesFile, cfg: StudyConfig, scheduler=None) -> Replay:
    """The searcher and scheduler `run_study` would build for `cfg`, behind a Replay; `scheduler`, when given,
    stands in for the config's (a peer's rule, bench/replay/peers.py)."""
    from study.prepare import model_shape
    from study.runner import trial_extras
    from study.search import make_scheduler, make_searcher

    return Replay(curves, scheduler or make_scheduler(cfg), make_searcher(cfg, model_shape(cfg)),
                  weights=trial_extras(cfg)["objective_weights"])


def simulate(curves: CurvesFile, cfg: StudyConfig, workers: int | None = None, scheduler=None) -> Outcome:
    """cfg.search.num_samples trials, `workers` at a time (default: cfg.search.max_concurrent, else 2), on the
    simulated clock; `scheduler` as in `make_replay`."""
    replay = make_replay(curves, cfg, scheduler)
    workers = workers or cfg.search.max_concurrent or 2
    events: list[tuple[float, int, str]] = []  # (time of the trial's next report, start order, trial id)
    started: list[ReplayedTrial] = []
    ended_at: dict[str, float] = {}

    def start(now: float) -> None:
        t = replay.suggest(f"replay_{len(started):05d}")  # sorted in creation order, as Ray's ids are
        started.append(t)
        heapq.heappush(events, (now + t.curve.wall_s[0], len(started), t.trial.trial_id))

    for _ in range(min(workers, cfg.search.num_samples)):
        start(0.0)
    while events:
        now, order, trial_id = heapq.heappop(events)
        replay.report(trial_id)
        t = replay.trials[trial_id]
        if t.status == TrialStatus.RUNNING:
            heapq.heappush(events, (now + t.curve.wall_s[t.reported], order, trial_id))
            continue
        ended_at[trial_id] = now
        if len(started) < cfg.search.num_samples:
            start(now)
    return Outcome(started, ended_at, replay.log)
