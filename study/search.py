"""Searchers and schedulers for a study, built from its config.

Searchers are Ray's OptunaSearch, multi-objective over the study's objectives (all maximised): TPE (default),
NSGA-II, Optuna's Gaussian-process sampler, or Optuna's random sampler as the baseline, so every searcher handles
the conditional space the same way.
Ray's OptunaSearch tells Optuna that a trial the scheduler stopped early is COMPLETE with the values of its last
rung: the partial result then sits on Optuna's Pareto set and in the sampler's model. `PartialAwareOptunaSearch`
tells Optuna such a trial is PRUNED instead, keeping its partial values as user attributes. It also tells Optuna
mmie.py's acceptance gates as constraints (before `tell`), from the trial's last result: an infeasible trial is then
never on Optuna's Pareto set, and TPE and NSGA-II sample away from it.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.optuna import MlflowStorage
from mlflow.tracking import MlflowClient
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from study.config import StudyConfig
from study.schedulers import MultiObjectiveASHA
from study.space import define_by_run

SCALAR_METRIC = "objective_scalar"


class PartialAwareOptunaSearch(OptunaSearch):
    def __init__(self, *args, mmie_constraints: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.mmie_constraints = mmie_constraints

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:  # names the trial's MLflow run (its `trial_id` tag) in optuna-dashboard
            self._ot_trials[trial_id].set_user_attr("trial_id", trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if self.mmie_constraints and not error and result and trial_id not in self._completed_trials:
            store_constraints(self._ot_trials[trial_id], mmie_gate_constraints(result))
        if error or not result or trial_id in self._completed_trials or self._ran_to_the_end(result):
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        metrics = self._metric if isinstance(self._metric, list) else [self._metric]
        for name in metrics:
            ot_trial.set_user_attr(f"partial_{name}", result.get(name))
        ot_trial.set_user_attr("stopped_at_step", result.get("step"))
        self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    @staticmethod
    def _ran_to_the_end(result: dict) -> bool:
        # The trainable marks its last report finished; a diverged trial ended on its own too: its (bad) values are
        # a real result, not a partial one.
        return bool(result.get("finished")) or bool(result.get("diverged"))


def store_constraints(ot_trial, constraints: dict[str, float]) -> None:
    """Constraints on an Optuna trial as Optuna's own `constraints_func` path stores them: a sequence, the trial's
    system attribute `constraints`. Optuna's samplers and `best_trials` read it as they read `Trial.set_constraint`'s
    named form, and optuna-dashboard reads this form only (with the named one it would draw infeasible trials as
    feasible). The names, in order, are the study's user attribute `constraints`."""
    ot_trial.storage.set_trial_system_attr(ot_trial._trial_id, "constraints", list(constraints.values()))
    if ot_trial.study.user_attrs.get("constraints") != list(constraints):
        ot_trial.study.set_user_attr("constraints", list(constraints))


def mmie_gate_constraints(result: dict) -> dict[str, float]:
    """mmie.py's gates as Optuna constraints (<= 0 feasible) from a trial's result (`mmie/gate_<gate>`, computed
    by the trial), every gate in ACCEPTANCE_GATES' order, so that every trial's constraints line up (they are stored by
    position). A missing required gate (G1, G2: the trial ended before its first full evaluation) counts
    infeasible; another missing one (no mixed set, no ITRANS scheme for the forget script, or a checkpoint that
    measured the forget set only) is 0, as `gates_pass` lets it pass."""
    from trainables.metrics.mmie import ACCEPTANCE_GATES, REQUIRED_GATES

    out = {}
    for gate in ACCEPTANCE_GATES:
        value = result.get(f"mmie/gate_{gate}")
        if value is None and gate not in REQUIRED_GATES:
            out[gate] = 0.0
            continue
        out[gate] = 1.0 if value is None or value != value else float(value)
    return out


def make_searcher(cfg: StudyConfig, shape=None) -> PartialAwareOptunaSearch:
    """`shape`: the study model's ModelSize (layer knobs search its layers); read from its config if None."""
    import optuna

    if cfg.search.searcher == "random":
        sampler = optuna.samplers.RandomSampler(seed=cfg.search.seed)
    elif cfg.search.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=cfg.search.seed, n_startup_trials=startup_trials(cfg),
                                            warn_independent_sampling=False)
    elif cfg.search.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=cfg.search.seed, population_size=max(cfg.search.num_samples // 4, 4))
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.search.seed, n_startup_trials=startup_trials(cfg))
    return PartialAwareOptunaSearch(
        space=define_by_run(cfg, shape),
        metric=list(cfg.search.objectives),
        mode=["max"] * len(cfg.search.objectives),
        sampler=sampler,
        storage=optuna_storage(cfg),
        study_name=cfg.study,
        mmie_constraints=cfg.mmie_eval.enabled and cfg.mmie_eval.constrain_search,
    )


