"""The ladder report: its paired statistics and verdicts, hypervolumes on hand-built fronts, a study with failed and
diverged trials, the metric-validity checks and switch, and that it regenerates identically from MLflow alone.
Studies are real MLflow runs in a local store, written as the platform writes them."""

import math
import re

import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from scipy import stats

from study.results.ladder_report import (
    ES_FORGET_OBJECTIVE,
    MMIE_ES_FORGET,
    PairedDifference,
    build_report,
    markdown,
    mean_ci,
    paired_difference,
    verdict,
    write_report,
)


def test_mean_ci_is_a_t_interval_clipped_to_the_range():
    values = [1.0, 2.0, 4.0]
    mean, lo, hi = mean_ci(values)
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert mean == pytest.approx(7 / 3) and lo == pytest.approx(7 / 3 - half) and hi == pytest.approx(7 / 3 + half)
    assert math.isnan(mean_ci([3.0])[1]) and mean_ci([3.0])[0] == 3.0
    assert math.isnan(mean_ci([])[0])
    assert mean_ci([0.1, 0.9, 0.5], value_range=(0, 1)) == pytest.approx((0.5, 0.0, 1.0))


def diff(low, high, mean=0.0):
    return PairedDifference((0, 1, 2), (mean,) * 3, mean, low, high, math.nan)


def test_verdicts():
    assert verdict(diff(0.01, 0.3)) == "better than GA"
    assert verdict(diff(-0.3, -0.001), baseline="ga") == "worse than ga"
    assert verdict(diff(-0.02, 0.04)) == ("no difference detected (interval [-0.020, +0.040] excludes differences "
                                          "beyond ±0.05)")
    assert verdict(diff(-0.02, 0.04), margin=0.03) == "underpowered"  # could hide a gain of 0.04 > 0.03
    assert verdict(diff(-0.4, 0.4)) == "underpowered"
    assert verdict(diff(math.nan, math.nan)).startswith("underpowered")


def test_paired_difference_is_a_paired_t_interval():
    base = {0: 0.4, 1: 0.45, 2: 0.5, 7: 0.9}  # seed 7 has no partner: left out
    rung = {0: 0.56, 1: 0.60, 2: 0.64}
    d = paired_difference(rung, base)
    assert d.seeds == (0, 1, 2) and d.differences == pytest.approx((0.16, 0.15, 0.14))
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert (d.mean, d.low, d.high) == pytest.approx((0.15, 0.15 - half, 0.15 + half))
    assert d.p_value == pytest.approx(stats.ttest_rel([0.56, 0.6, 0.64], [0.4, 0.45, 0.5]).pvalue)
    # a difference of two [0, 1] metrics lies in [-1, 1]
    wide = paired_difference({0: 1.0, 1: 0.0, 2: 1.0}, {0: 0.0, 1: 1.0, 2: 0.0})
    assert (wide.low, wide.high) == (-1.0, 1.0)
    same = paired_difference({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5})  # every seed moved by exactly 0.1
    assert (same.low, same.high, same.p_value) == pytest.approx((0.1, 0.1, 0.0))
    assert math.isnan(paired_difference({0: 0.5}, {0: 0.4}).low)


def make_study(client, name, trials, steps=4, mmie_es=None, relearn=None, oracle=None):
    """A study as the platform writes it: a parent run and one child run per trial with per-step histories.

    trials: list of (status, final forget_efficacy, final utility, es_forget at the end). mmie_es: if given, a
    function of (trial's final es_forget, step fraction) logged as mmie.py's ES at the evaluation checkpoints.
    relearn: per trial, the relearning attack's end-of-trial metrics (the study then ran a 20-step attack);
    oracle: the parent run's oracle_* metrics."""
    exp = client.create_experiment(name)
    parent = client.create_run(exp, tags={"role": "study", "objectives": "forget_efficacy,utility",
                                          "study_steps": str(steps), "study_seed": "0"}).info.run_id
    client.log_param(parent, "robustness.relearn", str(relearn is not None))
    client.log_param(parent, "robustness.relearn_steps", "20")
    for key, value in (oracle or {}).items():
        client.log_metric(parent, key, value, step=0)
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
                if mmie_es is not None:
                    metrics.append(Metric(MMIE_ES_FORGET, mmie_es(es, frac), 0, step))
        client.log_batch(run, metrics=metrics)
        for key, value in (relearn[i] if relearn else {}).items():
            client.log_metric(run, key, value, step=steps)
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory, mlflow_store):
    # one store for the module; each test writes its own ladder name
    uri = mlflow_store(tmp_path_factory.mktemp("mlflow"))
    return uri, MlflowClient(uri)


