"""Loading a causal LM and its tokenizer: a hub name, a local path, or the embedded default.

Loaded once per worker process and kept; each trial trains on its own copy, so one process can run trial after
trial (Ray's actor reuse) without reloading weights from disk. trust_remote_code stays off unless configured.
On CUDA the model's forward runs under bf16 autocast (weights stay in their dtype; logits come back in float32).
"""

from __future__ import annotations

import copy
import functools
import json
from functools import lru_cache
from pathlib import Path

import torch


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()


@lru_cache(maxsize=2)
def _load_base(name_or_path: str, trust_remote_code: bool, dtype: str):
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, trust_remote_code=trust_remote_code, dtype=getattr(torch, dtype)
    )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@lru_cache(maxsize=2)
def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    tok = _honour_tokenizer_file(tok, Path(name_or_path) / "tokenizer.json")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _honour_tokenizer_file(tok, path: Path):
    """Use a local tokenizer.json as saved when transformers rebuilt it differently.

    transformers 5 picks the tokenizer class from the model's config.json (Qwen2Tokenizer for any qwen2 model)
    and replaces the saved pre-tokenizer with the class's own: the embedded tokenizer, which keeps combining marks
    inside words, then splits Devanagari differently from how the model was trained (Hindi perplexity 2.8 -> 3,600).
    """
    if not path.is_file():
        return tok
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    saved = Tokenizer.from_file(str(path))
    ours, theirs = json.loads(saved.to_str()), json.loads(tok.backend_tokenizer.to_str())
    if all(ours.get(k) == theirs.get(k) for k in ("normalizer", "pre_tokenizer", "model")):
        return tok
    return PreTrainedTokenizerFast(
        tokenizer_object=saved, bos_token=tok.bos_token, eos_token=tok.eos_token, pad_token=tok.pad_token
    )


def load_model(name_or_path: str, trust_remote_code: bool = False, dtype: str = "float32", device: str = "cpu"):
    """A fresh, frozen copy of the model (the cached one is never modified), on `device`; under bf16 autocast on
    CUDA."""
    model = copy.deepcopy(_load_base(name_or_path, trust_remote_code, dtype)).to(device)
    if torch.device(device).type == "cuda":
        autocast_forward(model, "cuda", torch.bfloat16)
    return model


def autocast_forward(model, device_type: str, dtype: torch.dtype = torch.bfloat16):
    """Make the model's forward (also inside generate and under a peft wrapper, which call it) run under autocast.

    Only the forward: backward then runs each op in the dtype its forward used, as torch recommends, and the
    optimiser's step stays in float32. Logits come back in float32, so log-softmax, NLL and the token mass are
    computed at full precision."""
    forward = model.forward

    @functools.wraps(forward)
    def autocast(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            out = forward(*args, **kwargs)
        if getattr(out, "logits", None) is not None:
            out.logits = out.logits.float()
        return out

    model.forward = autocast
    return model
