"""Optimiser schemes: which optimiser(s) update the adapter, and the order of forget and retain updates."""

from __future__ import annotations

import torch

from .registry import OPTIMIZERS, Knob


class OptimizerScheme:
    def phases(self, step: int) -> list[str]:
        """The updates one step makes, in order: "forget" and "retain"."""
        raise NotImplementedError

    def optimizer(self, phase: str) -> torch.optim.Optimizer:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


@OPTIMIZERS.register(
    "adamw",
    knobs=(Knob("lr", 2e-4, 1e-5, 1e-2, log=True, help="learning rate of the single AdamW"),),
    help="one AdamW; each step is a forget update then a retain update (gradient difference, alternating)",
)
class SingleAdamW(OptimizerScheme):
    def __init__(self, lr: float, params):
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def phases(self, step):
        return ["forget", "retain"]

    def optimizer(self, phase):
        return self.opt

    def state_dict(self):
        return {"adamw": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.opt.load_state_dict(state["adamw"])
