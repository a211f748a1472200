"""SAEs and SAE gates on the embedded model: the SAE reconstructs held-out activations and is trained once per
cache, DSG's features separate forget from retain, a gate that changes nothing leaves the logits bitwise intact,
hooks never outlive their context, and DSG fires where it should and lowers the forget language's token mass."""

import json
import threading

import pytest
import torch
from safetensors.torch import save_file

from trainables.data import load_study_data, prompt_prefix
from trainables.language.scripts import dominant_script
from trainables.language.vocabulary import forget_token_mask
from trainables.methods.gates.sae import (
    SAEConfig,
    activation_rates,
    collect_activations,
    evaluate_sae,
    load_or_train_sae,
    load_saelens,
    per_sequence,
    real_positions,
    sae_cache_key,
    sae_texts,
    select_features,
)
from trainables.methods.gates.sae_gates import (
    DSG_GATE_KNOBS,
    STATIC_GATE_KNOBS,
    DynamicGate,
    StaticGate,
    attach_gate,
    build_gate,
    calibrate_threshold,
)
from trainables.metrics.core import forget_token_mass, sample_continuations
from trainables.model.batching import encode
from trainables.model.decoder_layers import decoder_layers, hidden_of
from trainables.model.loading import load_model, load_tokenizer

LAYER = 0
CONFIG = SAEConfig(d_sae=512, k=16, steps=300, lr=3e-3)
FIT = 512  # training lines per set for feature selection, then the next FIT retain lines for calibration


@pytest.fixture(scope="module")
def env(embedded, tmp_path_factory):
    path = str(embedded.model_dir)
    tok, model = load_tokenizer(path), load_model(path)
    data = load_study_data(embedded.data_paths())
    root = tmp_path_factory.mktemp("sae")
    sae, report, hit = load_or_train_sae(path, tok, data, LAYER, CONFIG, root, model=model)

    def acts(lines):
        return collect_activations(model, tok, lines, LAYER, CONFIG.max_len)

    forget, _ = acts(data.forget.train[:FIT])
    retain, _ = acts(data.retain.train[:FIT])
    calib, lengths = acts(data.retain.train[FIT : 2 * FIT])
    return {
        "path": path, "tok": tok, "model": model, "data": data, "root": root, "sae": sae, "report": report,
        "hit": hit, "features": select_features(sae, forget, retain, 90, 20), "calib": per_sequence(calib, lengths),
    }


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits


def eval_batch(env, n=8):
    data = env["data"]
    return encode(env["tok"], data.forget.heldout[:n] + data.retain.heldout[:n], 32)


def dsg(env, percentile=90, base_alpha=4.0):
    threshold = calibrate_threshold(env["sae"], env["features"], env["calib"], percentile)
    return DynamicGate(env["sae"], LAYER, env["features"], base_alpha, threshold, env["tok"].all_special_ids)


def test_sae_reconstructs_held_out_activations(env):
    sae, report = env["sae"], env["report"]
    assert not env["hit"]
    assert report["fve"] > 0.7 and 0.5 * CONFIG.k < report["l0"] < 2 * CONFIG.k and report["dead_share"] < 0.5
    # also on the study's held-out lines, which neither the SAE nor the feature selection ever saw
    data = env["data"]
    held, _ = collect_activations(env["model"], env["tok"], data.forget.heldout + data.retain.heldout, LAYER)
    assert evaluate_sae(sae, held)["fve"] > 0.7
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(sae.d_sae))


def test_second_call_is_a_cache_hit_with_identical_weights(env):
    sae, report, hit = load_or_train_sae(env["path"], env["tok"], env["data"], LAYER, CONFIG, env["root"])
    assert hit and report["fve"] == env["report"]["fve"]
    for name, tensor in env["sae"].state_dict().items():
        assert torch.equal(sae.state_dict()[name], tensor), name


def test_concurrent_callers_train_once(env, tmp_path):
    """Two trials on one node ask for an SAE nobody has trained: the file lock makes one train, the other load."""
    tiny = SAEConfig(d_sae=256, k=8, steps=20)
    results = []

    def call():
        results.append(load_or_train_sae(env["path"], env["tok"], env["data"], LAYER, tiny, tmp_path,
                                         model=env["model"]))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(hit for _, _, hit in results) == [False, True]
    assert torch.equal(results[0][0].W_enc, results[1][0].W_enc)
    texts = sae_texts(env["data"])
    keys = {sae_cache_key(env["path"], LAYER, tiny, texts), sae_cache_key(env["path"], 1, tiny, texts),
            sae_cache_key(env["path"], LAYER, CONFIG, texts), sae_cache_key(env["path"], LAYER, tiny, texts[1:])}
    assert len(keys) == 4


