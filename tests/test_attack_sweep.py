"""The attacker sweep (trainables.metrics.attack_sweep): the worst case over a grid finds forgetting that only hides
the language where the single default attack does not; the steering attack brings back what a shift along the base
model's direction hid; the retain-only oracle's numbers under every attack; the audit of a study's front."""

import math
from dataclasses import replace

import pytest
import torch
from conftest import run_steps

from trainables.metrics.attack_sweep import (
    Attack,
    FULL_ATTACKS,
    AttackResult,
    SweepSettings,
    parse_attack,
    steered,
    steering_directions,
    sweep,
    worst_case,
)
from trainables.metrics.robustness import RobustnessSettings, relearning_attack
from trainables.model.decoder_layers import decoder_layers
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

LANGUAGES = (("forget", "hi"), ("retain", "en"))
FORGETTING = TrialSetup(train=TrainSettings(steps=20, batch_size=8, max_len=48, es_prompts=8), languages=LANGUAGES)


def test_attacks_parse_round_trip_and_name_what_is_wrong():
    for text in FULL_ATTACKS:
        attack = parse_attack(text)
        assert parse_attack(attack.name) == attack
    assert parse_attack("relearn:lines=retain,lr=1e-3,params=all") == Attack("relearn", 1e-3, "all", "retain")
    assert parse_attack("steer:strengths=1/4,direction=base").strengths == (1.0, 4.0)
    for bad, message in (("jump", "unknown kind 'jump'"), ("relearn:lr=0", "lr='0' is not valid"),
                         ("relearn:params=lora", "params='lora' is not valid \\(adapter or all\\)"),
                         ("steer:lr=1e-3", "'lr=1e-3' is not one of strengths=..., direction=...")):
        with pytest.raises(ValueError, match=message):
            parse_attack(bad)


def _result(name: str, curve, es=None, es_before=None) -> AttackResult:
    return AttackResult(parse_attack(name), [(float(x), fe) for x, fe in curve], es, es_before)


def test_worst_case_is_the_lowest_point_of_any_curve_and_the_largest_excess_over_the_oracle():
    weak, strong = "relearn:lr=1e-5,params=adapter", "relearn:lr=1e-3,params=all"
    ours = [_result(weak, [(0, 0.8), (10, 0.7), (20, 0.72)], es=0.1, es_before=0.0),
            _result(strong, [(0, 0.8), (10, 0.2), (20, 0.4)], es=0.5, es_before=0.0)]
    oracle = [_result(weak, [(0, 0.9), (10, 0.9)]), _result(strong, [(0, 0.9), (10, 0.45)])]
    metrics, tags = worst_case(ours, oracle)
    assert metrics["worst_relearn_forget_efficacy"] == 0.2  # the minimum along the curve, not its end (MUDMAN)
    assert metrics["worst_relearn_share_back"] == pytest.approx(0.75)
    assert metrics["worst_relearn_es_forget"] == 0.5 and metrics["worst_relearn_es_recovered"] == 0.5
    # Weak: 0.125 back against the oracle's 0; strong: 0.75 against 0.5: the largest excess is the strong one's.
    assert metrics["worst_relearn_excess"] == pytest.approx(0.25)
    assert tags == {"worst_attack": parse_attack(strong).name, "worst_attack_at": "step 10",
                    "worst_excess_attack": parse_attack(strong).name}
    # An attack the oracle did not meet is not matched; next to nothing forgotten gives no share (not 3x back).
    metrics, _ = worst_case([_result("steer", [(0, 0.05), (1, -0.1)])], oracle)
    assert math.isnan(metrics["worst_relearn_share_back"]) and "worst_relearn_excess" not in metrics


@pytest.mark.slow
def test_grid_finds_hidden_forgetting_the_single_default_attack_misses(embedded):
    """Gradient ascent suppresses the forget language without removing it: the default attack (the adapter at lr
    5e-5) brings little back in a few steps, the grid's all-parameter attack brings most of it back."""
    u = Unlearner(FORGETTING, {"variant": "ga", "lr": 1e-2})
    run_steps(u, 6)
    forgotten = u.evaluate_step()["forget_efficacy"]
    assert forgotten > 0.3
    single = relearning_attack(u, RobustnessSettings(relearn_steps=10, relearn_eval_every=5, relearn_es_prompts=4))
    assert single["relearn_share_back"] < 0.2
    settings = SweepSettings(attacks=("relearn:lr=5e-5,params=adapter", "relearn:lr=1e-3,params=all"), attack_steps=10,
                             attack_eval_every=5, attack_es_prompts=4)
    results = sweep(u, settings)
    assert results[0].share_back == pytest.approx(single["relearn_share_back"], abs=0.05)  # the single attack's
    metrics, tags = worst_case(results)
    assert metrics["worst_relearn_share_back"] > 0.5
    assert tags["worst_attack"] == "relearn:lines=forget,lr=0.001,params=all"
    assert u.evaluate_step()["forget_efficacy"] == pytest.approx(forgotten)  # the trial is as it was


