"""The study's progress (study.progress): a live line on a terminal, plain lines elsewhere, an ETA from the mean
trial time, and --quiet. The renderer is driven directly, no Ray started; its stream is a real io.StringIO."""

import io

import pytest

from study.cli import _output, build_parser
from study.progress import CLEAR_LINE, StudyProgress, format_duration
from trainables.trial.status import TrialStatus

DONE = {TrialStatus.COMPLETED: 1}


class FakeTerminal(io.StringIO):
    """A stand-in for a terminal: a StringIO that says it is a tty (there is none under pytest)."""

    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_on_a_terminal_the_status_line_is_rewritten_in_place_and_ended_once(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for the whole line
    stream, clock = FakeTerminal(), Clock()
    progress = StudyProgress(4, stream, clock)
    progress.trial_started("a")
    progress.trial_started("b")
    clock.now = 10.0
    progress.trial_finished("a", DONE, 0, 1, 0.25)
    progress.close()
    out = stream.getvalue()
    assert out.count(CLEAR_LINE) == 3 and out.startswith(CLEAR_LINE)  # one redraw per event, from the line's start
    assert out.count("\n") == 1 and out.endswith("\n")  # no line of its own until the study ends
    last = out.split(CLEAR_LINE)[-1]
    # 10 s a trial, 3 left, 2 at a time
    assert last == ("trials done 1/4, 1 running, ETA 15s; front 1 trials, hypervolume 0.250 "
                    "(completed 1, stopped early 0, diverged 0, error 0; degenerate 0)\n")
    progress.close()
    assert stream.getvalue() == out  # closing twice writes nothing more


def test_off_a_terminal_each_finished_trial_is_one_plain_line():
    stream, clock = io.StringIO(), Clock()
    progress = StudyProgress(3, stream, clock)
    progress.trial_started("a")
    progress.trial_started("b")  # a start draws nothing in a log
    assert stream.getvalue() == ""
    clock.now = 5.0
    progress.trial_finished("a", DONE, 0, 1, 0.5)
    progress.trial_finished("b", {TrialStatus.COMPLETED: 1, TrialStatus.STOPPED_EARLY: 1}, 1, 1, 0.5)
    progress.close()
    lines = stream.getvalue().split("\n")
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert len(lines) == 3 and lines[2] == ""
    assert lines[0].startswith("trials done 1/3, 1 running, ETA 5s;")
    assert lines[1] == ("trials done 2/3, 0 running, ETA 2s; front 1 trials, hypervolume 0.500 "
                        "(completed 1, stopped early 1, diverged 0, error 0; degenerate 1)")


def test_eta_is_the_mean_trial_time_times_the_remaining_trials_over_the_trials_run_at_once():
    clock = Clock()
    progress = StudyProgress(10, io.StringIO(), clock)
    assert progress.eta_seconds() is None  # nothing finished: nothing to estimate from
    for trial in "abc":
        progress.trial_started(trial)  # three at once
    clock.now = 30.0
    progress.trial_finished("a", {TrialStatus.COMPLETED: 1}, 0, 1, 0.1)
    clock.now = 90.0
    progress.trial_finished("b", {TrialStatus.COMPLETED: 1, TrialStatus.STOPPED_EARLY: 1}, 0, 1, 0.1)
    # mean of 30 s and 90 s = 60 s, 8 trials left, 3 at a time
    assert progress.eta_seconds() == pytest.approx(60 * 8 / 3)
    # A trial a resumed study restored (no start seen here) counts as done, not in the mean.
    progress.trial_finished("old", {TrialStatus.COMPLETED: 2, TrialStatus.STOPPED_EARLY: 1}, 0, 1, 0.1)
    assert progress.eta_seconds() == pytest.approx(60 * 7 / 3)
    assert StudyProgress(None, io.StringIO(), clock).eta_seconds() is None


def test_a_live_line_wider_than_the_terminal_is_cut_to_fit(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # shutil.get_terminal_size reads it first
    stream = FakeTerminal()
    progress = StudyProgress(4, stream)
    progress.trial_started("a")
    drawn = stream.getvalue().removeprefix(CLEAR_LINE)
    assert len(drawn) == 39 and progress.line().startswith(drawn) and len(progress.line()) > 39


def test_durations_read_as_time():
    assert [format_duration(s) for s in (0, 42.4, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


@pytest.mark.parametrize("command", [["run"], ["resume", "--study", "s"], ["ladder", "--config", "l.yaml"]])
def test_quiet_drops_the_messages_and_the_progress(command, capsys):
    quiet = _output(build_parser().parse_args([*command, "--quiet"]))
    assert quiet["progress"] is False
    quiet["log"]("a message")
    assert capsys.readouterr().out == ""
    assert _output(build_parser().parse_args(command)) == {"log": print, "progress": True}


def test_the_callback_reads_the_front_from_the_recorder_and_leaves_its_stream_out_of_ray_state():
    import pickle
    from types import SimpleNamespace

    from study.eligibility import FrontRule
    from study.progress import ProgressCallback
    from study.tracking.front_recorder import ParetoRecorder

    recorder = ParetoRecorder("", "", "", FrontRule(("forget_efficacy", "utility")))  # no MLflow touched: nothing written
    stream, clock = io.StringIO(), Clock()
    callback = ProgressCallback(recorder, StudyProgress(3, stream, clock))
    trials = [SimpleNamespace(trial_id=t) for t in "abc"]  # stand-ins for Ray's Trial: only its id is read
    for trial in trials:
        callback.on_trial_start(0, trials, trial)
    # the recorder comes first in the Tuner's callbacks: it has the result when the progress is drawn
    recorder.record_result({"forget_efficacy": 0.5, "utility": 0.8, "finished": 1.0}, {}, False, trial_id="a")
    callback.on_trial_complete(0, trials, trials[0])
    recorder.record_result({"forget_efficacy": 0.2, "utility": 0.9, "step": 2}, {}, False, trial_id="b")
    callback.on_trial_complete(0, trials, trials[1])
    recorder.record_result({}, {}, True, trial_id="c")
    callback.on_trial_error(0, trials, trials[2])
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("trials done 1/3, 2 running, ETA 0s; front 1 trials, hypervolume 0.400 ")
    assert lines[2].endswith("(completed 1, stopped early 1, diverged 0, error 1; degenerate 0)")

    restored = pickle.loads(pickle.dumps(callback))  # as Ray saves the study's state
    assert restored.progress is None and restored.recorder.trials.keys() == {"a", "b", "c"}
    restored.on_trial_complete(0, trials, trials[0])  # a resumed driver with no progress set prints nothing
