"""Where a causal LM's decoder layers are, and what a forward hook on one of them reads and returns.

Adapters (LoReFT), SAEs and gates all hook the output of `model.model.layers[i]`; they find it, and read and
replace its hidden states, through these helpers, so a model whose layout differs is handled in one place.
"""

from __future__ import annotations

import torch
from torch import nn


def decoder_body(model) -> nn.Module:
    """The module that runs the decoder layers (Qwen2Model in Qwen2ForCausalLM), also through a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def decoder_layers(model) -> nn.ModuleList:
    return decoder_body(model).layers


def hidden_of(output) -> torch.Tensor:
    """A decoder layer's hidden states: its output, or the first item of older transformers' tuple."""
    return output[0] if isinstance(output, tuple) else output


def with_hidden(output, hidden: torch.Tensor):
    """The layer's output with its hidden states replaced (a hook's return value), in the output's own form."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
