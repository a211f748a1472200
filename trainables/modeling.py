"""Loading a causal LM and its tokenizer: a hub name, a local path, or the embedded default.

Loaded once per worker process and kept; each trial trains on its own copy, so one process can run trial after
trial (Ray's actor reuse) without reloading weights from disk. trust_remote_code stays off unless configured.
"""

from __future__ import annotations

import copy
from functools import lru_cache

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
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str, trust_remote_code: bool = False, dtype: str = "float32", device: str = "cpu"):
    """A fresh, frozen copy of the model (the cached one is never modified)."""
    return copy.deepcopy(_load_base(name_or_path, trust_remote_code, dtype)).to(device)