def test_report_hypervolumes_failed_trials_and_regeneration(store, tmp_path):
    uri, client = store
    # ga: fronts {(0.5, 0.9)} and {(0.6, 0.9)}: hypervolumes 0.45 and 0.54.
    make_study(client, "lad-ga-s0", [("completed", 0.5, 0.9, 0.5), ("completed", 0.2, 0.8, 0.8), ("error", 0, 0, 0)])
    make_study(client, "lad-ga-s1", [("completed", 0.6, 0.9, 0.4), ("stopped_early", 0.9, 1.0, 0.1)])
    # bounded: {(0.8, 0.95)}: 0.76; a diverged trial stays off the front (study.eligibility), as in the study's own.
    make_study(client, "lad-bounded-s0", [("completed", 0.8, 0.95, 0.2), ("diverged", 0.9, 0.5, 0.1)])
    # utility 1.2 (retain perplexity below the base model's) counts as 1: {(0.8, 1.0), (0.9, 0.5)}: 0.85
    make_study(client, "lad-bounded-s1", [("completed", 0.8, 1.2, 0.2), ("completed", 0.9, 0.5, 0.1)])
    make_study(client, "other-ga-s0", [("completed", 0.1, 0.1, 0.9)])  # another ladder: ignored

    report = build_report(uri, "lad")
    assert report.rungs == ["ga", "bounded"] and report.seeds == [0, 1]  # the GA baseline first
    hv = {(r.rung, r.seed): r.hypervolume for r in report.results}
    assert hv == pytest.approx({("ga", 0): 0.45, ("ga", 1): 0.54, ("bounded", 0): 0.76, ("bounded", 1): 0.85})
    ga0 = next(r for r in report.results if (r.rung, r.seed) == ("ga", 0))
    assert ga0.statuses == {"completed": 2, "error": 1}
    bounded0 = next(r for r in report.results if (r.rung, r.seed) == ("bounded", 0))
    assert bounded0.off_front == {"diverged": 1} and ga0.off_front == {}
    # no trial at utility >= 0.95 on this seed: best forget 0 there, and the seed is counted as not reaching it
    assert ga0.best_forget == {0.95: 0.0, 0.9: pytest.approx(0.5)} and ga0.reached == {0.95: False, 0.9: True}
    assert report.forget_objective == "forget_efficacy" and report.es_check.spearman > 0.8

    first = write_report(uri, "lad", tmp_path / "r1").read_text()
    second = write_report(uri, "lad", tmp_path / "r2").read_text()
    assert first == second  # from MLflow alone, the same tables every time
    # GA's t-interval (0.495 ± 0.57) is clipped to hypervolume's range; 0 of 2 GA seeds reach utility 0.95
    assert "| ga | 2 | 0.495 [0.000, 1.000] | 0.000 [0.000, 0.000] (0/2) | 0.550 [0.000, 1.000] (2/2) |" in first
    assert "| bounded | 2 | 0.805 [" in first and "s0 +0.310, s1 +0.310" in first
    assert "- bounded: of 4 finished trials, kept off the fronts: 1 diverged." in first
    assert "perplexity" not in first  # utility/perplexity correlation: true by construction, not reported
    assert "not logged in these runs" in first
    assert (tmp_path / "r1" / "ladder_fronts.png").exists() and (tmp_path / "r1" / "ladder_hypervolume.png").exists()
    reports = client.search_runs([client.get_experiment_by_name("lad").experiment_id])
    assert len(reports) == 2 and all(r.data.tags["role"] == "ladder_report" for r in reports)


