"""Adapters: the only parameters unlearning trains. The base model's weights stay frozen."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from .registry import ADAPTERS, Knob


class Adapter:
    def attach(self, model):
        """Wrap or hook the model; returns the model to train and evaluate."""
        raise NotImplementedError

    def parameters(self) -> list[torch.nn.Parameter]:
        raise NotImplementedError

    def disabled(self) -> AbstractContextManager:
        """The frozen original model (NPO's reference), without a second copy in memory."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


@ADAPTERS.register(
    "lora",
    knobs=(
        Knob("rank", 8, choices=(4, 8, 16), searched=False, help="LoRA rank r"),
        Knob(
            "target_modules",
            "q_proj,v_proj",
            choices=("q_proj,v_proj", "q_proj,k_proj,v_proj,o_proj", "gate_proj,up_proj,down_proj"),
            searched=False,
            help="comma-separated module names LoRA wraps",
        ),
    ),
    help="LoRA (peft), lora_alpha = 2 * rank, no dropout",
)
class LoRA(Adapter):
    def __init__(self, rank: int, target_modules: str):
        self.rank = int(rank)
        self.target_modules = target_modules.split(",")
        self.model = None

    def attach(self, model):
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=self.rank, lora_alpha=2 * self.rank, lora_dropout=0.0, target_modules=self.target_modules
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
