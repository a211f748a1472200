"""Adapters: the only parameters unlearning trains. The base model's weights stay frozen."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from .registry import ADAPTERS, Knob, MmieForm

MMIE_LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj"


class Adapter:
    def attach(self, model):
        """Wrap or hook the model; returns the model to train and evaluate."""
        raise NotImplementedError

    def parameters(self) -> list[torch.nn.Parameter]:
        raise NotImplementedError

    def disabled(self) -> AbstractContextManager:
        """The frozen original model (NPO's and the KL retain step's reference), without a second copy in memory."""
        raise NotImplementedError

    def penalty(self) -> torch.Tensor | None:
        """A regulariser added to every update's loss (mmie.py's gated ReFT has one), or None."""
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


@ADAPTERS.register(
    "lora",
    knobs=(
        Knob("rank", 8, choices=(2, 4, 8, 16), searched=False, help="LoRA rank r (mmie.py's --rank)"),
        Knob(
            "target_modules",
            MMIE_LORA_TARGETS,
            choices=(MMIE_LORA_TARGETS, "q_proj,v_proj", "gate_proj,up_proj,down_proj"),
            searched=False,
            help="comma-separated module names LoRA wraps",
        ),
        Knob("lora_alpha", 16, choices=(8, 16, 32), searched=False, help="LoRA's alpha (scale alpha / r)"),
    ),
    help="LoRA (peft), no dropout; by default mmie.py's: q/k/v/o, alpha 16",
    mmie=MmieForm(flags=lambda v: ["--rank", str(v["rank"])], steps_flag="--lora_steps",
                  fixed=(("target_modules", MMIE_LORA_TARGETS), ("lora_alpha", 16))),
)
class LoRA(Adapter):
    def __init__(self, rank: int, target_modules: str, lora_alpha: int):
        self.rank = int(rank)
        self.target_modules = target_modules.split(",")
        self.alpha = int(lora_alpha)
        self.model = None

    def attach(self, model):
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=self.rank, lora_alpha=self.alpha, lora_dropout=0.0, target_modules=self.target_modules
        )
        self.model = get_peft_model(model, config)
        return self.model

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def disabled(self):
        return self.model.disable_adapter()

    def state_dict(self):
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_state_dict(self, state):
        params = dict(self.model.named_parameters())
        missing = set(state) ^ {n for n, p in params.items() if p.requires_grad}
        if missing:
            raise KeyError(f"adapter checkpoint does not match the adapter: {sorted(missing)[:5]}")
        with torch.no_grad():
            for n, value in state.items():
                params[n].copy_(value)
