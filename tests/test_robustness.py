"""Robustness checks on the embedded model: the relearning attack leaves the trial as it was, reads only its own
held-out lines, brings forgotten mass back; the retain-only oracle never learnt the forget language; the config's
switches are validated."""

import math

import pytest
import torch
from conftest import run_steps

import trainables.metrics.robustness as robustness
from study.config import ConfigError, load_config
from study.oracle import robustness_settings
from trainables.data import load_study_data, read_jsonl, split_heldout
from trainables.metrics.robustness import (
    RobustnessSettings,
    actpert_audit,
    half_steps,
    int8_check,
    relearning_attack,
)
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

LANGUAGES = (("forget", "hi"), ("retain", "en"))
SETUP = TrialSetup(train=TrainSettings(steps=20, batch_size=4, max_len=48, es_prompts=8), languages=LANGUAGES)
FORGETTING = TrialSetup(train=TrainSettings(steps=20, batch_size=8, max_len=48, es_prompts=8), languages=LANGUAGES)
QUICK = RobustnessSettings(relearn_steps=4, relearn_eval_every=2, relearn_es_prompts=4, relearn_lr=1e-3)


def snapshot(u: Unlearner) -> dict:
    return {n: p.detach().clone() for n, p in u.model.named_parameters()}


@pytest.mark.parametrize("params", ["adapter", "all"])
def test_attack_leaves_the_trial_bit_identical(embedded, params):
    hp = {"variant": "ga", "lr": 3e-3}
    attacked, untouched = Unlearner(SETUP, hp), Unlearner(SETUP, hp)
    assert run_steps(attacked, 2) == run_steps(untouched, 2)
    before = snapshot(attacked)
    flags = {n: p.requires_grad for n, p in attacked.model.named_parameters()}
    result = relearning_attack(attacked, RobustnessSettings(**{**QUICK.__dict__, "relearn_params": params}))
    assert result["relearn_forget_efficacy"] != attacked.evaluate_step()["forget_efficacy"]  # the attack did train
    after = snapshot(attacked)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert flags == {n: p.requires_grad for n, p in attacked.model.named_parameters()}
    # The trial goes on exactly as the one never attacked (optimiser state and random streams included).
    assert run_steps(attacked, 2) == run_steps(untouched, 2)


def test_attack_reads_only_its_held_out_lines(embedded, monkeypatch):
    u = Unlearner(SETUP, {"variant": "ga", "lr": 1e-3})
    forget = u.data.forget
    attack = {tuple(u.tok.encode(t, add_special_tokens=False)) for t in forget.attack}
    assert attack and not set(forget.attack) & (set(forget.train) | set(forget.heldout))
    seen = []
    real_pad_rows = robustness.pad_rows

    def recording(tok, rows, max_len, left_pad=False):
        seen.extend(tuple(r) for r in rows)
        return real_pad_rows(tok, rows, max_len, left_pad)

    monkeypatch.setattr(robustness, "pad_rows", recording)
    relearning_attack(u, QUICK)
    assert seen and set(seen) <= attack


def test_attack_lines_are_a_deterministic_slice_of_training_lines(embedded):
    paths = embedded.data_paths()
    a, b = load_study_data(paths, seed=3), load_study_data(paths, seed=3)
    assert a.forget.attack == b.forget.attack and len(a.forget.attack) == 128
    # Training keeps the rest in order: the embedded build pretrains on train + attack, as before the split.
    train, _ = split_heldout(read_jsonl(paths.forget), seed=3, heldout=128)
    assert a.forget.train + a.forget.attack == train
    assert a.retain.attack == [] and load_study_data(paths, seed=4).forget.attack != a.forget.attack


