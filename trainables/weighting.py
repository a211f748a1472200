"""Sample weightings: how much each forget sample counts in a batch's loss. Weights always average 1 over the
batch, so a weighting redistributes the forget gradient without shrinking it (the guide's weights summed to 1,
which divides the forget gradient by the batch size)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .registry import WEIGHTINGS, Knob


class SampleWeighting:
    def prepare(self, frozen_losses: Callable[[], torch.Tensor]) -> None:
        """Called once before training; `frozen_losses()` scores every forget training line with the frozen model
        (costly: only weightings that need it call it)."""

    def weights(self, per_sample_nll: torch.Tensor, indices: torch.Tensor, step: int, total_steps: int):
        raise NotImplementedError


def normalised(logits: torch.Tensor) -> torch.Tensor:
    """softmax(logits) rescaled to mean 1."""
    return torch.softmax(logits, dim=0) * logits.numel()


@WEIGHTINGS.register("uniform", help="every forget sample counts the same")
class Uniform(SampleWeighting):
    def weights(self, per_sample_nll, indices, step, total_steps):
        return torch.ones_like(per_sample_nll)


_TEMPERATURE = Knob(
    "temperature", 1.0, 0.1, 10.0, log=True,
    help="LoReUn tau, in units of the median forget loss (tau = temperature * median NLL)",
)


@WEIGHTINGS.register(
    "loreun",
    knobs=(_TEMPERATURE,),
    help="LoReUn (arXiv 2507.22499), dynamic: w_i ∝ exp(-L_i/tau) from the current model's training forward pass",
)
class LoReUnDynamic(SampleWeighting):
    """Lower loss => more weight: well-memorised samples are the hard ones to forget. The losses are the training
    forward pass's own, so the weighting costs no extra pass over the forget set."""

    def __init__(self, temperature: float):
        self.temperature = temperature

    def weights(self, per_sample_nll, indices, step, total_steps):
        tau = self.temperature * per_sample_nll.median().clamp_min(1e-6)
        return normalised(-per_sample_nll / tau)


@WEIGHTINGS.register(
    "loreun_static",
    knobs=(_TEMPERATURE,),
    help="LoReUn, static: w_i ∝ exp(-L_i/tau) with L_i from the frozen original model, scored once",
)
class LoReUnStatic(SampleWeighting):
    def __init__(self, temperature: float):
        self.temperature = temperature
        self.losses: torch.Tensor | None = None

    def prepare(self, frozen_losses):
        self.losses = frozen_losses()
        self.tau = self.temperature * self.losses.median().clamp_min(1e-6)

    def weights(self, per_sample_nll, indices, step, total_steps):
        losses = self.losses.to(per_sample_nll.device)[indices]
        return normalised(-losses / self.tau)


@WEIGHTINGS.register(
    "curriculum",
    help="the guide's curriculum heuristic (not from a paper): low-loss samples first, then uniform, then high-loss",
)
class Curriculum(SampleWeighting):
    """First third of training: w ∝ exp(-L/median L) (the guide calls low-loss samples "easy", where LoReUn calls
    them hard); middle third uniform; last third w ∝ exp(+L/median L)."""

    def weights(self, per_sample_nll, indices, step, total_steps):
        progress = step / max(total_steps, 1)
        if 1 / 3 <= progress < 2 / 3:
            return torch.ones_like(per_sample_nll)
        sign = -1.0 if progress < 1 / 3 else 1.0
        return normalised(sign * per_sample_nll / per_sample_nll.median().clamp_min(1e-6))


class Product(SampleWeighting):
    """Several weightings at once: their weights multiplied, then renormalised to mean 1."""

    def __init__(self, parts: list[SampleWeighting]):
        self.parts = parts

    def prepare(self, frozen_losses):
        for part in self.parts:
            part.prepare(frozen_losses)

    def weights(self, per_sample_nll, indices, step, total_steps):
        w = torch.ones_like(per_sample_nll)
        for part in self.parts:
            w = w * part.weights(per_sample_nll, indices, step, total_steps)
        return w / w.mean().clamp_min(1e-12)
