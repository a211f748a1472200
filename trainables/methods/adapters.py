"""Adapters: the only parameters unlearning trains. The base model's weights stay frozen."""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from trainables.methods.registry import ADAPTERS, Knob, MmieForm, Piece

# torch is imported where a piece computes, not here: registering the pieces (names, knobs, help) must not load it,
# since the command line lists and validates them without it (tests/test_cli_imports.py).
if TYPE_CHECKING:
    import torch

MMIE_LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj"


@ADAPTERS.contract
class Adapter(Piece):
    """The trained parameters and how they enter the model. Life cycle, as the Unlearner drives it:

    - built once per trial by `ADAPTERS.build(name, hparams, context)` (its knobs as its constructor's keyword
      arguments; the context holds the base model, not yet its own), the name the variant's or the trial's
      `adapter`; a gate-only variant gets one too and never trains it;
    - `attach(model)` once, right after the base model loads; every later forward pass uses what it returns;
    - `parameters()` once to build the optimiser scheme, then once per step (gradient norm and clipping);
    - `disabled()`, a context manager, around every forward pass that needs the frozen original model (NPO's
      reference, the KL retain step, static LoReUn's losses, a gate's SAE), as often as once per update;
    - `penalty()` once per update, added to the objective's loss;
    - `state_dict()` at every checkpoint, `load_state_dict(state)` once when a trial is restored from one.
    """

    @abstractmethod
    def attach(self, model):
        """Wrap or hook the model; returns the model to train and evaluate."""

    @abstractmethod
    def parameters(self) -> list[torch.nn.Parameter]:
        """The trainable parameters (the base model's stay frozen)."""

    @abstractmethod
    def disabled(self) -> AbstractContextManager:
        """The frozen original model (NPO's and the KL retain step's reference), without a second copy in memory."""

    def penalty(self) -> torch.Tensor | None:
        """A regulariser added to every update's loss (mmie.py's gated ReFT has one), or None."""
        return None

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained parameters' values (what a checkpoint keeps)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Set the parameters from `state_dict()`'s output."""


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

        from trainables.model.loading import prepare_for_lora

        config = LoraConfig(
            r=self.rank, lora_alpha=self.alpha, lora_dropout=0.0, target_modules=self.target_modules
        )
        self.model = get_peft_model(prepare_for_lora(model), config)  # an 8-bit model as mmie.py prepares it
        return self.model

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def disabled(self):
        return self.model.disable_adapter()

    def state_dict(self):
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_state_dict(self, state):
        import torch

        params = dict(self.model.named_parameters())
        missing = set(state) ^ {n for n, p in params.items() if p.requires_grad}
        if missing:
            raise KeyError(f"adapter checkpoint does not match the adapter: {sorted(missing)[:5]}")
        with torch.no_grad():
            for n, value in state.items():
                params[n].copy_(value)
