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


@OPTIMIZERS.register(
    "dual",
    knobs=(
        Knob("lr_forget", 2e-4, 1e-5, 1e-2, log=True, help="learning rate of the forget optimiser"),
        Knob("lr_retain", 1e-4, 1e-5, 1e-2, log=True, help="learning rate of the retain optimiser"),
        Knob("retain_freq", 1, choices=(1, 2, 5), help="retain updates per forget update (the paper's LLM code: 5)"),
    ),
    help="DualOptim (arXiv 2504.15827): separate Adam states, step counts and learning rates for forget and retain",
)
class DualOptim(OptimizerScheme):
    """Every step makes a retain update; every retain_freq-th step also a forget update, before it. Each objective
    keeps its own Adam moments and bias-correction step count (sharing one state is the paper's ablation)."""

    def __init__(self, lr_forget: float, lr_retain: float, retain_freq: int, params):
        params = list(params)
        self.retain_freq = int(retain_freq)
        self.forget = torch.optim.Adam(params, lr=lr_forget)
        self.retain = torch.optim.Adam(params, lr=lr_retain)

    def phases(self, step):
        return (["forget"] if step % self.retain_freq == 0 else []) + ["retain"]

    def optimizer(self, phase):
        return self.forget if phase == "forget" else self.retain

    def state_dict(self):
        return {"forget": self.forget.state_dict(), "retain": self.retain.state_dict()}

    def load_state_dict(self, state):
        self.forget.load_state_dict(state["forget"])
        self.retain.load_state_dict(state["retain"])
