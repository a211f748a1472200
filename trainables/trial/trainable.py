"""The Ray Tune function trainable: one unlearning trial, reporting its metrics every step.

The step loop reads top to bottom: restore if Ray hands us a checkpoint, then per step train, evaluate
(cheap metrics every step; collateral damage and extraction strength every eval_every steps and at the end),
log to MLflow, and report to Tune, with a checkpoint every checkpoint_every steps. A diverged trial reports
`diverged = 1` with its last metrics and ends cleanly, so the study goes on. A gate-only trial has no steps: it
reports once, at step 0, through the same path.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.metrics.robustness import robustness_metrics
from trainables.trial.setup import TrialSetup, objective_scalar
from trainables.trial.status import TrialStatus
from trainables.trial.tracking import TrialRun
from trainables.unlearner import Unlearner

STATE_FILE = "unlearner.pt"
# Ray reuses a trial's actor for the next trial only once the last trial's thread has ended, and waits for that
# TUNE_FUNCTION_THREAD_TIMEOUT_S (2 s by default) before failing the next trial ("Trainable runner reuse requires
# reset_config()"). A trial stopped early still closes its MLflow run (TrialRun.finish, retried for about half a
# minute), which on loaded cores takes longer than 2 s. Ray reads the variable in the actor's process when it resets
# it, so setting it here covers local and cluster workers alike.
THREAD_TIMEOUT_ENV = "TUNE_FUNCTION_THREAD_TIMEOUT_S"
THREAD_TIMEOUT_S = 60


def let_the_last_trial_finish() -> None:
    os.environ.setdefault(THREAD_TIMEOUT_ENV, str(THREAD_TIMEOUT_S))


def unlearning_trainable(config: dict, setup: TrialSetup) -> None:
    let_the_last_trial_finish()
    torch.set_num_threads(setup.cpus_per_trial)
    ctx = tune.get_context()
    unlearner = Unlearner(setup, config)
    restored = False
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            unlearner.restore(Path(d) / STATE_FILE)
        restored = True
    run = TrialRun(
        setup.tracking_uri, setup.experiment_id, setup.parent_run_id, ctx.get_trial_id(), ctx.get_trial_name(),
        params=config, tags={"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname()},
    )
    try:
        status = _train(unlearner, setup, run, restored)
    except SystemExit:
        # Tune stops a function trainable by raising SystemExit inside tune.report: a scheduler's early stop, or
        # the stop of a trial that just reported its last step.
        run.finish(TrialStatus.COMPLETED if unlearner.step >= unlearner.steps else TrialStatus.STOPPED_EARLY)
        raise
    except BaseException:
        run.finish(TrialStatus.ERROR)
        raise
    run.finish(status)


def _train(unlearner: Unlearner, setup: TrialSetup, run: TrialRun, restored: bool) -> TrialStatus:
    if not unlearner.trains:  # a gate-only variant: its gate on the base model, measured and reported once
        _evaluate_and_report(unlearner, setup, run, {"diverged": 0.0})
        return TrialStatus.COMPLETED
    while unlearner.step < unlearner.steps:
        if setup.crash_at_step is not None and unlearner.step == setup.crash_at_step and not restored:
            os._exit(17)  # a hard kill of the worker process, as when a node dies
        if _evaluate_and_report(unlearner, setup, run, unlearner.train_step()):
            return TrialStatus.DIVERGED
    return TrialStatus.COMPLETED


def _evaluate_and_report(unlearner: Unlearner, setup: TrialSetup, run: TrialRun, metrics: dict) -> bool:
    """Evaluate after a step (or once, for a run without steps), log and report; True when the run diverged."""
    metrics.update(unlearner.evaluate_step())
    step = unlearner.step
    diverged = bool(metrics["diverged"]) or metrics["adapter_norm"] > setup.train.max_adapter_norm
    metrics["diverged"] = float(diverged)
    last = step >= unlearner.steps or diverged
    if step % setup.train.eval_every == 0 or last:
        metrics.update(unlearner.evaluate_full(setup.train.final_es_prompts if last else setup.train.es_prompts))
    elif setup.collateral_every_step:  # a study objective (xlang_utility): schedulers need it at every rung
        metrics.update(unlearner.evaluate_collateral())
    if not diverged:  # the relearning attack and the other checks, on a copy of the trial's state
        metrics.update(robustness_metrics(unlearner, setup.robustness, final=last))
    if setup.objective_weights:
        metrics["objective_scalar"] = objective_scalar(metrics, setup.objective_weights)
    metrics["step"] = step
    metrics["restores"] = unlearner.restores
    metrics["finished"] = float(last)  # the study tells a completed trial from one the scheduler stopped
    metrics["tracking_errors"] = run.errors
    run.log(metrics, step)
    if setup.robustness.relearn_is_objective and "relearn_forget_efficacy" not in metrics:
        metrics = {**metrics, "relearn_forget_efficacy": math.nan}  # for Ray's check that results hold every objective
    # Every step is sent before it is reported: Tune stops a trial at a rung by ending its actor without waiting for
    # the trial's own clean-up (FunctionTrainable.cleanup: session.finish(timeout=0)), so whatever is buffered
    # then is lost. Before the checkpoint too, so a restore never logs a step twice.
    run.flush()
    if step % setup.train.checkpoint_every == 0 or last:
        with tempfile.TemporaryDirectory() as d:
            unlearner.save(Path(d) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
    else:
        tune.report(metrics)
    return diverged
