"""The embedded default really models every language, round-trips through disk, and is built only once."""

import json

from tokenizers import Tokenizer

from trainables.embedded import ensure_embedded
from trainables.model.loading import load_tokenizer


def test_every_language_is_modelled(embedded):
    langs = embedded.report["languages"]
    assert set(langs) == {"en", "hi", "ur", "pa", "bn", "hi_en"}
    for name, entry in langs.items():
        # Uniform over the vocabulary would be ~2,048; a model that learnt the language is near 3.
        assert entry["perplexity"] < 6, (name, entry)
        # Replies to whole lines prompted as mmie.py prompts (chat template) are words, in the line's script.
        assert entry["chat_empty_share"] <= 0.1, (name, entry)
        if name != "hi_en":
            assert entry["script_fidelity"] >= 0.9, (name, entry)
            assert entry["chat_script_fidelity"] >= 0.8, (name, entry)


def test_saved_tokenizer_loads_as_trained(embedded):
    tok = load_tokenizer(str(embedded.model_dir))
    raw = Tokenizer.from_file(str(embedded.model_dir / "tokenizer.json"))
    line = json.loads((embedded.root / "data" / "hi.jsonl").open(encoding="utf-8").readline())["text"]
    assert tok.encode(line, add_special_tokens=False) == raw.encode(line).ids
    assert tok.decode(raw.encode(line).ids) == line


def test_a_plain_auto_tokenizer_tokenises_as_training_did(embedded):
    """mmie.py loads the folder with a plain AutoTokenizer.from_pretrained: for a qwen2 config transformers builds
    Qwen2's tokenizer class, which rebuilds the pre-tokenizer as Qwen2's. The folder must tokenise there exactly as
    the model was trained, and carry the chat template mmie.py prompts through."""
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(embedded.model_dir))
    raw = Tokenizer.from_file(str(embedded.model_dir / "tokenizer.json"))
    for name in ("hi", "ur", "pa", "bn", "hi_en", "en"):
        with (embedded.root / "data" / f"{name}.jsonl").open(encoding="utf-8") as f:
            lines = [json.loads(next(f))["text"] for _ in range(20)]
        assert [auto.encode(x, add_special_tokens=False) for x in lines] == [raw.encode(x).ids for x in lines], name
    prompt = auto.apply_chat_template([{"role": "user", "content": "नमस्ते"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|user|>नमस्ते<|assistant|>"
    assert auto.decode(auto.encode(prompt, add_special_tokens=False), skip_special_tokens=True) == "नमस्ते"


def test_second_call_is_a_cache_hit(embedded):
    before = (embedded.root / "report.json").stat().st_mtime_ns
    again = ensure_embedded()
    assert again.root == embedded.root
    assert (again.root / "report.json").stat().st_mtime_ns == before


def test_data_paths_follow_the_chosen_forget_language(embedded):
    hi = embedded.data_paths()
    assert hi.forget.endswith("hi.jsonl") and hi.mixed.endswith("hi_en.jsonl")
    assert sorted(p.rsplit("/", 1)[1] for p in hi.xlang) == ["bn.jsonl", "pa.jsonl", "ur.jsonl"]
    bn = embedded.data_paths(forget="bn")
    assert bn.forget.endswith("bn.jsonl") and bn.mixed is None
    assert sorted(p.rsplit("/", 1)[1] for p in bn.xlang) == ["hi.jsonl", "pa.jsonl", "ur.jsonl"]
