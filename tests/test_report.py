"""The ladder report: its statistics, hypervolumes on hand-built fronts, a study with failed and diverged trials,
the metric-validity switch, and that it regenerates identically from MLflow alone."""

import math

import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from scipy import stats

from study.report import ES_FORGET_OBJECTIVE, build_report, mean_ci, verdict, write_report


def test_mean_ci_is_a_t_interval():
    values = [1.0, 2.0, 4.0]
    mean, lo, hi = mean_ci(values)
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert mean == pytest.approx(7 / 3) and lo == pytest.approx(7 / 3 - half) and hi == pytest.approx(7 / 3 + half)
    assert math.isnan(mean_ci([3.0])[1]) and mean_ci([3.0])[0] == 3.0
    assert math.isnan(mean_ci([])[0])


def test_verdicts():
    base = (1.0, 0.9, 1.1)
    assert verdict((2.0, 1.5, 2.5), base).startswith("helps")
    assert verdict((0.5, 0.4, 0.6), base).startswith("hurts")
    assert verdict((1.05, 0.95, 1.2), base).startswith("no detectable")
    assert verdict((1.0, math.nan, math.nan), base) == "too few seeds to tell"


def make_study(client, name, trials, steps=4):
    """A study as the platform writes it: a parent run and one child run per trial with per-step histories.

    trials: list of (status, final forget_efficacy, final utility, es_forget at the end)."""
    exp = client.create_experiment(name)
    parent = client.create_run(exp, tags={"role": "study", "objectives": "forget_efficacy,utility",
                                          "study_steps": str(steps), "study_seed": "0"}).info.run_id
    for i, (status, fe, utility, es) in enumerate(trials):
        run = client.create_run(exp, tags={"mlflow.parentRunId": parent, "trial_id": f"{name}-{i}",
                                           "trial_status": status}).info.run_id
        client.log_param(run, "variant", name.split("-")[1])
        client.log_param(run, "lr", "0.001")
        if status == "error":
            continue
        metrics = []
        for step in range(1, steps + 1):
            frac = step / steps
            metrics += [Metric("forget_efficacy", fe * frac, 0, step), Metric("utility", 1 - (1 - utility) * frac, 0, step),
                        Metric("retain_ppl", 2.0 / (1 - (1 - utility) * frac), 0, step), Metric("step", step, 0, step),
                        Metric("seconds_per_step", 0.1, 0, step)]
            if step % 2 == 0:  # ES at evaluation checkpoints
                metrics.append(Metric("es_forget", 1 - (1 - es) * frac, 0, step))
        client.log_batch(run, metrics=metrics)
    return parent


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return uri, MlflowClient(uri)


def test_report_hypervolumes_failed_trials_and_regeneration(store, tmp_path):
    uri, client = store
    # ga: fronts {(0.5, 0.9)} and {(0.6, 0.9)}: hypervolumes 0.45 and 0.54.
    make_study(client, "lad-ga-s0", [("completed", 0.5, 0.9, 0.5), ("completed", 0.2, 0.8, 0.8), ("error", 0, 0, 0)])
    make_study(client, "lad-ga-s1", [("completed", 0.6, 0.9, 0.4), ("stopped_early", 0.9, 1.0, 0.1)])
    # bounded: {(0.8, 0.95), (0.9, 0.5)}: 0.8*0.95 + 0.1*0.5 = 0.81; a diverged trial counts with its values.
    make_study(client, "lad-bounded-s0", [("completed", 0.8, 0.95, 0.2), ("diverged", 0.9, 0.5, 0.1)])
    make_study(client, "lad-bounded-s1", [("completed", 0.8, 0.95, 0.2), ("completed", 0.9, 0.5, 0.1)])
    make_study(client, "other-ga-s0", [("completed", 0.1, 0.1, 0.9)])  # another ladder: ignored

    report = build_report(uri, "lad")
    assert report.rungs == ["ga", "bounded"] and report.seeds == [0, 1]  # the GA baseline first
    hv = {(r.rung, r.seed): r.hypervolume for r in report.results}
    assert hv == pytest.approx({("ga", 0): 0.45, ("ga", 1): 0.54, ("bounded", 0): 0.81, ("bounded", 1): 0.81})
    ga0 = next(r for r in report.results if (r.rung, r.seed) == ("ga", 0))
    assert ga0.statuses == {"completed": 2, "error": 1}
    assert ga0.best_forget == {0.95: None, 0.9: pytest.approx(0.5)}
    assert report.forget_objective == "forget_efficacy" and report.es_correlation > 0.8
    assert report.utility_ppl_correlation == pytest.approx(-1.0)

    first = write_report(uri, "lad", tmp_path / "r1").read_text()
    second = write_report(uri, "lad", tmp_path / "r2").read_text()
    assert first == second  # from MLflow alone, the same tables every time
    assert "| ga | 0.495 [" in first and "| bounded | 0.810" in first
    assert (tmp_path / "r1" / "ladder_fronts.png").exists()
    reports = client.search_runs([client.get_experiment_by_name("lad").experiment_id])
    assert len(reports) == 2 and all(r.data.tags["role"] == "ladder_report" for r in reports)


def test_poor_proxy_switches_the_forget_objective_to_es(store):
    uri, client = store
    # ES rises while token-mass efficacy rises: the proxy and ES disagree.
    make_study(client, "bad-ga-s0", [("completed", 0.9, 0.9, 0.95), ("completed", 0.3, 0.95, 0.5)])
    report = build_report(uri, "bad")
    assert report.es_correlation < 0.8 and report.forget_objective == ES_FORGET_OBJECTIVE
    # Fronts now use 1 - ES: (0.05, 0.9) and (0.5, 0.95); the second dominates.
    assert report.results[0].hypervolume == pytest.approx(0.5 * 0.95)


def test_no_ladder_is_a_clear_error(store):
    uri, _ = store
    with pytest.raises(ValueError, match="no ladder studies named nope-<rung>-s<seed>"):
        build_report(uri, "nope")
