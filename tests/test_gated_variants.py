"""SAE gates inside the study's runs: gate-only variants measure their gate on the base model without a step,
`<variant>+<gate>` trains exactly as the variant does and evaluates through the gate, and the gate's hooks are on
the model only while an evaluation runs."""

import pytest
import torch
from conftest import run_steps

from trainables.methods.gates.sae import SAEConfig
from trainables.methods.registry import get_variant
from trainables.metrics.mmie import MmieEvalConfig
from trainables.model.decoder_layers import decoder_body, decoder_layers
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

# A small SAE (trained once into the test cache); features and tau are fitted on the training lines as in a study.
SETUP = TrialSetup(train=TrainSettings(steps=4, batch_size=4, es_prompts=8), languages=(("forget", "hi"), ("retain", "en")),
                   sae=SAEConfig(d_sae=512, k=16, steps=300, lr=3e-3),
                   mmie_eval=MmieEvalConfig(items=2, final_items=2, max_new_tokens=8, teacher_forced_items=8))
HP = {"adapter": "lora", "lr": 3e-3}


def _hooks(model) -> int:
    modules = [decoder_body(model), *decoder_layers(model)]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules)


def test_gate_variants_compose_from_the_registry():
    gated = get_variant("adaptive+dsg")
    assert gated.gate == "dsg" and gated.trains
    assert {"base_alpha", "trigger_percentile", "bound", "lr_forget"} <= {k.name for k in gated.knobs()}
    assert not get_variant("dsg").trains and get_variant("sae_gate").gate == "sae_gate"
    for bad in ("dsg+dsg", "ga+nope", "nope+dsg"):
        with pytest.raises(KeyError):
            get_variant(bad)


@pytest.mark.slow
def test_dsg_alone_fires_on_forget_not_retain_and_lowers_forget_mass(embedded):
    u = Unlearner(SETUP, {**HP, "variant": "dsg", "base_alpha": 8.0, "trigger_percentile": 95.0})
    assert u.steps == 0
    with pytest.raises(RuntimeError):
        u.train_step()
    step = u.evaluate_step()
    assert step["forget_efficacy"] > 0.2  # the gate alone removes forget-language mass ...
    # ... and leaves the retain set's English untouched (calibrated there, it rarely fires on it); on the general
    # English set (other sentence forms), which it was not calibrated on, it fires and costs utility (it cost none
    # before main's real-shape/robustness merge: to look into)
    assert step["retain_utility_raw"] > 0.7 and step["utility"] < 1.0
    full = u.evaluate_full(prompts=8)
    assert full["gate_fire_forget"] > 0.8
    assert full["gate_fire_retain"] < 0.15  # calibrated to fire on ~5% of retain lines
    assert 0 <= full["gate_fire_es_forget"] <= 1 and full["gate_sae_fve"] > 0.5
    assert _hooks(u.model) == 0  # the gate is attached only while an evaluation runs


def test_gated_variant_trains_like_its_base_and_evaluates_through_the_gate(embedded):
    plain = Unlearner(SETUP, {**HP, "variant": "ga"})
    gated = Unlearner(SETUP, {**HP, "variant": "ga+sae_gate", "sae_gate_alpha": 4.0})
    a, b = run_steps(plain, 2), run_steps(gated, 2)
    for x, y in zip(a, b):
        assert x["loss_forget"] == y["loss_forget"] and x["loss_retain"] == y["loss_retain"]  # training: no gate
    for p, q in zip(plain.adapter.parameters(), gated.adapter.parameters()):
        assert torch.equal(p, q)
    assert b[-1]["forget_efficacy"] > a[-1]["forget_efficacy"]  # evaluation: through the gate
    assert gated.baseline == plain.baseline  # both measured against the bare base model
    assert _hooks(gated.model) == 0


@pytest.mark.slow
def test_gated_run_restores_from_a_checkpoint(embedded, tmp_path):
    hp = {**HP, "variant": "npo+dsg"}
    u = Unlearner(SETUP, hp)
    run_steps(u, 1)
    u.save(tmp_path / "state.pt")
    second = run_steps(u, 1)
    restored = Unlearner(SETUP, hp)
    restored.restore(tmp_path / "state.pt")
    assert run_steps(restored, 1) == second