def test_relearning_brings_forgotten_mass_back(embedded):
    u = Unlearner(FORGETTING, {"variant": "ga", "lr": 1e-2})
    run_steps(u, 6)
    forgotten = u.evaluate_step()["forget_efficacy"]
    assert forgotten > 0.3
    result = relearning_attack(u, RobustnessSettings(relearn_steps=20, relearn_eval_every=5, relearn_es_prompts=8,
                                                     relearn_lr=1e-3))
    assert result["relearn_forget_efficacy"] < forgotten - 0.2
    assert result["relearn_drop"] == pytest.approx(forgotten - result["relearn_forget_efficacy"])
    assert result["relearn_share_back"] == pytest.approx(result["relearn_drop"] / forgotten)
    assert result["relearn_half_steps"] in (5.0, 10.0, 15.0, 20.0)
    curve = [result[f"relearn_forget_efficacy_{k}"] for k in (5, 10, 15)] + [result["relearn_forget_efficacy"]]
    assert curve[0] < forgotten and curve[-1] <= curve[0]


def test_nothing_forgotten_is_back_at_once(embedded):
    u = Unlearner(SETUP, {"variant": "ga", "lr": 0.0})
    run_steps(u, 2)
    assert u.evaluate_step()["forget_efficacy"] == pytest.approx(0.0, abs=1e-6)
    result = relearning_attack(u, QUICK)
    assert result["relearn_half_steps"] == 0.0
    assert result["relearn_forget_efficacy"] <= 1e-3  # fine-tuning on forget text only raises its mass


def test_half_steps():
    assert half_steps([(0, 0.8), (10, 0.6), (20, 0.4), (30, 0.1)]) == 20.0
    assert math.isnan(half_steps([(0, 0.8), (10, 0.7)]))
    assert half_steps([(0, -0.01), (10, -0.2)]) == 0.0


def test_activation_noise_and_int8_copy_leave_the_trial_alone(embedded):
    u = Unlearner(SETUP, {"variant": "ga", "lr": 3e-3})
    run_steps(u, 2)
    before, clean = snapshot(u), u.evaluate_step()
    quiet = actpert_audit(u, amp=1e-6, prompts=4)
    loud = actpert_audit(u, amp=3.0, prompts=4)
    assert quiet["actpert_layers"] == 2
    assert quiet["actpert_forget_efficacy"] == pytest.approx(clean["forget_efficacy"], abs=1e-3)
    assert abs(loud["actpert_forget_efficacy"] - clean["forget_efficacy"]) > 0.01
    q = int8_check(u, prompts=4)
    assert q["int8_forget_efficacy"] == pytest.approx(clean["forget_efficacy"], abs=0.1)
    assert q["int8_forget_efficacy"] != clean["forget_efficacy"]  # quantised weights, not the float model
    assert all(torch.equal(before[n], p) for n, p in u.model.named_parameters())
    assert u.evaluate_step() == clean


@pytest.mark.slow
def test_oracle_never_learnt_the_forget_language(embedded):
    from study.oracle import measure_oracle
    from trainables.embedded import EmbeddedSpec, ensure_oracle

    oracle = ensure_oracle(EmbeddedSpec(), "hi")
    assert oracle.report["lines_dropped"]["hi_en"] > 0 and "hi" not in oracle.report["lines_dropped"]
    assert (oracle.model_dir / "tokenizer.json").read_bytes() == (embedded.model_dir / "tokenizer.json").read_bytes()
    figures = measure_oracle(TrialSetup(languages=LANGUAGES, robustness=RobustnessSettings(relearn=False)),
                             str(oracle.model_dir))
    # What mass is left sits on single-byte tokens: UTF-8 continuation bytes that Devanagari shares with the
    # Bengali and Gurmukhi the oracle did learn.
    assert figures["oracle_token_mass"] < 0.1 * figures["study_model_token_mass"]
    assert figures["oracle_forget_efficacy"] > 0.9 and figures["oracle_es_forget"] <= 0.05
    # It still models the languages it was trained on.
    assert oracle.report["languages"]["en"]["perplexity"] < 6