def test_an_attack_that_brought_everything_back_stops_early(embedded):
    u = Unlearner(FORGETTING, {"variant": "ga", "lr": 0.0})  # nothing forgotten: back at the first measurement
    run_steps(u, 1)
    [result] = sweep(u, SweepSettings(attacks=("relearn:lr=1e-3,params=adapter",), attack_steps=20, attack_eval_every=5,
                                      attack_es_prompts=2))
    assert [x for x, _ in result.curve] == [0.0, 5.0]


def test_steering_along_the_base_direction_brings_back_what_a_shift_along_it_hid(embedded):
    """A model made to hide the language at one layer (the base model's forget-minus-retain direction subtracted
    there) looks forgotten; the steering attack on the base model's direction finds it back."""
    u = Unlearner(FORGETTING, {"variant": "ga", "lr": 0.0})
    layer = 1
    direction = steering_directions(u.evaluator, 32, base=True)[layer]
    with steered(u.model, layer, direction, -1.5):
        hidden = u.evaluate_step()["forget_efficacy"]
        assert hidden > 0.2
        settings = SweepSettings(attacks=("steer:direction=base,strengths=0.5/1/1.5",), attack_es_prompts=4)
        [result] = sweep(u, settings)
    assert result.start == pytest.approx(hidden)
    assert result.worst < 0.5 * hidden and result.share_back > 0.5
    assert result.where.startswith(f"layer {layer} x")
    assert all(not layer_._forward_hooks for layer_ in decoder_layers(u.model))  # every hook removed
    assert u.evaluate_step()["forget_efficacy"] == pytest.approx(0.0, abs=1e-6)


# ---- the retain-only oracle (built once: as long as the embedded model's build) ------------------------------------


@pytest.fixture(scope="module")
def oracle_pair(embedded):
    from study.oracle import oracle_evaluators
    from trainables.embedded import EmbeddedSpec, ensure_oracle

    setup = TrialSetup(train=TrainSettings(batch_size=8, max_len=48, es_prompts=8, final_es_prompts=16),
                       languages=LANGUAGES)
    return setup, *oracle_evaluators(setup, str(ensure_oracle(EmbeddedSpec(), "hi").model_dir))


@pytest.mark.slow
def test_oracle_under_every_attack_of_the_full_grid(oracle_pair):
    """A model that never learnt the language: its forgetting does not come back from English lines, the steering
    attack leaves it near where it was, and the attacks on forget lines teach it only as much as a few steps can."""
    _, _, oracle = oracle_pair
    settings = SweepSettings(FULL_ATTACKS, attack_steps=10, attack_eval_every=5, attack_es_prompts=8)
    before = {n: p.detach().clone() for n, p in oracle.model.named_parameters()}
    results = {r.attack.name: r for r in sweep(oracle, settings)}
    assert list(results) == [parse_attack(a).name for a in settings.attacks]
    for r in results.values():
        assert r.start > 0.9  # the oracle starts forgotten, against the study model's token mass
        assert r.worst <= r.start + 1e-6
    assert results["relearn:lines=retain,lr=0.001,params=all"].worst > 0.85
    steer = results["steer:direction=self,strengths=0.5/1/2"]
    # Steering finds next to no Hindi it never learnt: at most one of the 8 prompts at the worst of its six settings
    # (a max over six draws).
    assert steer.worst > 0.75 and (steer.es or 0.0) <= 1 / 8
    weak, strong = results["relearn:lines=forget,lr=1e-05,params=adapter"], results[
        "relearn:lines=forget,lr=0.001,params=all"]
    assert weak.share_back < strong.share_back  # a stronger attacker teaches it more, as it should
    assert all(torch.equal(before[n], p) for n, p in oracle.model.named_parameters())


@pytest.mark.slow
def test_oracle_is_never_called_degenerate(oracle_pair):
    """The rule must never call real forgetting broken: the retain-only oracle's continuations of forget prompts
    are fluent text in other languages (Bengali, Punjabi, Urdu: the languages it learnt). Language ID knows the
    languages a study of the embedded default finds in its sets (study.prepare), as on a parent run; with only
    Hindi and English it finds "no language" in 13 of 16 of them, and the rule would call the oracle broken."""
    from study.oracle import oracle_calibration, oracle_evaluators
    from trainables.embedded import EmbeddedSpec, ensure_oracle

    setup, _, _ = oracle_pair
    study_languages = LANGUAGES + (("xlang_bn", "bn"), ("xlang_pa", "pa"), ("xlang_ur", "ur"))
    setup = replace(setup, languages=study_languages)
    study, oracle = oracle_evaluators(setup, str(ensure_oracle(EmbeddedSpec(), "hi").model_dir))
    calibration = oracle_calibration(study, oracle, prompts=16)
    assert setup.degenerate.reasons(calibration) == [] and calibration["degenerate"] == 0.0
    assert calibration["es_none"] < 0.5 and calibration["forget_cont_distinct"] > 0.3


