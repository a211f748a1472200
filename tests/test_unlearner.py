"""The unlearning loop on the embedded model: reproducible, restorable, adapter-only, and it really forgets."""

import pytest
import torch
from conftest import run_steps

from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

# A constant learning rate: these tests are about the loop, not the schedule (tests/test_training_step.py).
SETUP = TrialSetup(train=TrainSettings(steps=20, batch_size=8, eval_every=5, es_prompts=8, lr_schedule="constant"))


@pytest.mark.parametrize("variant", ["ga", "npo"])
def test_same_seed_same_metrics(embedded, variant):
    hp = {"variant": variant, "lr": 1e-3}
    assert run_steps(Unlearner(SETUP, hp), 3) == run_steps(Unlearner(SETUP, hp), 3)


def test_restore_continues_exactly(embedded, tmp_path):
    hp = {"variant": "npo", "lr": 1e-3}
    straight = Unlearner(SETUP, hp)
    first = run_steps(straight, 2)
    straight.save(tmp_path / "state.pt")
    expected = run_steps(straight, 2)
    resumed = Unlearner(SETUP, hp)
    resumed.restore(tmp_path / "state.pt")
    assert resumed.step == 2 and first[-1]["tokens"] == resumed.tokens_seen and resumed.restores == 1
    assert run_steps(resumed, 2) == expected


def test_only_adapter_parameters_train(embedded):
    u = Unlearner(SETUP, {"variant": "ga", "lr": 1e-3})
    frozen = {n: p.detach().clone() for n, p in u.model.named_parameters() if not p.requires_grad}
    adapter = {n: p.detach().clone() for n, p in u.model.named_parameters() if p.requires_grad}
    assert adapter and all("lora_" in n for n in adapter)
    run_steps(u, 2)
    now = dict(u.model.named_parameters())
    assert all(torch.equal(now[n], v) for n, v in frozen.items())
    assert any(not torch.equal(now[n], v) for n, v in adapter.items())


@pytest.mark.slow
def test_gradient_ascent_forgets_the_forget_language(embedded):
    u = Unlearner(SETUP, {"variant": "ga", "lr": 3.5e-3})
    assert u.evaluate_step()["forget_efficacy"] == pytest.approx(0.0, abs=1e-6)  # baseline is the model itself
    before = u.evaluate_full(prompts=16)
    metrics = run_steps(u, 20)[-1]
    after = u.evaluate_full(prompts=16)
    assert metrics["forget_efficacy"] > 0.8
    assert metrics["utility"] > 0.6  # retain updates keep most of English
    assert before["es_forget"] > 0.7 and after["es_forget"] < 0.3
    assert after["xlang_utility"] < before["xlang_utility"]  # collateral damage on the other languages


def test_bengali_can_be_the_forget_language(embedded):
    setup = TrialSetup(train=TrainSettings(steps=5, batch_size=8), embedded_forget="bn")
    u = Unlearner(setup, {"variant": "ga", "lr": 3e-3})
    assert u.forget_language == "bn"
    assert set(u.data.sets) == {"forget", "retain", "xlang_hi", "xlang_ur", "xlang_pa", "utility", "adversarial"}
    assert u.baseline["token_mass"] > 0.5
