"""The mmie.py entry points run the registry's variants on a model and texts handed to them."""

import pytest

from trainables.adaptive_unlearning import resolve_variant, run_config, train_lora_adaptive, train_reft_adaptive
from trainables.data import read_jsonl
from trainables.model.loading import load_model, load_tokenizer


@pytest.fixture
def inputs(embedded):
    tok = load_tokenizer(str(embedded.model_dir))
    forget = read_jsonl(embedded.root / "data" / "hi.jsonl")[:400]
    retain = read_jsonl(embedded.root / "data" / "en.jsonl")[:400]
    return load_model(str(embedded.model_dir)), tok, forget, retain


def test_guide_switches_change_the_composition():
    assert resolve_variant("adaptive", True, 50).weightings == ("loreun", "curriculum")
    assert resolve_variant("adaptive", False, 50).weightings == ("loreun",)
    assert resolve_variant("adaptive", None, 0).weightings == ("loreun_static", "curriculum")
    assert resolve_variant("ga", True, None).weightings == ("curriculum",)
    assert resolve_variant("ga", None, None).name == "ga"


def test_train_lora_adaptive_returns_the_unlearnt_model(inputs):
    model, tok, forget, retain = inputs
    out = train_lora_adaptive(model, tok, forget, retain, steps=4, bs=4, max_len=32, lr_forget=3e-3,
                              lr_retain=1e-3, bound=5.0, temperature=1.0, use_curriculum=True, seed=0)
    assert hasattr(out, "disable_adapter")  # a peft model with the trained LoRA
    assert any(p.requires_grad and p.abs().sum() > 0 for n, p in out.named_parameters() if "lora_B" in n)


def test_train_reft_adaptive_returns_model_and_adapter(inputs):
    model, tok, forget, retain = inputs
    out, adapter = train_reft_adaptive(model, tok, [0, 1], forget, retain, rank=2, steps=3, bs=4, max_len=32)
    assert out is model and len(adapter.handles) == 2
    adapter.detach()


def test_same_arguments_same_metrics(inputs, embedded):
    _, tok, forget, retain = inputs
    kwargs = dict(variant="dualoptim", steps=4, bs=4, max_len=32, seed=3, lr_forget=3e-3, lr_retain=1e-3)
    _, first = run_config(load_model(str(embedded.model_dir)), tok, forget, retain, **kwargs)
    _, second = run_config(load_model(str(embedded.model_dir)), tok, forget, retain, **kwargs)
    first.pop("seconds_per_step"), second.pop("seconds_per_step")
    assert first == second and first["forget_efficacy"] > 0


def test_gated_config_trains_its_variant_without_the_gate(inputs):
    # An exported `<variant>+dsg` trial runs unchanged: the entry point trains the variant; the gate is not its job.
    model, tok, forget, retain = inputs
    run, metrics = run_config(model, tok, forget, retain, variant="ga+dsg", steps=2, bs=4, max_len=32, lr=3e-3,
                              base_alpha=4.0, trigger_percentile=95.0)
    assert run.gate is None and run.step == 2 and metrics["diverged"] == 0.0
    gate_only, _ = run_config(model, tok, forget, retain, variant="dsg", steps=2, bs=4, max_len=32)
    assert gate_only.step == 0  # a gate-only config trains nothing


def test_entry_points_split_the_lines_as_the_study_does(tmp_path):
    # An exported config re-run through the entry points must train on the study's training lines: same held-out
    # lines, and the forget set's relearning-attack lines kept out of training as the study keeps them.
    from trainables.adaptive_unlearning import _data
    from trainables.data import DataPaths, load_study_data, write_jsonl

    forget = [f"पंक्ति {i} यहाँ है" for i in range(900)]
    retain = [f"line {i} is here" for i in range(400)]
    write_jsonl(tmp_path / "f.jsonl", forget)
    write_jsonl(tmp_path / "r.jsonl", retain)
    study = load_study_data(DataPaths(forget=str(tmp_path / "f.jsonl"), retain=str(tmp_path / "r.jsonl")), seed=3)
    entry = _data(forget, retain, seed=3, heldout=128)
    for name in ("forget", "retain"):
        a, b = study.sets[name], entry.sets[name]
        assert (a.train, a.heldout, a.attack) == (b.train, b.heldout, b.attack)
    assert study.forget.attack and not set(study.forget.attack) & set(study.forget.train)