def startup_trials(cfg: StudyConfig) -> int:
    """Random trials before a model-based sampler (TPE, GP) takes over: a third of the study, at least 4."""
    return max(cfg.search.num_samples // 3, 4)


MLFLOW_STORAGE = "mlflow"


def optuna_experiment(study: str) -> str:
    """The MLflow experiment that holds a study's Optuna study with `search.optuna_storage: mlflow`: apart from the
    study's own experiment, whose runs table and parent/child layout the Optuna study's runs would crowd."""
    return f"{study}-optuna"


def optuna_storage(cfg: StudyConfig):
    """The Optuna storage `search.optuna_storage` names: None (in memory), `mlflow` (the study's tracking server,
    mlflow.optuna.MlflowStorage), else an sqlite file."""
    import optuna

    where = cfg.search.optuna_storage
    if not where:
        return None
    if where == MLFLOW_STORAGE:
        return mlflow_optuna_storage(cfg.tracking_uri, optuna_experiment(cfg.study))
    return optuna.storages.RDBStorage(f"sqlite:///{Path(where).resolve()}")


class StudyMlflowStorage(MlflowStorage):
    """mlflow.optuna.MlflowStorage on a given tracking URI. MlflowStorage builds its client on MLflow's tracking URI of
    the moment (`MlflowClient()`), which would open the default store (./mlflow.db) in the driver's directory, or a
    URI the process set for something else. mlflow.set_tracking_uri would change it for the whole process and its
    children, so $MLFLOW_TRACKING_URI is set for the constructor only, and the client is then replaced by one on the
    study's URI (`_mlflow_client`, the attribute each of its calls goes through), which wins over a URI set in-process
    (tests/test_optuna_storage.py checks the study lands on the server and nothing lands in the directory)."""

    def __init__(self, tracking_uri: str, experiment_id: str, name: str):
        before = os.environ.get(TRACKING_ENV)
        os.environ[TRACKING_ENV] = tracking_uri
        try:
            super().__init__(experiment_id=experiment_id, name=name)
        finally:
            if before is None:
                del os.environ[TRACKING_ENV]
            else:
                os.environ[TRACKING_ENV] = before
        self._mlflow_client = MlflowClient(tracking_uri)


TRACKING_ENV = "MLFLOW_TRACKING_URI"


def mlflow_optuna_storage(tracking_uri: str, experiment: str) -> StudyMlflowStorage:
    """The Optuna storage on `tracking_uri`, in `experiment` (made if missing)."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    return StudyMlflowStorage(tracking_uri, experiment_id, experiment)


def scalarization_weights(cfg: StudyConfig) -> dict[str, float]:
    """ASHA's objective: a weighted sum of the study's objectives (equal weights unless configured). The trainable
    reports it as `objective_scalar` with every result, so Ray sees the scheduler's metric in each one."""
    return dict(cfg.scheduler.weights) or {m: 1.0 / len(cfg.search.objectives) for m in cfg.search.objectives}


def make_scheduler(cfg: StudyConfig, moasha: type[MultiObjectiveASHA] = MultiObjectiveASHA):
    """`moasha`: the multi-objective ASHA's class (a peer's rule in bench/replay/peers.py)."""
    s = cfg.scheduler
    common = dict(time_attr="step", max_t=cfg.train.steps, grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    if s.type == "fifo":
        return FIFOScheduler()
    if s.type == "asha":
        return AsyncHyperBandScheduler(metric=SCALAR_METRIC, mode="max", **common)
    # A degenerate trial never ranks on the front unless the front takes them (front.include_degenerate).
    flags = ("degenerate",) if s.stop_degenerate and not cfg.front.include_degenerate else ()
    return moasha(metrics=list(cfg.search.objectives), modes=["max"] * len(cfg.search.objectives), stop_flags=flags,
                  rejudge=s.rejudge, **common)
