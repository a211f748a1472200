"""Sample weightings: how much each forget sample counts in a batch's loss. Weights always average 1."""

from __future__ import annotations

import torch

from .registry import WEIGHTINGS


class SampleWeighting:
    def weights(self, per_sample_nll: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        raise NotImplementedError


@WEIGHTINGS.register("uniform", help="every forget sample counts the same")
class Uniform(SampleWeighting):
    def weights(self, per_sample_nll, step, total_steps):
        return torch.ones_like(per_sample_nll)
