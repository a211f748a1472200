"""Real architectures' shapes without a hub: a causal LM with random weights, built from configuration values
written here (the published config.json of each model), so the whole study runs at a real depth and width on a
machine that cannot download the model (`model: shape:qwen2.5-0.5b` in a study config).

The weights are random: forgetting and utility figures on such a model mean nothing; what it measures is whether
every piece (LoRA on q/k/v/o, LoReFT at deep layers, an SAE at the real width, the gates, checkpoints, resume,
export) runs at that size, and what a step costs there.

The vocabulary is the tokenizer's, not the hub model's: the tokenizer is the embedded build's (2,048 tokens) or a
given one (`shape: {tokenizer: ...}`), and the embedding matrix has exactly one row per token it can produce.
Qwen2.5's own 151,936 rows with the embedded tokenizer would be 136 M parameters (0.5 GB in float32) that no
input reaches, and the forget-language token mass would spread over rows no data ever uses. The transformer
blocks, where unlearning acts, keep the real shape.

Built once per (shape, tokenizer, seed), cached on disk under a file lock like the embedded default, and then read
as any local model folder (config.json, weights, tokenizer), so nothing downstream knows it was generated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from trainables.cache import building_folder, cache_root, file_lock, remove_leftovers

SHAPE_PREFIX = "shape:"


@dataclass(frozen=True)
class ArchitectureShape:
    """A decoder-only architecture's configuration values (Qwen2 family)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    tie_word_embeddings: bool
    rope_theta: float
    rms_norm_eps: float
    max_position_embeddings: int
    hub_vocab_size: int  # the hub model's own vocabulary, for the record (see the module's docstring)
    model_type: str = "qwen2"


# From each model's published config.json (Qwen/Qwen2.5-0.5B, Qwen/Qwen2.5-1.5B; the Instruct models share them).
SHAPES: dict[str, ArchitectureShape] = {
    "qwen2.5-0.5b": ArchitectureShape(hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2,
                                      intermediate_size=4864, tie_word_embeddings=True, rope_theta=1_000_000.0,
                                      rms_norm_eps=1e-6, max_position_embeddings=32768, hub_vocab_size=151936),
    "qwen2.5-1.5b": ArchitectureShape(hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2,
                                      intermediate_size=8960, tie_word_embeddings=True, rope_theta=1_000_000.0,
                                      rms_norm_eps=1e-6, max_position_embeddings=32768, hub_vocab_size=151936),
}

FORMAT_VERSION = 2


def is_shape(model: str) -> bool:
    return model.startswith(SHAPE_PREFIX)


def shape_named(model: str) -> ArchitectureShape:
    """The shape of `shape:NAME`; KeyError naming the known shapes otherwise."""
    name = model[len(SHAPE_PREFIX):] if is_shape(model) else model
    try:
        return SHAPES[name]
    except KeyError:
        raise KeyError(f"unknown model shape {name!r}; known: {', '.join(sorted(SHAPES))}") from None


def load_shape_tokenizer(source: str):
    """A tokenizer folder (AutoTokenizer's form) or a single tokenizer.json file."""
    from trainables.model.loading import load_tokenizer

    path = Path(source)
    if path.is_dir():
        return load_tokenizer(str(path))
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer.from_file(str(path))
    special = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
    if not special:
        raise ValueError(f"tokenizer file {path}: has no special token to end a text with")
    eos = "<|endoftext|>" if "<|endoftext|>" in special else special[0]
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=eos, eos_token=eos, pad_token=eos)


def _digest(source: str) -> str:
    path = Path(source)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in files:
        if p.name.startswith("tokenizer") or p == path:
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def shape_key(model: str, tokenizer_source: str, seed: int) -> str:
    payload = {"format": FORMAT_VERSION, "shape": asdict(shape_named(model)), "seed": seed,
               "tokenizer": _digest(tokenizer_source)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def ensure_shape(model: str, tokenizer_source: str, seed: int = 0, cache: Path | None = None, log=print) -> Path:
    """The folder of the random-weight model `shape:NAME` (config.json, weights, tokenizer), built on a miss."""
    name = model[len(SHAPE_PREFIX):] if is_shape(model) else model
    root_dir = (cache or cache_root()) / "shape"
    root = root_dir / f"{name}-{shape_key(model, tokenizer_source, seed)}"
    if not (root / "report.json").exists():
        root_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(root_dir / f"{root.name}.lock"):
            if not (root / "report.json").exists():
                remove_leftovers(root_dir, root.name, log)  # of builds of this shape that were killed
                _build(model, tokenizer_source, seed, root, log)
    return root


def _build(model: str, tokenizer_source: str, seed: int, root: Path, log) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    started = time.perf_counter()
    shape = shape_named(model)
    tok = load_shape_tokenizer(tokenizer_source)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta,
        rms_norm_eps=shape.rms_norm_eps,
        tie_word_embeddings=shape.tie_word_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        # No padding_idx: it would initialise that token's embedding row to zeros, and the pad token is also the
        # end-of-text token every line starts with; a zero row at position 0 gave NaN gradients at 24 layers. A
        # trained model has a real row for it. Padding is masked out anyway, and generation is given the pad id.
        pad_token_id=None,
    )
    torch.manual_seed(seed)  # the same bytes on every node from the same seed
    net = Qwen2ForCausalLM(config)
    tmp = building_folder(root.parent, root.name)
    try:
        net.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        report = {"shape": model, "values": asdict(shape), "vocab_size": len(tok), "seed": seed,
                  "tokenizer": str(tokenizer_source), "parameters": sum(p.numel() for p in net.parameters()),
                  "build_seconds": time.perf_counter() - started}
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{model}: {report['parameters'] / 1e6:.0f} M random parameters (vocabulary {len(tok)}) built in "
        f"{report['build_seconds']:.0f} s at {root}")
