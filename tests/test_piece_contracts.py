"""Every registered piece, of every registry, subclasses its registry's abstract base class, implements its abstract
methods, builds from its knobs' defaults with the one call every registry shares (`build(name, hparams, context)`),
and keeps the contract its base class's docstring states (a table over the registries, as peft's and Optuna's tests
run every method through the same cases)."""

import inspect
from dataclasses import replace

import pytest
import torch

import trainables.methods.variants  # noqa: F401 - registers every piece
from trainables.data import load_study_data
from trainables.methods.gates.sae import SAEConfig
from trainables.methods.gates.sae_gates import Gate
from trainables.methods.registry import (
    ADAPTERS,
    GATES,
    OBJECTIVES,
    OPTIMIZERS,
    REGISTRIES,
    RETAIN_OBJECTIVES,
    WEIGHTINGS,
    BuildContext,
    Knob,
    Piece,
    Registry,
)
from trainables.model.loading import load_model, load_tokenizer

PIECES = [(registry, entry.name) for registry in REGISTRIES for entry in registry]
# A bare context builds every piece that needs nothing of the trial (no model, no adapter).
BARE = BuildContext()


@pytest.fixture(scope="module")
def context(embedded, tmp_path_factory):
    """A trial's context as the Unlearner fills it: the embedded model with a LoRA attached, its tokenizer, data and
    path; a small SAE (cached under a temporary folder) so that building a gate costs seconds."""
    path = str(embedded.model_dir)
    base = BuildContext(model=load_model(path), tokenizer=load_tokenizer(path),
                        data=load_study_data(embedded.data_paths()), model_path=path,
                        sae=SAEConfig(d_sae=64, k=4, steps=20), sae_cache_root=tmp_path_factory.mktemp("sae"),
                        gate_fit_lines=64)
    adapter = ADAPTERS.build("lora", {}, base)
    return replace(base, model=adapter.attach(base.model), adapter=adapter)


@pytest.mark.parametrize("registry,name", PIECES, ids=[f"{r.kind}:{n}" for r, n in PIECES])
def test_every_registered_piece_subclasses_its_contract_and_builds(registry, name, context):
    factory = registry.get(name).factory
    assert inspect.isclass(factory) and issubclass(factory, registry.base), f"{name} is not a {registry.base}"
    assert not inspect.isabstract(factory), f"{name} leaves {sorted(factory.__abstractmethods__)} abstract"
    assert isinstance(registry.build(name, {}, context), registry.base)


def test_every_registry_declares_an_abstract_contract_and_has_pieces():
    for registry in REGISTRIES:
        assert registry.base is not None and issubclass(registry.base, Piece), registry.kind
        assert inspect.isabstract(registry.base)
        with pytest.raises(TypeError):
            registry.base()
        assert len(registry.names()) >= 2, registry.kind
    assert GATES.base is Gate


def test_a_registry_refuses_what_is_not_its_contract():
    registry = Registry("test piece")
    with pytest.raises(TypeError, match="none declared"):
        registry.register("early")(type("Early", (Piece,), {}))

    @registry.contract
    class Contract(Piece):
        pass

    with pytest.raises(TypeError, match="not a subclass of Contract"):
        registry.register("stranger")(type("Stranger", (Piece,), {}))

    @registry.register("wrong", knobs=(Knob("size", 2, choices=(2, 3)),))
    class Wrong(Contract):
        @classmethod
        def from_knobs(cls, knobs, context):
            return knobs  # a factory that returns something else than one piece

    with pytest.raises(TypeError, match="not a Contract"):
        registry.build("wrong", {})


def test_pieces_that_need_the_trial_say_so_on_a_bare_context():
    with pytest.raises(ValueError, match="built after the adapter"):
        OPTIMIZERS.build("adamw", {}, BARE)


def build(registry, name):
    """The pieces below need nothing of the trial but an optimiser scheme's adapter (a LoRA on a tiny model)."""
    if registry is OPTIMIZERS:
        adapter = ADAPTERS.build("lora", {}, BARE)
        adapter.attach(tiny_model())
        return registry.build(name, {}, replace(BARE, adapter=adapter))
    return registry.build(name, {}, BARE)


@pytest.mark.parametrize("name", GATES.names())
def test_gates_fit_on_the_base_model_log_their_build_and_unhook(name, context):
    """A gate is fitted with the context's adapter disabled: a trained (here perturbed) adapter changes nothing of
    what it selects or calibrates. Its hooks edit only inside attach_gate."""
    from trainables.methods.gates.sae_gates import attach_gate
    from trainables.model.batching import encode

    path = context.model_path
    adapter = ADAPTERS.build("lora", {}, context)
    adapted = adapter.attach(load_model(path))
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.5 * torch.randn_like(p))
    gate = GATES.build(name, {"n_features": 5}, replace(context, model=adapted, adapter=adapter))
    plain = GATES.build(name, {"n_features": 5}, replace(context, model=load_model(path), adapter=None))
    assert torch.equal(gate.features.indices, plain.features.indices)
    assert gate.info.get("gate_threshold") == plain.info.get("gate_threshold")
    assert gate.info["gate_build_seconds"] > 0
    assert plain.info["gate_sae_cache_hit"] == 1.0  # the SAE is trained once (at the latest by the first build)
    batch = encode(context.tokenizer, context.data.forget.heldout[:4], 24)
    model = load_model(path)
    with torch.no_grad():
        before = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with attach_gate(model, plain) as attached:
            attached.reset()
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            assert attached.seen == 4 and 0.0 <= attached.firing_rate <= 1.0
        after = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(before, after)


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
