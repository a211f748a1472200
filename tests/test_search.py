"""Searchers and schedulers from the config, and the proof that early-stopped trials reach Optuna as pruned."""

import optuna
import pytest
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler

from study.config import load_config
from study.schedulers import MultiObjectiveASHA
from study.search import PartialAwareOptunaSearch, make_scheduler, make_searcher, scalarization_weights


def test_config_builds_each_searcher_and_scheduler():
    cfg = load_config(overrides={"search.sampler": "nsga2"})
    assert isinstance(make_searcher(cfg)._sampler, optuna.samplers.NSGAIISampler)
    assert isinstance(make_searcher(load_config(overrides={"search.searcher": "random"}))._sampler,
                      optuna.samplers.RandomSampler)
    assert isinstance(make_scheduler(load_config()), MultiObjectiveASHA)
    weighted = load_config(overrides={"scheduler.type": "asha",
                                      "scheduler.weights": {"forget_efficacy": 0.7, "utility": 0.3}})
    asha = make_scheduler(weighted)
    assert isinstance(asha, AsyncHyperBandScheduler) and asha.metric == "objective_scalar"
    assert scalarization_weights(weighted) == {"forget_efficacy": 0.7, "utility": 0.3}
    # Equal weights over the study's objectives: the default's three.
    assert scalarization_weights(load_config(overrides={"scheduler.type": "asha"})) == pytest.approx({
        "forget_efficacy": 1 / 3, "utility": 1 / 3, "xlang_utility": 1 / 3})


def toy_search(searcher_cls, tmp_path, **kwargs):
    def trainable(config):
        # Trials with a small x are dominated at every rung, so the scheduler stops them.
        for step in range(1, 10):
            tune.report({"forget_efficacy": config["x"] * step / 9, "utility": config["x"] * step / 9, "step": step,
                         "finished": float(step == 9)})

    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")

    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    search = searcher_cls(space=space, metric=["forget_efficacy", "utility"], mode=["max", "max"],
                          sampler=optuna.samplers.RandomSampler(seed=1), storage=storage, study_name="toy", **kwargs)
    scheduler = MultiObjectiveASHA(metrics=["forget_efficacy", "utility"], modes=["max", "max"], time_attr="step",
                                   max_t=9, grace_period=1, reduction_factor=3)
    tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=tune.search.ConcurrencyLimiter(search, 1),
                                                      scheduler=scheduler, num_samples=8),
               run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0)).fit()
    return optuna.load_study(study_name="toy", storage=storage).trials


@pytest.mark.slow
def test_stopped_trials_are_pruned_not_complete(ray_local, tmp_path):
    stock = toy_search(optuna_search_cls(), tmp_path / "stock")
    ours = toy_search(PartialAwareOptunaSearch, tmp_path / "ours")
    # Ray's own OptunaSearch records every trial as COMPLETE, stopped ones with their partial values ...
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in stock)
    # ... ours marks the stopped ones PRUNED, with the partial values kept aside.
    pruned = [t for t in ours if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in ours if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and complete
    assert all(t.user_attrs["stopped_at_step"] < 9 and t.values is None for t in pruned)
    assert all(len(t.values) == 2 for t in complete)


def optuna_search_cls():
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch


@pytest.mark.slow
def test_the_gp_sampler_searches_the_variants_own_knobs_after_its_random_start():
    """GPSampler models the knobs every trial shares; a variant's own knobs (a conditional space) it samples
    independently. After its random start it must still propose whole configurations of the study's space, with
    mmie.py's gates stored on every trial as constraints (which GPSampler fits a model to)."""
    cfg = load_config(overrides={"search.sampler": "gp", "search.num_samples": 8, "search.seed": 3})
    search = make_searcher(cfg)
    assert isinstance(search._sampler, optuna.samplers.GPSampler)
    variants = set()
    for i in range(7):  # 4 random, then 3 from the GP
        config = search.suggest(f"t{i}")
        variants.add(config["variant"])
        assert {"variant", "adapter"} <= set(config), config
        search.on_trial_complete(f"t{i}", {"forget_efficacy": 0.1 * i, "utility": 1 - 0.1 * i,
                                           "xlang_utility": 0.5, "step": 60, "finished": 1.0})
    trials = search._ot_study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 7
    assert search.mmie_constraints and all(len(t.constraints) > 0 for t in trials)
    assert len(variants) > 1
