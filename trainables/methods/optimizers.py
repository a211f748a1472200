"""Optimiser schemes: which optimiser(s) update the adapter, and the order of forget and retain updates.

A step is one forget update and the retain updates that go with it, whatever the scheme: studies, rungs and the
ladder count budgets in steps, so they compare variants at equal forget updates (DualOptim's official code counts
the same way). Every optimiser is AdamW with weight decay 0.01 (torch's default, which mmie.py and DualOptim's
code use); the learning rate follows the study's schedule (trainables.methods.lr_schedule), applied per update.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

from trainables.methods.registry import OPTIMIZERS, BuildContext, Knob, MmieForm, Piece

# torch is imported where a piece computes, not here: registering the pieces (names, knobs, help) must not load it,
# since the command line lists and validates them without it (tests/test_cli_imports.py).
if TYPE_CHECKING:
    import torch

WEIGHT_DECAY = 0.01
MMIE_LR = 2e-4  # mmie.py's learning rate; it has no --lr flag


@OPTIMIZERS.contract
class OptimizerScheme(Piece):
    """Which optimiser makes each update of a step, and how many updates a step makes. Life cycle, as the Unlearner
    drives it:

    - built once per trial, after the adapter is attached: `OPTIMIZERS.build(name, hparams, context)` passes its
      knobs to its constructor as keyword arguments, plus `params`, the parameters to train (the context's
      adapter's `parameters()`);
    - right after: `optimizers()` (their learning rates are the base ones the schedule scales) and `phases(0)`
      (its length is the number of updates per step, the same at every step);
    - every step: `phases(step)` once; for each phase in order, the schedule sets the learning rate of every
      optimiser in `optimizers()` for that update, then `optimizer(phase)` is zeroed and stepped (after clipping;
      a non-finite loss or gradient ends the step there, that update unmade);
    - `state_dict()` at every checkpoint, `load_state_dict(state)` once when a trial is restored from one.
    """

    @classmethod
    def from_knobs(cls, knobs, context: BuildContext):
        if context.adapter is None:
            raise ValueError(f"{cls.__name__}: an optimiser scheme is built after the adapter (the context has none)")
        return cls(**knobs, params=context.adapter.parameters())

    @abstractmethod
    def phases(self, step: int) -> list[str]:
        """The updates one step makes, in order: one "forget", then its "retain" updates."""

    @abstractmethod
    def optimizer(self, phase: str) -> torch.optim.Optimizer:
        """The optimiser that makes a `phase` update."""

    @abstractmethod
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimiser of the scheme, always in the same order."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything a restored trial needs to continue (the optimisers' moments and step counts)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`'s output."""


def _lr_flags(values: dict) -> list[str]:
    # mmie.py sets a learning rate only through --dual_optimizer (two AdamW states); at its own 2e-4 none is needed.
    if abs(float(values["lr"]) - MMIE_LR) <= 1e-12:
        return []
    return ["--dual_optimizer", "--lr_forget", str(values["lr"]), "--lr_retain", str(values["lr"])]


@OPTIMIZERS.register(
    "adamw",
    knobs=(Knob("lr", 2e-4, 1e-5, 1e-2, log=True, help="learning rate of the single AdamW"),),
    help="one AdamW (weight decay 0.01); each step is a forget update then a retain update (mmie.py's alternation)",
    mmie=MmieForm(flags=_lr_flags, fixed=(("lr", MMIE_LR),),
                  fixed_instead="the command sets it through --dual_optimizer: two AdamW states, not one, which "
                                "can forget far less (measured in docs/mmie.md; the dualoptim variant trains "
                                "what the command runs)"),
)
class SingleAdamW(OptimizerScheme):
    def __init__(self, lr: float, params):
        import torch

        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY)

    def phases(self, step):
        return ["forget", "retain"]

    def optimizer(self, phase):
        return self.opt

    def optimizers(self):
        return [self.opt]

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
    help="DualOptim (arXiv 2504.15827): separate AdamW states, step counts and learning rates for forget and retain;"
         " at retain_freq 1 it is mmie.py's --dual_optimizer",
    mmie=MmieForm(flags=lambda v: ["--dual_optimizer", "--lr_forget", str(v["lr_forget"]),
                                   "--lr_retain", str(v["lr_retain"])],
                  fixed=(("retain_freq", 1),)),
)
class DualOptim(OptimizerScheme):
    """Each step makes one forget update, then retain_freq retain updates. Each objective keeps its own AdamW
    moments and bias-correction step count (sharing one state is the paper's ablation)."""

    def __init__(self, lr_forget: float, lr_retain: float, retain_freq: int, params):
        import torch

        params = list(params)
        self.retain_freq = int(retain_freq)
        self.forget = torch.optim.AdamW(params, lr=lr_forget, weight_decay=WEIGHT_DECAY)
        self.retain = torch.optim.AdamW(params, lr=lr_retain, weight_decay=WEIGHT_DECAY)

    def phases(self, step):
        return ["forget"] + ["retain"] * self.retain_freq

    def optimizer(self, phase):
        return self.forget if phase == "forget" else self.retain

    def optimizers(self):
        return [self.forget, self.retain]

    def state_dict(self):
        return {"forget": self.forget.state_dict(), "retain": self.retain.state_dict()}

    def load_state_dict(self, state):
        self.forget.load_state_dict(state["forget"])
        self.retain.load_state_dict(state["retain"])