def test_rungs_get_the_attack_when_it_is_an_objective():
    objective = {"search.objectives": ["relearn_forget_efficacy", "utility"]}
    assert robustness_settings(load_config(overrides=objective)).relearn_at_steps == (30,)  # 60 steps, grace 30
    longer = {**objective, "train.steps": 100, "scheduler.grace_period": 25}
    assert robustness_settings(load_config(overrides=longer)).relearn_at_steps == (25, 50)
    assert robustness_settings(load_config(overrides={**objective, "scheduler.type": "fifo"})).relearn_at_steps == ()
    assert robustness_settings(load_config()).relearn_at_steps == ()
    assert robustness_settings(load_config(overrides={"robustness.relearn_at": "eval"})).relearn_at_steps == (20, 40)  # eval_every 20
    settings = robustness_settings(load_config(overrides={"robustness.relearn_params": "all",
                                                          "robustness.relearn_steps": 7}))
    assert (settings.relearn_params, settings.relearn_steps, settings.relearn_lr) == ("all", 7, 5e-5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"robustness.relearn": False, "search.objectives": ["relearn_forget_efficacy", "utility"]},
         "search.objectives: relearn_forget_efficacy needs robustness.relearn: true"),
        ({"robustness.relearn": False, "robustness.relearn_at": "eval"}, "robustness.relearn_at: needs"),
        ({"robustness.oracle": True, "model": "Qwen/Qwen2.5-1.5B-Instruct"}, "robustness.oracle: only the embedded"),
        ({"robustness.oracle": "/no/such/model"}, "robustness.oracle: /no/such/model: not a model folder"),
        ({"robustness.int8_check": True, "resources.gpus_per_trial": 1}, "robustness.int8_check: torch's dynamic"),
        ({"robustness.int8_check": True, "dtype": "bfloat16"}, "robustness.int8_check: quantises float32"),
        ({"robustness.relearn_params": "lora"}, "robustness.relearn_params: Input should be 'adapter' or 'all'"),
        ({"robustness.relearn_steps": 0}, "robustness.relearn_steps: Input should be greater than or equal to 1"),
        ({"robustness.actpert_amp": 0}, "robustness.actpert_amp: Input should be greater than 0"),
    ],
)
def test_robustness_switches_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(overrides=overrides)


def test_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("study: x\nrobustness:\n  relearn_lr: -1\n")
    with pytest.raises(ConfigError, match="line 3: robustness.relearn_lr: Input should be greater than 0"):
        load_config(path)


@pytest.mark.slow
def test_study_reports_the_oracle_and_attacks_at_rungs(ray_local, embedded, tmp_path, monkeypatch):
    import json

    from mlflow.tracking import MlflowClient

    from study.runner import run_study

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = load_config(overrides={
        "study": "robust", "tracking_uri": uri, "variants": ["ga"], "search.num_samples": 1,
        "search.max_concurrent": 2, "search.objectives": ["relearn_forget_efficacy", "utility"],
        "search.space": {"lr": {"value": 5e-3}}, "scheduler.grace_period": 2,
        "train.steps": 4,
        "train.eval_every": 4, "train.checkpoint_every": 2, "train.batch_size": 8, "train.es_prompts": 4,
        "train.final_es_prompts": 8, "robustness.relearn_steps": 4, "robustness.relearn_eval_every": 2,
        "robustness.relearn_es_prompts": 4, "robustness.relearn_lr": 1e-3,
    })
    rows = run_study(cfg, log=lambda *a: None)
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("robust")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("role") == "study")
    assert parent.data.metrics["oracle_forget_efficacy"] > 0.9
    # Who the oracle is: the build without the study's forget language (how it is chosen: test_oracle_choice.py).
    tags = parent.data.tags
    assert (tags["oracle_forget_language"], tags["oracle_forget_script"]) == ("hi", "DEVANAGARI")
    assert tags["oracle_trained_without"].startswith("the embedded corpus's set hi and ")
    assert {"oracle_relearn_forget_efficacy", "oracle_relearn_share_back", "oracle_es_forget"} <= set(parent.data.metrics)
    for child in (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id):
        # At the scheduler's rung (step 2: the attack's result is an objective) and at the end.
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "relearn_forget_efficacy"))
        assert steps == [2, 4]
        assert "relearn_excess" in child.data.metrics and "relearn_es_forget" in child.data.metrics
    front = json.loads(open(client.download_artifacts(parent.info.run_id, "pareto_front.json", str(tmp_path))).read())
    assert "relearn_half_steps" in front["columns"]
