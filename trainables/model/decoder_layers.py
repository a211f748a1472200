"""Where a causal LM's decoder layers are, and what a forward hook on one of them reads and returns.

Adapters (LoReFT), SAEs and gates all hook the output of `model.model.layers[i]`; they find it, and read and
replace its hidden states, through these helpers, so a model whose layout differs is handled in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: layer knobs (LayerChoices) and ModelSize are read without torch
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


@dataclass(frozen=True)
class ModelSize:
    """What a knob's choices may depend on: the model's depth and width, read from its config before Ray starts."""

    num_layers: int
    hidden_size: int

    @classmethod
    def of_config(cls, config) -> "ModelSize":
        """From a transformers config object or its config.json as a dict."""
        get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
        return cls(num_layers=int(get("num_hidden_layers")), hidden_size=int(get("hidden_size")))


@dataclass(frozen=True)
class LayerChoices:
    """The choices of a layer knob on a given model: every decoder layer's index (as a string, the form a knob's
    value takes in MLflow and in the exported flags), with 'all' first where the knob can take every layer at once.

    A knob given these as `model_choices` has no fixed choices: the study resolves them from the loaded model's
    depth (study/space.py), so a 24-layer model searches its 24 layers, and checks a configured value against them
    (study/prepare.py). `several` also accepts comma-separated indices in a configured value (LoReFT's "0,5,11");
    negative indices count from the last layer, as in Python."""

    with_all: bool = False
    several: bool = False

    def __call__(self, shape: ModelSize) -> tuple[str, ...]:
        singles = tuple(str(i) for i in range(shape.num_layers))
        return ("all", *singles) if self.with_all else singles

    def check(self, value, shape: ModelSize) -> None:
        """Raise ValueError unless `value` names layers of this model."""
        text = str(value).strip()
        if self.with_all and text == "all":
            return
        parts = text.split(",") if self.several else [text]
        try:
            indices = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{value!r} is not {self}") from None
        n = shape.num_layers
        bad = [i for i in indices if not -n <= i < n]
        if bad:
            raise ValueError(f"layer {bad[0]} is outside the model's {n} decoder layers (0 to {n - 1})")

    def __str__(self) -> str:
        what = "decoder layer indices" + (" (comma-separated)" if self.several else "")
        return ("'all' or " if self.with_all else "") + what + " of the model"
