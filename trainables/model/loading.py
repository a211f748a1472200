"""Loading a causal LM and its tokenizer: a hub name, a local path, or the embedded default.

Loaded once per worker process and kept; each trial trains on its own copy, so one process can run trial after
trial (Ray's actor reuse) without reloading weights from disk. trust_remote_code stays off unless configured.
On CUDA the model's forward runs under bf16 autocast (weights stay in their dtype; logits come back in float32).

`quantization: int8` loads the model as mmie.py does by default on CUDA (MMIE-INTERFACE.md §2): bitsandbytes 8-bit
weights with `llm_int8_threshold` 6.0, and for a LoRA adapter peft's `prepare_model_for_kbit_training` first. An
8-bit model cannot be copied or moved, so each trial loads its own from disk. It runs on CUDA only: the study
refuses it before Ray on a machine without CUDA (study/prepare.py).
"""

from __future__ import annotations

import copy
import functools
import json
from functools import lru_cache
from pathlib import Path

import torch

QUANTIZATIONS = ("none", "int8")
# mmie.py's BitsAndBytesConfig (L1305): 8-bit weights, outliers above this magnitude kept in 16-bit.
INT8_THRESHOLD = 6.0


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
    and replaces the saved pre-tokenizer with the class's own: an embedded build from before its tokenizer was
    trained under Qwen2's pre-tokenizer (format 1) kept combining marks inside words, and Qwen2's class splits its
    Devanagari differently from how the model was trained (Hindi perplexity 2.8 -> 3,600). The chat template is kept.
    """
    if not path.is_file():
        return tok
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    def parts(tokenizer_json: str) -> tuple:
        j = json.loads(tokenizer_json)
        model = {k: v or None for k, v in (j.get("model") or {}).items()}  # "" and null say the same
        return j.get("normalizer"), j.get("pre_tokenizer"), model

    saved = Tokenizer.from_file(str(path))
    if parts(saved.to_str()) == parts(tok.backend_tokenizer.to_str()):
        return tok
    rebuilt = PreTrainedTokenizerFast(
        tokenizer_object=saved, bos_token=tok.bos_token, eos_token=tok.eos_token, pad_token=tok.pad_token
    )
    rebuilt.chat_template = tok.chat_template
    return rebuilt


def load_model(name_or_path: str, trust_remote_code: bool = False, dtype: str = "float32", device: str = "cpu",
               quantization: str = "none"):
    """A fresh, frozen copy of the model (the cached one is never modified), on `device`; under bf16 autocast on
    CUDA. `quantization` "int8": loaded 8-bit from disk (see the module's docstring)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization {quantization!r}: one of {', '.join(QUANTIZATIONS)}")
    if quantization == "int8":
        model = _load_int8(name_or_path, trust_remote_code, dtype, device)
    else:
        model = copy.deepcopy(_load_base(name_or_path, trust_remote_code, dtype)).to(device)
    if torch.device(device).type == "cuda":
        autocast_forward(model, "cuda", torch.bfloat16)
    return model


def _load_int8(name_or_path: str, trust_remote_code: bool, dtype: str, device: str):
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        raise ValueError(f"quantization int8 loads the model with bitsandbytes, which runs on CUDA only; the device "
                         f"is {device!r}{'' if torch.cuda.is_available() else ' and this machine has no CUDA'}")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    _quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, trust_remote_code=trust_remote_code, dtype=getattr(torch, dtype),
        quantization_config=BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=INT8_THRESHOLD),
        device_map={"": torch.device(device).index or 0},  # the trial's one GPU (mmie.py: device_map="auto")
    )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def is_8bit(model) -> bool:
    return bool(getattr(model, "is_loaded_in_8bit", False))


def prepare_for_lora(model):
    """What mmie.py does to an 8-bit model before LoRA (L1502): peft's prepare_model_for_kbit_training (float32
    norms and output layer, input gradients, gradient checkpointing). A model not in 8-bit is returned as it is."""
    if not is_8bit(model):
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model)


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
