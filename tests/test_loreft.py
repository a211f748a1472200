"""The LoReFT adapter on a tiny random Qwen2: identity at init, trains only its own parameters, keeps R orthonormal,
disables cleanly, and round-trips its state."""

import io

import pytest
import torch
import transformers

from trainables.methods.loreft import LoReFT
from trainables.methods.registry import ADAPTERS


def tiny_model():
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64,
    )
    model = transformers.Qwen2ForCausalLM(config).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def batch(seed=1):
    return torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(seed))


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def train(adapter, model, steps=5):
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-2)  # default weight decay: R must survive it
    for step in range(steps):
        opt.zero_grad()
        # two forwards before one backward, as a step with a forget and a retain term does
        loss = model(input_ids=batch(step)).logits[..., 0].mean() + model(input_ids=batch(step + 10)).logits[..., 0].mean()
        loss.backward()
        opt.step()


def rotations(adapter):
    return [iv.rotate.weight.detach() for iv in adapter.interventions.values()]


def test_identity_at_init_and_registered():
    bare = logits(tiny_model(), batch())
    adapter = ADAPTERS.build("loreft", {})
    assert (adapter.rank, adapter.layers) == (4, "all")
    model = tiny_model()
    assert adapter.attach(model) is model
    torch.testing.assert_close(logits(model, batch()), bare, atol=1e-5, rtol=0)


def test_training_changes_logits_only_trains_adapter_and_keeps_r_orthonormal():
    model = tiny_model()
    bare = logits(model, batch())
    adapter = LoReFT(rank=4, layers="all")
    adapter.attach(model)
    train(adapter, model)
    assert (logits(model, batch()) - bare).abs().max() > 1e-3
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in adapter.parameters())
    for r in rotations(adapter):
        assert r.shape == (4, 32)
        torch.testing.assert_close(r @ r.T, torch.eye(4), atol=1e-4, rtol=0)


def test_disabled_is_bare_model_and_restores_after_exception():
    model = tiny_model()
    bare = logits(model, batch())
    adapter = LoReFT(rank=2, layers="all")
    adapter.attach(model)
    train(adapter, model)
    trained = logits(model, batch())
    with adapter.disabled():
        torch.testing.assert_close(logits(model, batch()), bare, atol=0, rtol=0)
    torch.testing.assert_close(logits(model, batch()), trained, atol=0, rtol=0)
    with pytest.raises(RuntimeError), adapter.disabled():
        raise RuntimeError("inside")
    torch.testing.assert_close(logits(model, batch()), trained, atol=0, rtol=0)
    adapter.detach()
    adapter.detach()  # idempotent
    torch.testing.assert_close(logits(model, batch()), bare, atol=0, rtol=0)


def test_state_dict_round_trip_through_torch_save():
    model = tiny_model()
    adapter = LoReFT(rank=4, layers="0,1")
    adapter.attach(model)
    train(adapter, model)
    buffer = io.BytesIO()
    torch.save(adapter.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    other_model = tiny_model()
    other = LoReFT(rank=4, layers="0,1")
    other.attach(other_model)
    assert (logits(other_model, batch()) - logits(model, batch())).abs().max() > 1e-3  # fresh: not yet the same
    other.load_state_dict(state)
    torch.testing.assert_close(logits(other_model, batch()), logits(model, batch()), atol=0, rtol=0)

    one_layer = LoReFT(rank=4, layers="1")
    one_layer.attach(tiny_model())
    with pytest.raises(KeyError):
        one_layer.load_state_dict(state)

def layer_outputs(model):
    seen = {}
    for i, layer in enumerate(model.model.layers):  # registered after the adapter's hooks, so they see its edits
        layer.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        model(input_ids=batch())
    return seen


@pytest.mark.parametrize("layers, hooked", [("all", {0, 1}), ("1", {1}), ("-1", {1}), ("0", {0})])
def test_layers_choose_the_hooked_layers(layers, hooked):
    bare = layer_outputs(tiny_model())
    model = tiny_model()
    adapter = LoReFT(rank=1, layers=layers)
    adapter.attach(model)
    assert sorted(map(int, adapter.interventions)) == sorted(hooked) and len(adapter.handles) == len(hooked)
    with torch.no_grad():
        for iv in adapter.interventions.values():
            iv.learned.bias.fill_(1.0)  # move away from the identity so an intervened layer shows
    adapted = layer_outputs(model)
    first = min(hooked)
    for i in range(2):
        changed = not torch.equal(adapted[i], bare[i])
        assert changed == (i >= first), i  # a layer after an intervened one changes through its input


def test_bad_layers_raise():
    with pytest.raises(ValueError):
        LoReFT(rank=1, layers="2").attach(tiny_model())


def test_tuple_layer_outputs_are_handled():
    class TupleLayer(torch.nn.Module):  # older transformers' decoder layers return (hidden_states, ...)
        def forward(self, h):
            return h, "extra"

    model = torch.nn.Module()
    model.config = transformers.PretrainedConfig(hidden_size=8)
    model.model = torch.nn.Module()
    model.model.layers = torch.nn.ModuleList([TupleLayer()])
    model.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # the adapter reads the device off it
    adapter = LoReFT(rank=2, layers="all")
    adapter.attach(model)
    with torch.no_grad():
        adapter.interventions["0"].learned.bias.fill_(1.0)
    h = torch.randn(3, 8)
    out, extra = model.model.layers[0](h)
    assert extra == "extra" and not torch.equal(out, h)
    r = adapter.interventions["0"].rotate.weight.detach()
    torch.testing.assert_close(out, h + torch.ones(2) @ r)  # Φ(h) = h + Rᵀ(Wh + b − Rh) with W = R, b = 1