@pytest.mark.slow
def test_study_audits_its_front_and_the_audit_command_reruns_it(ray_local, embedded, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from study.cli import main
    from study.config import load_config
    from study.runner import run_study

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    grid = ["relearn:lr=1e-3,params=all", "steer:strengths=1"]
    cfg = load_config(overrides={
        "study": "audited", "tracking_uri": uri, "variants": ["ga"], "search.num_samples": 2,
        "search.max_concurrent": 2, "search.space": {"lr": {"low": 1e-3, "high": 1e-2}}, "scheduler.type": "fifo",
        "train.steps": 4, "train.eval_every": 4, "train.checkpoint_every": 4, "train.batch_size": 8,
        "train.es_prompts": 4, "train.final_es_prompts": 4, "robustness.relearn_steps": 2,
        "robustness.relearn_es_prompts": 2, "robustness.audit": True, "robustness.attacks": grid,
        "robustness.attack_steps": 4, "robustness.attack_eval_every": 2, "robustness.attack_es_prompts": 2,
    })
    run_study(cfg, log=lambda *a: None, progress=False)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("audited").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("role") == "study")
    assert {"oracle_worst_forget_efficacy", "oracle_worst_share_back", "oracle_es_none", "oracle_degenerate",
            "oracle_attack/steer_self/forget_efficacy"} <= set(parent.data.metrics)
    assert parent.data.metrics["oracle_degenerate"] == 0.0
    assert parent.data.tags["oracle_worst_attack"] in {parse_attack(a).name for a in grid}
    audited = [r for r in runs if "worst_relearn_forget_efficacy" in r.data.metrics]  # no excess: forgot < 0.1
    assert audited and all(r.data.tags.get("pareto") == "true" for r in audited)
    for run in audited:
        assert run.data.tags["worst_attack"] in {parse_attack(a).name for a in grid}
        assert {"worst_relearn_forget_efficacy", "worst_relearn_es_forget"} <= set(run.data.metrics)
        curve = client.get_metric_history(run.info.run_id, "attack/relearn_forget_lr0.001_all/curve")
        assert sorted(m.step for m in curve) == [0, 2, 4] or curve[-1].value <= 0  # or it stopped early
        assert "robustness.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # On the finished study, from its folder: the knee only, one attack.
    assert main(["audit", "--study", "audited", "--tracking-uri", uri, "--top", "1", "--attacks",
                 "relearn:lr=1e-4,params=adapter"]) == 0
    knee = [r for r in client.search_runs([parent.info.experiment_id])
            if "attack/relearn_forget_lr0.0001_adapter/forget_efficacy" in r.data.metrics]
    assert len(knee) == 1
    # Named trials instead of the front (bench/robustness_table.py --audit): a wrong id is refused before any model.
    assert main(["audit", "--study", "audited", "--tracking-uri", uri, "--trials", "nosuch"]) == 2


def test_audit_reads_each_trials_newest_checkpoint_and_says_where_it_looked(tmp_path):
    from study.results.audit import STATE_FILE, last_checkpoint

    for trial, step in (("abc12_00000", 2), ("abc12_00000", 10), ("abc12_00001", 4)):
        folder = tmp_path / f"unlearning_trainable_{trial}_lr=0.001" / f"checkpoint_{step:06d}"
        folder.mkdir(parents=True)
        (folder / STATE_FILE).write_bytes(b"")
    assert last_checkpoint(tmp_path, "abc12_00000").parent.name == "checkpoint_000010"
    with pytest.raises(FileNotFoundError, match="no checkpoint of trial zzz under .*--path"):
        last_checkpoint(tmp_path, "zzz")


def test_front_members_that_forgot_next_to_nothing_are_not_attacked():
    from types import SimpleNamespace

    from study.results.audit import members_that_forgot
    from trainables.settings import MIN_FORGOTTEN

    def member(fe, knee=False):
        return SimpleNamespace(metrics={"forget_efficacy": fe}), knee

    knee, other, idle, idle2 = member(0.4, True), member(MIN_FORGOTTEN), member(0.03), member(MIN_FORGOTTEN / 2)
    assert members_that_forgot([knee, idle, other, idle2]) == [knee, other]
    assert members_that_forgot([idle, idle2]) == [idle]  # none forgot: the first is still read
    assert members_that_forgot([]) == []
