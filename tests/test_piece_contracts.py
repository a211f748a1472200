"""Every registered training piece subclasses its registry's abstract base class, implements its abstract methods,
builds from its knobs' defaults, and keeps the contract its base class's docstring states (a table over the
registries, as peft's and Optuna's tests run every method through the same cases)."""

import inspect

import pytest
import torch

import trainables.variants  # noqa: F401 - registers every piece
from trainables.adapters import Adapter
from trainables.objectives import ForgetObjective
from trainables.optimizers import OptimizerScheme
from trainables.registry import ADAPTERS, OBJECTIVES, OPTIMIZERS, RETAIN_OBJECTIVES, WEIGHTINGS
from trainables.retain_objectives import RetainObjective
from trainables.weighting import SampleWeighting

CONTRACTS = [(OBJECTIVES, ForgetObjective), (RETAIN_OBJECTIVES, RetainObjective), (WEIGHTINGS, SampleWeighting),
             (OPTIMIZERS, OptimizerScheme), (ADAPTERS, Adapter)]
PIECES = [(registry, base, entry.name) for registry, base in CONTRACTS for entry in registry]


def build(registry, name):
    extra = {"params": [torch.nn.Parameter(torch.zeros(3))]} if registry is OPTIMIZERS else {}
    return registry.build(name, {}, **extra)


@pytest.mark.parametrize("registry,base,name", PIECES, ids=[f"{r.kind}:{n}" for r, _, n in PIECES])
def test_every_registered_piece_subclasses_its_contract_and_builds(registry, base, name):
    factory = registry.get(name).factory
    assert inspect.isclass(factory) and issubclass(factory, base), f"{name} is not a {base.__name__}"
    assert not inspect.isabstract(factory), f"{name} leaves {sorted(factory.__abstractmethods__)} abstract"
    assert isinstance(build(registry, name), base)


def test_the_base_classes_are_abstract():
    for _, base in CONTRACTS:
        assert inspect.isabstract(base)
        with pytest.raises(TypeError):
            base()


def test_every_registry_has_pieces():
    assert all(len(registry.names()) >= 2 for registry, _ in CONTRACTS)


NLL_SUM, N_TOKENS = torch.tensor([6.0, 9.0, 4.0, 12.0]), torch.tensor([3, 4, 2, 5])


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_forget_objectives_give_one_finite_scalar(name):
    objective = build(OBJECTIVES, name)
    ref = NLL_SUM + 1.0 if objective.uses_reference else None
    loss = objective.loss(NLL_SUM.clone().requires_grad_(), N_TOKENS, ref, torch.ones(4))
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad


@pytest.mark.parametrize("name", RETAIN_OBJECTIVES.names())
def test_retain_objectives_run_the_frozen_model_only_when_they_say_so(name):
    objective = build(RETAIN_OBJECTIVES, name)
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    labels = torch.randint(0, 11, (2, 5))
    labels[1, 3:] = -100  # padding
    calls = []

    def base_logits():
        calls.append(1)
        return torch.randn(2, 5, 11)

    loss = objective.loss(logits, labels, base_logits)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    assert bool(calls) == objective.uses_reference


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_weightings_give_one_weight_per_line_with_mean_one(name):
    weighting = build(WEIGHTINGS, name)
    weighting.prepare(lambda: torch.linspace(1.0, 3.0, 10))
    indices = torch.tensor([0, 3, 5, 9])
    for step in (0, 5, 9):  # every phase of a curriculum
        drawn = weighting.draw(300, 4, torch.Generator().manual_seed(step), step, 10,
                               lambda lines: torch.linspace(0.5, 2.0, len(lines)))
        assert drawn is None or (len(drawn) == 4 and all(0 <= i < 300 for i in drawn))
        w = weighting.weights(torch.tensor([1.0, 2.0, 0.5, 3.0]), indices, step, 10)
        assert w.shape == (4,) and torch.all(w >= 0)
        assert w.mean().item() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_schemes_make_one_forget_update_first_and_restore_their_state(name):
    scheme = build(OPTIMIZERS, name)
    phases = scheme.phases(0)
    assert phases[0] == "forget" and set(phases[1:]) == {"retain"}
    assert all(len(scheme.phases(step)) == len(phases) for step in range(1, 4))
    opts = scheme.optimizers()
    assert all(any(scheme.optimizer(p) is o for o in opts) for p in phases)
    param = opts[0].param_groups[0]["params"][0]
    for phase in phases:
        scheme.optimizer(phase).zero_grad()
        param.grad = torch.ones_like(param)
        scheme.optimizer(phase).step()
    state = scheme.state_dict()
    again = build(OPTIMIZERS, name)
    again.load_state_dict(state)
    def moments(s):
        return [{k: v["exp_avg"] for k, v in o.state_dict()["state"].items()} for o in s.optimizers()]

    for restored, original in zip(moments(again), moments(scheme), strict=True):
        assert original and restored.keys() == original.keys()
        assert all(torch.equal(restored[k], original[k]) for k in original)


def tiny_model():
    import transformers

    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=64)
    model = transformers.Qwen2ForCausalLM(config).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("name", ADAPTERS.names())
def test_adapters_train_their_own_parameters_disable_to_the_base_and_round_trip(name):
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    base_model = tiny_model()
    with torch.no_grad():
        base = base_model(input_ids=ids).logits
    adapter = build(ADAPTERS, name)
    model = adapter.attach(base_model)
    params = adapter.parameters()
    assert params and all(p.requires_grad for p in params)
    with torch.no_grad():
        for p in params:  # move away from the (often identity) initialisation
            p.add_(0.3 * torch.randn_like(p))
        adapted = model(input_ids=ids).logits
        with adapter.disabled():
            assert torch.allclose(model(input_ids=ids).logits, base, atol=1e-5)
    assert not torch.allclose(adapted, base, atol=1e-4)
    penalty = adapter.penalty()
    assert penalty is None or (penalty.dim() == 0 and torch.isfinite(penalty))

    again = build(ADAPTERS, name)
    restored = again.attach(tiny_model())
    again.load_state_dict(adapter.state_dict())
    with torch.no_grad():
        assert torch.allclose(restored(input_ids=ids).logits, adapted, atol=1e-5)
