"""Real architectures' shapes: layer knobs derived from the model's depth, the random-weight shape models
(`model: shape:NAME`), and the CUDA autocast wrapper's CPU path. The whole study at the real shape is the slow
test at the end (and bench/bench_real_shape.py)."""

import json

import optuna
import pytest
import torch
import yaml

from study.config import ConfigError, load_config
from study.prepare import check_model_knobs, model_shape, prepare_study
from study.space import define_by_run
from trainables.methods.registry import ADAPTERS
from trainables.model.decoder_layers import LayerChoices, ModelSize
from trainables.model.loading import autocast_forward, load_model, load_tokenizer
from trainables.model.shapes import SHAPES, ArchitectureShape, ensure_shape


def write(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def asked_choices(space, variant):
    """The choices a real Optuna trial is offered per categorical knob, for a given variant."""
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=optuna.samplers.PartialFixedSampler({"variant": variant},
                                                                            optuna.samplers.RandomSampler(0)))
    trial = study.ask()
    constants = space(trial)
    return {n: d.choices for n, d in trial.distributions.items() if hasattr(d, "choices")}, constants


@pytest.mark.parametrize("model, layers", [("embedded", 2), ("shape:qwen2.5-0.5b", 24), ("shape:qwen2.5-1.5b", 28)])
def test_layer_knobs_span_every_layer_of_the_model(tmp_path, model, layers):
    cfg = load_config(write(tmp_path, yaml.safe_dump({
        "model": model, "variants": ["ga+dsg", "ga+sae_gate"], "adapters": ["loreft"],
        "search": {"space": {"layers": {"searched": True}, "sae_layer": {"searched": True}}}})))
    assert model_shape(cfg).num_layers == layers
    space = define_by_run(cfg)
    every = {str(i) for i in range(layers)}
    for variant in ("ga+dsg", "ga+sae_gate"):
        choices, _ = asked_choices(space, variant)
        assert set(choices["sae_layer"]) == every
        assert choices["layers"][0] == "all" and set(choices["layers"][1:]) == every


def test_layer_knobs_stay_fixed_unless_configured_and_describe_the_model():
    cfg = load_config(overrides={"model": "shape:qwen2.5-0.5b", "variants": ["ga+dsg"], "adapters": ["loreft"]})
    choices, constants = asked_choices(define_by_run(cfg), "ga+dsg")
    assert "layers" not in choices and "sae_layer" not in choices
    assert constants["layers"] == "all" and constants["sae_layer"] == "0"
    layers = next(k for k in ADAPTERS.get("loreft").knobs if k.name == "layers")
    assert "decoder layer indices" in layers.describe()
    assert layers.for_model(ModelSize(3, 8)).choices == ("all", "0", "1", "2")


@pytest.mark.parametrize("space, message", [
    ({"sae_layer": {"value": "24"}}, "search.space.sae_layer: layer 24 is outside the model's 24 decoder layers"),
    ({"layers": {"choices": ["all", "0,23", "-24", "0,24"]}}, "search.space.layers: layer 24 is outside"),
    ({"layers": {"choices": ["first"]}}, "search.space.layers: 'first' is not"),
    ({"sae_layer": {"low": 0, "high": 3}}, "search.space.sae_layer: give choices or a value"),
    ({"sae_layer": {"value": "0,1"}}, "search.space.sae_layer: '0,1' is not"),
])
def test_configured_layers_must_exist_on_the_model(space, message):
    cfg = load_config(overrides={"model": "shape:qwen2.5-0.5b", "variants": ["ga+dsg"], "adapters": ["loreft"],
                                 "search.space": space})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        check_model_knobs(cfg, model_shape(cfg), cfg.model)


def test_bad_layer_fails_in_prepare_before_anything_is_built(tmp_path, monkeypatch):
    # Where study.prepare's lazy import finds it.
    monkeypatch.setattr("trainables.embedded.ensure_embedded", lambda *a, **k: pytest.fail("built something"))
    cfg = load_config(overrides={"model": "shape:qwen2.5-1.5b", "variants": ["dsg"],
                                 "search.space": {"sae_layer": {"value": 28}}})
    with pytest.raises(ConfigError, match="layer 28 is outside the model's 28 decoder layers"):
        prepare_study(cfg, log=lambda *a: None)


