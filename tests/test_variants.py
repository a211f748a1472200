"""Every registered variant, on every adapter it can use, through the same behavioural checks (one table), then
method-level checks that would fail if a method were implemented wrongly."""

import pytest
import torch
from conftest import run_steps

import trainables.methods.variants  # noqa: F401
from trainables.methods.objectives import TanhBounded
from trainables.methods.optimizers import DualOptim
from trainables.methods.registry import ADAPTERS, VARIANTS
from trainables.methods.weighting import Curriculum, LoReUnDynamic, LoReUnStatic, Product
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

SETUP = TrialSetup(train=TrainSettings(steps=6, batch_size=4), languages=(("forget", "hi"), ("retain", "en")))
STUDY_ADAPTERS = [a for a in ("lora", "loreft") if a in ADAPTERS]
CASES = [  # every variant that trains (gate-only ones have no step: tests/test_gated_variants.py)
    (v, a)
    for v in sorted(VARIANTS)
    if VARIANTS[v].trains
    for a in ([VARIANTS[v].adapter] if VARIANTS[v].adapter else STUDY_ADAPTERS)
]


@pytest.mark.slow
@pytest.mark.parametrize("variant, adapter", CASES)
def test_variant_behaviour(embedded, tmp_path, variant, adapter):
    hp = {"variant": variant, "adapter": adapter, "lr": 3e-3, "lr_forget": 3e-3, "lr_retain": 1e-3}
    u = Unlearner(SETUP, hp)
    frozen = {n: p.detach().clone() for n, p in u.model.named_parameters() if not p.requires_grad}
    trained = {id(p) for p in u.adapter.parameters()}
    before = [p.detach().clone() for p in u.adapter.parameters()]

    first = run_steps(u, 1)
    u.save(tmp_path / "state.pt")
    second = run_steps(u, 1)
    for m in first + second:
        assert all(torch.isfinite(torch.tensor(v)) for k, v in m.items() if k.startswith("loss_")), m
        assert m["diverged"] == 0.0
    # Only the adapter trains: frozen weights are bit-identical, adapter weights moved.
    now = dict(u.model.named_parameters())
    assert all(torch.equal(now[n], v) for n, v in frozen.items())
    assert all(id(p) in trained for p in u.model.parameters() if p.requires_grad)
    assert any(not torch.equal(p, b) for p, b in zip(u.adapter.parameters(), before))

    again = Unlearner(SETUP, hp)
    assert run_steps(again, 2) == first + second  # the same seed reproduces the same metrics
    restored = Unlearner(SETUP, hp)
    restored.restore(tmp_path / "state.pt")
    assert run_steps(restored, 1) == second  # a checkpoint restores exactly


def test_loreun_weights_favour_low_loss_and_average_one():
    nll = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w = LoReUnDynamic(temperature=1.0).weights(nll, torch.arange(4), 0, 10)
    assert torch.all(w[:-1] > w[1:]) and w.mean().item() == pytest.approx(1.0)
    sharper = LoReUnDynamic(temperature=0.2).weights(nll, torch.arange(4), 0, 10)
    assert sharper[0] > w[0]  # a lower temperature concentrates more weight on the lowest loss
    # the paper's tau is fixed: the weights see the losses' scale (a batch-median rescaling made them blind to it)
    doubled = LoReUnDynamic(temperature=1.0).weights(2 * nll, torch.arange(4), 0, 10)
    assert doubled[0] > w[0] and not torch.allclose(doubled, w)

    static = LoReUnStatic(temperature=1.0)
    static.prepare(lambda: torch.tensor([5.0, 1.0, 3.0]))  # frozen-model losses of three training lines
    ws = static.weights(torch.zeros(2), torch.tensor([0, 1]), 0, 10)  # current losses are ignored
    assert ws[1] > ws[0] and ws.mean().item() == pytest.approx(1.0)


def test_curriculum_moves_from_low_to_high_loss():
    nll = torch.tensor([1.0, 3.0])
    early, middle, late = (Curriculum().weights(nll, None, s, 9) for s in (0, 4, 8))
    assert early[0] > early[1] and torch.equal(middle, torch.ones(2)) and late[1] > late[0]
    both = Product([LoReUnDynamic(1.0), Curriculum()]).weights(nll, None, 8, 9)
    assert both.mean().item() == pytest.approx(1.0)


def test_dual_optim_keeps_separate_states():
    p = torch.nn.Parameter(torch.ones(3))
    dual = DualOptim(lr_forget=0.1, lr_retain=0.01, retain_freq=1, params=[p])
    p.grad = torch.ones(3)
    dual.optimizer("forget").step()
    assert dual.optimizer("retain").state_dict()["state"] == {}
    forget_state = {k: v.clone() for k, v in dual.forget.state[p].items()}
    p.grad = -torch.ones(3)
    dual.optimizer("retain").step()
    dual.optimizer("retain").step()
    assert all(torch.equal(dual.forget.state[p][k], v) for k, v in forget_state.items())
    assert dual.forget.state[p]["step"].item() == 1 and dual.retain.state[p]["step"].item() == 2
    # DualOptim's official code: AdamW with weight decay 0.01, on both optimisers
    assert {g["weight_decay"] for opt in dual.optimizers() for g in opt.param_groups} == {0.01}
    assert all(isinstance(opt, torch.optim.AdamW) for opt in dual.optimizers())
    # Budgets count forget updates: every step is one forget update and its retain_freq retain updates.
    assert DualOptim(1e-3, 1e-3, 5, [p]).phases(0) == ["forget"] + ["retain"] * 5
    assert DualOptim(1e-3, 1e-3, 5, [p]).phases(3) == ["forget"] + ["retain"] * 5


def test_bounded_loss_and_its_gradient_are_bounded():
    bound = 2.0
    nll = torch.tensor([0.1, 1.0, 5.0, 50.0], requires_grad=True)
    loss = TanhBounded(bound).per_sample(nll, torch.ones(4), None)
    assert torch.all(loss.abs() <= bound)  # tanh saturates to exactly 1 in float32 at NLL = 50
    loss.sum().backward()
    assert torch.all(nll.grad.abs() <= 1.0) and nll.grad[-1].abs() < 1e-6  # saturates past the bound


def test_sine_adapter_delta_stays_within_one_over_gain(embedded):
    hp = {"variant": "sine_bounded", "lr": 5e-2, "gain": 20.0, "omega": 50.0}
    u = Unlearner(SETUP, hp)
    run_steps(u, 5)
    deltas = [layer.delta_weight() for layer in u.adapter.layers.values()]
    assert max(d.abs().max().item() for d in deltas) <= 1 / 20.0 + 1e-7
    assert max(d.abs().max().item() for d in deltas) > 1e-4  # and it did train


def test_same_named_searched_knobs_are_one_parameter():
    # Optuna knows a parameter by its name: two pieces' searched knobs of one name must mean the same thing (the
    # static gate's attenuation and DSG's clamp strength were both base_alpha, so TPE learnt one from the other).
    from trainables.methods.registry import ADAPTERS, GATES, OBJECTIVES, OPTIMIZERS, RETAIN_OBJECTIVES, WEIGHTINGS

    definitions: dict[str, set] = {}
    for registry in (OBJECTIVES, RETAIN_OBJECTIVES, WEIGHTINGS, OPTIMIZERS, ADAPTERS, GATES):
        for entry in registry:
            for knob in entry.knobs:
                if knob.searched:
                    definitions.setdefault(knob.name, set()).add(knob)
    assert {name: d for name, d in definitions.items() if len(d) > 1} == {}