def write_saelens(folder, weights, **cfg):
    save_file(weights, folder / "sae_weights.safetensors")
    (folder / "cfg.json").write_text(json.dumps({"d_in": 128, "apply_b_dec_to_input": True,
                                                 "normalize_activations": "none", **cfg}))


def test_saelens_folder_round_trips(env, tmp_path):
    sae, h = env["sae"], torch.randn(64, 128)
    write_saelens(tmp_path, dict(sae.state_dict()), architecture="jumprelu", d_sae=sae.d_sae)
    loaded = load_saelens(tmp_path)
    assert torch.equal(loaded.encode(h), sae.encode(h)) and torch.equal(loaded(h), sae(h))

    # a per-token TopK SAE (older configs name it through activation_fn_kwargs)
    torch.manual_seed(0)
    weights = {"W_enc": torch.randn(128, 256), "b_enc": torch.randn(256), "W_dec": torch.randn(256, 128),
               "b_dec": torch.randn(128)}
    write_saelens(tmp_path, weights, architecture="standard", activation_fn_str="topk",
                  activation_fn_kwargs={"k": 8}, d_sae=256)
    pre = (h - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"]
    z = load_saelens(tmp_path).encode(h)
    assert bool(((z > 0).sum(-1) <= 8).all())
    torch.testing.assert_close(z.topk(8).values, pre.topk(8).values.relu())

    # a JumpReLU SAE that does not subtract b_dec before encoding (Gemma Scope's layout)
    weights["threshold"] = torch.rand(256)
    write_saelens(tmp_path, weights, architecture="jumprelu", d_sae=256, apply_b_dec_to_input=False)
    pre = h @ weights["W_enc"] + weights["b_enc"]
    expected = pre * (pre > weights["threshold"])
    torch.testing.assert_close(load_saelens(tmp_path).encode(h), expected, atol=1e-4, rtol=1e-5)
    cols = torch.tensor([3, 100, 7])
    torch.testing.assert_close(load_saelens(tmp_path).encode_features(h, cols), expected[:, cols], atol=1e-4, rtol=1e-5)

    write_saelens(tmp_path, weights, architecture="jumprelu", d_sae=256, normalize_activations="layer_norm")
    with pytest.raises(ValueError, match="normalize_activations"):
        load_saelens(tmp_path)


def test_selected_features_fire_more_on_held_out_forget_than_retain(env):
    sae, features, data = env["sae"], env["features"], env["data"]
    assert len(features) == 20 and bool((features.typical > 0).all())
    forget, _ = collect_activations(env["model"], env["tok"], data.forget.heldout, LAYER)
    retain, _ = collect_activations(env["model"], env["tok"], data.retain.heldout, LAYER)
    assert activation_rates(sae, features, forget) > activation_rates(sae, features, retain) + 0.3


def test_gates_that_change_nothing_leave_logits_identical(env):
    model, batch = env["model"], eval_batch(env)
    bare = logits(model, batch)
    assert torch.equal(logits(model, batch), bare)
    with attach_gate(model, DynamicGate(env["sae"], LAYER, env["features"], 4.0, threshold=1.0)) as gate:
        assert torch.equal(logits(model, batch), bare)
    assert gate.seen == len(bare) and gate.firing_rate == 0.0
    with attach_gate(model, StaticGate(env["sae"], LAYER, env["features"], alpha=0.0)) as gate:
        torch.testing.assert_close(logits(model, batch), bare, atol=1e-5, rtol=0)
    assert gate.firing_rate == 1.0
    # a firing DSG leaves every sequence it does not fire on exactly as it was
    with attach_gate(model, dsg(env)) as gate:
        gated = logits(model, batch)
    fired = gate.last_gated
    assert fired[:8].all() and torch.equal(gated[~fired], bare[~fired]) and not torch.equal(gated, bare)


def test_gate_through_peft_wrapper(env):
    from peft import LoraConfig, get_peft_model

    batch = eval_batch(env, 4)
    wrapped = get_peft_model(load_model(env["path"]), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    bare = logits(wrapped, batch)
    with attach_gate(wrapped, dsg(env)) as gate:
        assert not torch.equal(logits(wrapped, batch), bare)
    assert gate.last_gated[:4].all()


def test_hooks_are_removed_when_the_body_raises(env):
    model, batch = env["model"], eval_batch(env)
    bare = logits(model, batch)
    with pytest.raises(RuntimeError, match="boom"):
        with attach_gate(model, StaticGate(env["sae"], LAYER, env["features"], alpha=1.0)):
            assert not torch.equal(logits(model, batch), bare)
            raise RuntimeError("boom")
    assert torch.equal(logits(model, batch), bare)
    assert not decoder_layers(model)[LAYER]._forward_hooks and not model.model._forward_pre_hooks


def test_dsg_fires_on_forget_not_retain_and_lowers_forget_token_mass(env):
    model, tok, data = env["model"], env["tok"], env["data"]
    gate = dsg(env, percentile=90)
    retain = encode(tok, data.retain.heldout, 32)
    forget = encode(tok, data.forget.heldout, 32)
    with attach_gate(model, gate):
        logits(model, retain)
        retain_rate = gate.firing_rate
        gate.reset()
        gated = logits(model, forget)
        forget_rate = gate.firing_rate
    assert abs(retain_rate - 0.10) <= 0.08, retain_rate
    assert forget_rate > 0.8, forget_rate

    script = dominant_script(data.forget.train[:1000])[0]
    lines = {"forget": data.forget.train[:1000], "retain": data.retain.train[:1000]}
    mask = forget_token_mask(tok, gated.shape[-1], lines, script)
    bare_mass = forget_token_mass(logits(model, forget), forget["labels"], mask)
    assert forget_token_mass(gated, forget["labels"], mask) < 0.8 * bare_mass


def test_dsg_keeps_its_share_across_cached_generation(env):
    model, tok, data = env["model"], env["tok"], env["data"]
    prompts = [prompt_prefix(t) for t in data.forget.heldout[:16] + data.retain.heldout[:16]]
    with attach_gate(model, dsg(env)) as gate:
        conts = sample_continuations(model, tok, prompts, max_new_tokens=8, seed=0)
    assert len(conts) == 32 and gate.seen == 32  # one sequence per prompt, not one per decoding step
    fired = gate.last_gated.float()
    assert fired[:16].mean() > 0.9 and fired[16:].mean() < 0.6, fired


def test_build_gate_from_knobs(env):
    assert {k.name for k in STATIC_GATE_KNOBS} == {"sae_gate_alpha", "n_features", "sae_layer"}
    assert {k.name for k in DSG_GATE_KNOBS} == {"base_alpha", "n_features", "trigger_percentile", "sae_layer"}
    args = (env["model"], env["tok"], env["data"], env["path"], CONFIG, env["root"])
    static, info = build_gate("sae_gate", {"n_features": 10}, *args, fit_lines=256)
    assert isinstance(static, StaticGate) and static.base_alpha == 0.35 and len(static.features) == 10
    assert info["gate_sae_cache_hit"] == 1.0
    gate, info = build_gate("dsg", {"base_alpha": 2.0}, *args, fit_lines=256)
    assert isinstance(gate, DynamicGate) and gate.threshold == info["gate_threshold"]
    assert info["gate_feature_rate_forget"] > info["gate_feature_rate_retain"]


def test_dsg_clamps_every_selected_feature_where_any_fires(env):
    """The official intervention: at each token of a gated sequence where any selected feature is active, ALL selected
    features are set to -c (a (batch, length, 1) mask), not only the active ones (the earlier form, `active_only`)."""
    model, tok, data = env["model"], env["tok"], env["data"]
    batch = encode(tok, data.forget.heldout[:16], 32)
    captured = []
    handle = decoder_layers(model)[LAYER].register_forward_hook(lambda m, a, out: captured.append(hidden_of(out)))
    logits(model, batch)
    handle.remove()
    h, mask = captured[0], batch["attention_mask"]
    gates = {form: DynamicGate(env["sae"], LAYER, env["features"], 4.0, -1.0, tok.all_special_ids, active_only=form)
             for form in (False, True)}  # τ = -1: every sequence fires
    for gate in gates.values():
        gate._ids = batch["input_ids"]
        gate.last_gated = torch.zeros(len(h), dtype=torch.bool)
    z = env["sae"].encode_features(h, env["features"].indices)
    counted = real_positions(mask) & ~torch.isin(batch["input_ids"], torch.tensor(tok.all_special_ids))
    token = (z > 0).any(dim=-1, keepdim=True) & counted.unsqueeze(-1)
    expected = h + ((gates[False].clamp - z) * token) @ gates[False].rows
    assert torch.allclose(gates[False].edit(h, mask, fresh=True), expected, atol=1e-5)
    # on real forget lines some selected features are off where another fires, so the two forms differ
    assert ((z <= 0) & token).any()
    assert not torch.allclose(gates[True].edit(h, mask, fresh=True), expected, atol=1e-5)