def test_config_names_unknown_shapes_and_misplaced_shape_settings(tmp_path):
    with pytest.raises(ConfigError, match=r"line 1: model: unknown model shape 'qwen9'; known: qwen2.5-0.5b"):
        load_config(write(tmp_path, "model: shape:qwen9\n"))
    with pytest.raises(ConfigError, match="shape.tokenizer: only for model: shape:NAME"):
        load_config(write(tmp_path, f"shape:\n  tokenizer: {tmp_path}\n"))
    with pytest.raises(ConfigError, match="shape.tokenizer: .*no such tokenizer"):
        load_config(write(tmp_path, "model: shape:qwen2.5-0.5b\nshape:\n  tokenizer: /nowhere/tok\n"))
    with pytest.raises(ConfigError, match="resources.gpus_per_trial: .*a fraction below 1 or a whole number"):
        load_config(write(tmp_path, "resources:\n  gpus_per_trial: 1.5\n"))
    assert load_config(write(tmp_path, "resources:\n  gpus_per_trial: 0.25\n")).resources.gpus_per_trial == 0.25


def test_model_shape_of_a_local_folder_reads_its_config(embedded, tmp_path):
    cfg = load_config(overrides={"model": str(embedded.model_dir)})
    assert model_shape(cfg) == ModelSize(num_layers=2, hidden_size=128)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(ConfigError, match="cannot read its config"):
        model_shape(load_config(overrides={"model": str(tmp_path)}))


def test_layer_choices_check_accepts_what_loreft_accepts():
    shape = ModelSize(4, 8)
    several = LayerChoices(with_all=True, several=True)
    for ok in ("all", "0", "3", "-1", "0,2,3", 2):
        several.check(ok, shape)
    for bad in ("4", "-5", "0,4", "x", ""):
        with pytest.raises(ValueError):
            several.check(bad, shape)
    with pytest.raises(ValueError):
        LayerChoices().check("all", shape)


@pytest.fixture
def tiny_shape(monkeypatch):
    """A registered shape small enough to build in a test (the real ones are built by the slow test and bench)."""
    monkeypatch.setitem(SHAPES, "tiny-test", ArchitectureShape(
        hidden_size=64, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=96, tie_word_embeddings=True,
        rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=512, hub_vocab_size=151936))
    return "shape:tiny-test"


def test_shape_model_is_built_once_deterministically_with_the_tokenizers_vocabulary(embedded, tmp_path, tiny_shape):
    logs = []
    folder = ensure_shape(tiny_shape, str(embedded.model_dir), seed=3, cache=tmp_path / "a", log=logs.append)
    again = ensure_shape(tiny_shape, str(embedded.model_dir), seed=3, cache=tmp_path / "a", log=logs.append)
    other = ensure_shape(tiny_shape, str(embedded.model_dir), seed=3, cache=tmp_path / "b", log=logs.append)
    assert folder == again and len(logs) == 2  # the second call was a cache hit
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (3, 64, 2)
    tok = load_tokenizer(str(folder))
    assert config["vocab_size"] == len(tok) == len(load_tokenizer(str(embedded.model_dir)))
    a, b = load_model(str(folder)), load_model(str(other))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # The end-of-text token (also the pad token) starts every line: its embedding row must not be the zero row
    # a padding_idx leaves (NaN gradients at 24 layers).
    assert a.get_input_embeddings().weight[tok.eos_token_id].abs().sum() > 0


def test_autocast_forward_keeps_logits_float32_and_trains_lora():
    """The CUDA path's wrapper, run with CPU autocast: the same code, bf16 matmuls, float32 logits, gradients."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=64)).eval()
    ids = torch.randint(0, 64, (2, 8))
    with torch.no_grad():
        full = model(input_ids=ids).logits
    autocast_forward(model, "cpu", torch.bfloat16)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    logits = peft(input_ids=ids).logits
    assert logits.dtype == torch.float32
    assert 0 < (logits - full).abs().max() < 0.05  # computed in bf16, not float32
    logits.mean().backward()
    grads = [p.grad for p in peft.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.dtype == torch.float32 for g in grads)
    out = peft.generate(input_ids=ids[:, :4], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (2, 7)