# Each seed's study holds one trial at full utility, so its hypervolume and best forget equal its forget
# efficacy: per rung, the values for seeds 0, 1, 2, with known verdicts against GA.
LADDER = {
    "ga": [0.40, 0.45, 0.50],
    "bounded": [0.56, 0.60, 0.64],  # +0.15 on every seed (±0.01): better, though the rungs' intervals overlap
    "loreun": [0.20, 0.27, 0.28],  # about -0.2 on every seed: worse
    "dualoptim": [0.41, 0.44, 0.50],  # +0.01, -0.01, 0: within ±0.025, so no difference beyond ±0.05
    "curriculum": [0.70, 0.15, 0.55],  # +0.3, -0.3, +0.05: the interval spans large gains and losses
}


def test_hand_built_ladder_gets_the_known_verdicts(store):
    uri, client = store
    for rung, values in LADDER.items():
        for seed, fe in enumerate(values):
            make_study(client, f"known-{rung}-s{seed}", [("completed", fe, 1.0, 1 - fe)])
    # adaptive: seed 2's only trial keeps utility 0.85, below both floors
    for seed, (fe, utility) in enumerate([(0.5, 1.0), (0.5, 1.0), (0.5, 0.85)]):
        make_study(client, f"known-adaptive-s{seed}", [("completed", fe, utility, 1 - fe)])
    report = build_report(uri, "known")

    verdicts = {rung: report.verdict(rung) for rung in report.rungs[1:]}
    assert verdicts["bounded"] == "better than GA"
    assert verdicts["loreun"] == "worse than GA"
    assert verdicts["dualoptim"].startswith("no difference detected (interval [-0.025, +0.025] excludes")
    assert verdicts["curriculum"] == "underpowered"
    # the case the old reading missed: each rung's own 95% interval overlaps GA's, and even an unpaired Welch
    # test finds the difference; the paired interval is far from 0
    _, ga_lo, ga_hi = mean_ci(LADDER["ga"])
    _, b_lo, b_hi = mean_ci(LADDER["bounded"])
    assert b_lo < ga_hi
    assert stats.ttest_ind(LADDER["bounded"], LADDER["ga"], equal_var=False).pvalue < 0.05
    assert report.against_baseline("bounded", "hypervolume").low > 0.1

    # a seed with no trial at the floor counts as 0, and the table says 2 of 3 seeds reached it
    adaptive = {r.seed: r for r in report.by_rung("adaptive")}
    assert adaptive[2].best_forget == {0.95: 0.0, 0.9: 0.0} and adaptive[0].best_forget[0.95] == pytest.approx(0.5)
    assert report.values("adaptive", "best forget @ utility ≥ 0.9") == pytest.approx({0: 0.5, 1: 0.5, 2: 0.0})
    text = markdown(report)
    assert "| adaptive | 3 | 0.475 [" in text and "0.333 [0.000, 1.000] (2/3)" in text
    assert "no detectable difference" not in text and "(intervals overlap)" not in text
    assert "| bounded | s0 +0.160, s1 +0.150, s2 +0.140 | +0.150 [" in text
    intervals = re.findall(r"\[([-+0-9.]+), ([-+0-9.]+)\]", text)
    assert len(intervals) > 20 and all(-1.0 <= float(x) <= 1.0 for pair in intervals for x in pair)


def test_poor_proxy_switches_the_forget_objective_to_es(store):
    uri, client = store
    # ES rises while token-mass efficacy rises: the proxy and ES disagree.
    make_study(client, "bad-ga-s0", [("completed", 0.9, 0.9, 0.95), ("completed", 0.3, 0.95, 0.5)])
    report = build_report(uri, "bad")
    assert report.es_check.spearman < 0.8 and report.forget_objective == ES_FORGET_OBJECTIVE
    # Fronts now use 1 - ES: (0.05, 0.9) and (0.5, 0.95); the second dominates.
    assert report.results[0].hypervolume == pytest.approx(0.5 * 0.95)
    assert report.mmie_es_check.checkpoints == 0  # no mmie.py ES in these runs: skipped, and said so
    assert "`mmie/es_forget`) is not logged in these runs" in markdown(report)


