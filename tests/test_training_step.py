"""mmie.py's training step as registered pieces: the KL retain step, the LR schedule, its samplers, its bounded
loss, its ReFT adapter, and budgets counted in forget updates. Real model (the embedded one), real peft."""

import math

import pytest
import torch
from conftest import run_steps

from trainables.methods.lr_schedule import lr_multiplier
from trainables.methods.objectives import GradientAscent, MmieTanhBounded
from trainables.methods.optimizers import DualOptim, SingleAdamW
from trainables.methods.retain_objectives import kl_to_base
from trainables.methods.weighting import ForgetReweight
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

SETUP = TrialSetup(train=TrainSettings(steps=12, batch_size=8, max_len=64),
                   languages=(("forget", "hi"), ("retain", "en")))


def _retain_kl(u: Unlearner) -> float:
    """Token KL(P_base || P_model) per real token on the held-out retain lines."""
    retain = u.eval_slices.get("retain", u.eval_slices["utility"])
    batch = {k: v[retain] for k, v in u.eval_batch.items()}
    with torch.no_grad():
        logits = u._forward(batch)
        base = u._base_logits(batch)
    real = batch["attention_mask"]
    return float(kl_to_base(logits, base, real) * real.shape[0] / real.sum())


def test_kl_retain_step_stays_closer_to_the_base_than_nll(embedded):
    kl = Unlearner(SETUP, {"variant": "ga", "lr": 2e-3, "retain_objective": "kl"})
    nll = Unlearner(SETUP, {"variant": "ga", "lr": 2e-3, "retain_objective": "nll"})
    run_steps(kl, 12)
    run_steps(nll, 12)
    assert _retain_kl(kl) < _retain_kl(nll)
    # Gradient difference fine-tunes on the retain distribution: its retain perplexity drops below the base's.
    assert nll.evaluate_step()["retain_ppl"] < kl.evaluate_step()["retain_ppl"]


def test_kl_ignores_padding():
    logits, base = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    real = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    changed = logits.clone()
    changed[0, 3:] = 100.0  # what the model predicts at padded positions must not matter
    assert torch.allclose(kl_to_base(logits, base, real), kl_to_base(changed, base, real))
    assert kl_to_base(base, base, real).abs() < 1e-6


def test_warmup_cosine_starts_moving_and_ends_at_zero():
    total = 100
    factors = [lr_multiplier("warmup_cosine", u, total, 0.1) for u in range(total)]
    assert factors[0] == 0.0  # mmie.py's first update runs at lr 0 (L1418), and so does ours
    assert factors[9] == pytest.approx(0.9) and factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[-1] < 0.01
    assert lr_multiplier("constant", 50, total, 0.1) == 1.0


def test_the_schedule_sets_each_update_learning_rate(embedded):
    u = Unlearner(TrialSetup(train=TrainSettings(steps=10, batch_size=4, max_len=32)), {"variant": "ga", "lr": 1e-3})
    seen = []
    for _ in range(10):
        u.train_step()
        seen.append(u.optim.opt.param_groups[0]["lr"])
    # 2 updates a step, 20 in all, warm-up over 2: step 0's updates run at lr 0 and lr / 2.
    assert seen[0] == pytest.approx(0.5e-3)
    assert seen[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 17 / 18)))


def test_budgets_count_forget_updates():
    p = [torch.nn.Parameter(torch.ones(2))]
    for scheme in (SingleAdamW(1e-3, p), DualOptim(1e-3, 1e-3, 5, p), DualOptim(1e-3, 1e-3, 2, p)):
        assert sum(phases.count("forget") for phases in map(scheme.phases, range(30))) == 30


def test_forget_reweight_draws_higher_loss_lines_and_never_the_lowest():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    rng = torch.Generator().manual_seed(0)
    drawn = ForgetReweight().draw(4, 4000, rng, 0, 10, lambda idx: losses[idx])
    counts = torch.bincount(torch.tensor(drawn), minlength=4)
    assert counts[0] == 0 and counts[1] < counts[2] < counts[3]


def test_mmie_bounded_bounds_the_batch_mean_not_each_sample():
    nll_sum, n = torch.tensor([2.0, 40.0]), torch.tensor([2, 2])
    loss = MmieTanhBounded(10.0).loss(nll_sum, n, None, torch.ones(2))
    assert loss.item() == pytest.approx(-10 * math.tanh(42 / 4 / 10))
    # Uniform-weight GA is the batch's mean NLL per token, mmie.py's (Hugging Face's) loss.
    ga = GradientAscent().loss(torch.tensor([2.0, 9.0]), torch.tensor([1, 3]), None, torch.ones(2))
    assert ga.item() == pytest.approx(-11 / 4)


def test_mmie_samplers_train_deterministically(embedded):
    a = Unlearner(SETUP, {"variant": "forget_reweight", "lr": 1e-3})
    b = Unlearner(SETUP, {"variant": "forget_reweight", "lr": 1e-3})
    assert run_steps(a, 3) == run_steps(b, 3)


def test_reft_adapter_starts_near_identity_and_its_gate_adds_a_penalty(embedded):
    hp = {"variant": "ga", "adapter": "reft", "lr": 1e-3, "layers": "0,1", "reft_gated": "on", "reft_gate_l1": 0.5}
    u = Unlearner(SETUP, hp)
    assert u.evaluate_step()["forget_efficacy"] == pytest.approx(0.0, abs=1e-3)
    assert u.adapter.penalty().item() == 0.0  # |g_raw| = 0 at the start
    run_steps(u, 4)
    assert u.adapter.penalty().item() > 0.0 and len(u.adapter.interventions) == 2
    plain = Unlearner(SETUP, {"variant": "ga", "adapter": "reft", "lr": 1e-3})
    assert plain.adapter.penalty() is None
