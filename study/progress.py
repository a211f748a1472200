"""A study's progress while it runs: trials done / total, running, ETA, the front's size and hypervolume.

On a terminal it is one status line, redrawn in place; anywhere else (a CI log, a pipe, a file) it is one plain line
per finished trial, which stays readable in a log. `StudyProgress` renders and knows nothing of Ray;
`ProgressCallback` is the driver's Ray Tune callback that tells it when trials start and finish, and reads the
front from the study's `ParetoRecorder`.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from ray import tune

from trainables.trial.status import ENDED_STATUSES, TrialStatus

CLEAR_LINE = "\r\x1b[K"  # back to the line's start, then erase it (ANSI "erase in line")


def format_duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class StudyProgress:
    """Told when trials start and finish and how the front looks, it writes the study's status to `stream`:
    a live line when the stream is a terminal, plain lines otherwise."""

    def __init__(self, total: int | None, stream: TextIO | None = None, clock=time.monotonic):
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self._started: dict[str, float] = {}  # running trial id -> when it started
        self._durations: list[float] = []  # wall times of the trials seen from start to end
        self._peak_running = 0
        self._counts: dict[TrialStatus, int] = {}
        self._degenerate = 0
        self._front: tuple[int, float] = (0, 0.0)
        self._drawn = False  # a live line is on screen, not yet ended by a newline

    def trial_started(self, trial_id: str) -> None:
        self._started[trial_id] = self.clock()
        self._peak_running = max(self._peak_running, len(self._started))
        if self.live:
            self._draw()

    def trial_finished(self, trial_id: str, counts: dict[TrialStatus, int], degenerate: int, front_size: int,
                       hypervolume: float) -> None:
        """`counts`: the study's ended trials by status, those of a resumed study's earlier drivers included."""
        started = self._started.pop(trial_id, None)
        if started is not None:  # a trial restored from an earlier driver's state has no start seen here
            self._durations.append(self.clock() - started)
        self._counts, self._degenerate, self._front = dict(counts), degenerate, (front_size, hypervolume)
        if self.live:
            self._draw()
        else:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def eta_seconds(self) -> float | None:
        """Time left: mean finished-trial wall time x remaining trials / trials running at once.

        The remaining trials come from the same searcher and scheduler, so their mix of full runs and runs stopped
        early is taken to be the finished ones'; the trials run in waves of as many as have run at once so far (what
        max_concurrent and the cluster allow). Running trials count as remaining, so the estimate leans long by up
        to one wave until they finish. None until a trial has finished, or with no known total."""
        if not self._durations or not self.total:
            return None
        remaining = max(self.total - self.done, 0)
        return sum(self._durations) / len(self._durations) * remaining / max(self._peak_running, 1)

    @property
    def done(self) -> int:
        return sum(self._counts.values())

    def line(self) -> str:
        total = f"/{self.total}" if self.total else ""
        eta = self.eta_seconds()
        counts = ", ".join(f"{s.replace('_', ' ')} {self._counts.get(s, 0)}" for s in ENDED_STATUSES)
        size, hv = self._front
        return (f"trials done {self.done}{total}, {len(self._started)} running, "
                f"ETA {'-' if eta is None else format_duration(eta)}; front {size} trials, hypervolume {hv:.3f} "
                f"({counts}; degenerate {self._degenerate})")

    def _draw(self) -> None:
        # A line wider than the terminal wraps, and `\r` then returns to its last row only: cut it to fit.
        width = shutil.get_terminal_size().columns - 1
        self.stream.write(CLEAR_LINE + self.line()[:width])
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Ends the live line, so what is printed next starts on a line of its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class ProgressCallback(tune.Callback):
    """Feeds a StudyProgress from Ray Tune's trial events; the front comes from the study's ParetoRecorder, which
    must come before this callback in the Tuner's list so it has recorded a trial when this one renders it.
    `progress` is None for a quiet study; it is not pickled with Ray's state (a resumed driver sets its own)."""

    def __init__(self, recorder, progress: StudyProgress | None):
        self.recorder = recorder
        self.progress = progress

    def __getstate__(self):
        return {**self.__dict__, "progress": None}  # a terminal stream does not pickle, nor outlive its driver

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.trial_started(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trial.trial_id)

    def on_experiment_end(self, trials, **info):
        if self.progress:
            self.progress.close()

    def _finished(self, trial_id: str) -> None:
        if not self.progress:
            return
        statuses = [t["status"] for t in self.recorder.trials.values()]
        degenerate = sum(bool(t["result"].get("degenerate")) for t in self.recorder.trials.values())
        size, hv = self.recorder.front_summary()
        self.progress.trial_finished(trial_id, {s: statuses.count(s) for s in ENDED_STATUSES}, degenerate, size, hv)