def test_proxy_is_checked_against_mmie_es_where_the_runs_log_it(store):
    uri, client = store
    trials = [("completed", 0.9, 0.9, 0.2), ("completed", 0.3, 0.95, 0.7)]
    # mmie.py's ES falls as our ES does (a word-prefix measure, on another scale): the proxy tracks both
    make_study(client, "agree-ga-s0", trials, mmie_es=lambda es, frac: 0.5 * (1 - (1 - es) * frac))
    # mmie.py's ES RISES over training while forget_efficacy rises: the proxy does not track it
    make_study(client, "disagree-ga-s0", trials, mmie_es=lambda es, frac: 0.2 + 0.6 * frac * es)

    agree = build_report(uri, "agree")
    assert agree.mmie_es_check.checkpoints == 4 and agree.mmie_es_check.spearman > 0.8
    assert "Spearman(forget_efficacy, 1 − mmie.py's ES `mmie/es_forget`) over 4 evaluated checkpoints" in markdown(agree)
    disagree = build_report(uri, "disagree")
    assert disagree.mmie_es_check.spearman < 0.8
    assert disagree.forget_objective == "forget_efficacy"  # our ES still tracks: the fronts keep the proxy
    assert "tracks mmie.py's ES poorly" in markdown(disagree)


ORACLE = {"oracle_forget_efficacy": 0.9, "oracle_es_forget": 0.1, "oracle_relearn_forget_efficacy_10": 0.8,
          "oracle_relearn_forget_efficacy": 0.72, "oracle_relearn_es_forget": 0.2, "oracle_relearn_share_back": 0.2}


def attacked(fe_after, share, excess, mid):
    return {"relearn_forget_efficacy": fe_after, "relearn_forget_efficacy_10": mid, "relearn_es_forget": 0.5,
            "relearn_share_back": share, "relearn_excess": excess}


def test_report_compares_the_relearning_attack_with_the_oracle_per_rung(store, tmp_path):
    uri, client = store
    # ga's forgetting (0.8) comes back (after: 0.2, 0.3: share 0.75, 0.625); bounded's survives (0.75, 0.7)
    for seed, after in enumerate([0.2, 0.3]):
        share = (0.8 - after) / 0.8
        make_study(client, f"rob-ga-s{seed}", [("completed", 0.8, 1.0, 0.2)],
                   relearn=[attacked(after, share, share - 0.2, 0.5)], oracle=ORACLE)
    for seed, after in enumerate([0.75, 0.7]):
        share = (0.8 - after) / 0.8
        make_study(client, f"rob-bounded-s{seed}", [("completed", 0.8, 1.0, 0.2)],
                   relearn=[attacked(after, share, share - 0.2, 0.78)], oracle=ORACLE)
    report = build_report(uri, "rob")
    assert report.attacked
    ga0 = next(r for r in report.results if (r.rung, r.seed) == ("ga", 0))
    assert ga0.knee_curve() == [(0, 0.8), (10, 0.5), (20, 0.2)]
    assert ga0.oracle_curve() == [(0, 0.9), (10, 0.8), (20, 0.72)]
    diff = report.against_baseline("bounded", "forget efficacy after the relearning attack, at the knee")
    assert diff.differences == pytest.approx((0.55, 0.4))
    text = markdown(report)
    assert "| ga | 0.800 → 0.250 | 0.200 → 0.500 | 0.688 | +0.488 | 0/2 |" in text
    assert "| bounded | 0.800 → 0.725 | 0.200 → 0.500 | 0.094 | -0.106 | 2/2 |" in text
    assert "| retain-only oracle | 0.900 → 0.720 | 0.100 → 0.200 | 0.200 | – | – |" in text
    assert "| bounded | s0 +0.550, s1 +0.400 |" in text  # the paired table of the attacked knees
    write_report(uri, "rob", tmp_path, log_to_mlflow=False)
    assert (tmp_path / "ladder_relearning.png").exists()


def test_report_says_when_no_attack_ran(store):
    uri, client = store
    make_study(client, "calm-ga-s0", [("completed", 0.8, 1.0, 0.2)])
    report = build_report(uri, "calm")
    assert not report.attacked and report.compared_metrics() == ["hypervolume", "best forget @ utility ≥ 0.95",
                                                                 "best forget @ utility ≥ 0.9"]
    assert "The relearning attack did not run in these studies" in markdown(report)


def test_no_ladder_is_a_clear_error(store):
    uri, _ = store
    with pytest.raises(ValueError, match="no ladder studies named nope-<rung>-s<seed>"):
        build_report(uri, "nope")
