"""The torch modules the hooked and sine adapters put into a model, one per edited layer: LoReFT's intervention
(trainables.methods.loreft), mmie.py's ReFT residual edit (trainables.methods.mmie_reft) and the sine-bounded
linear layer (trainables.methods.sine_lora). Each adapter's module docstring gives its formula; they are here, apart
from the registered adapters, because defining an nn.Module needs torch and registering an adapter must not (the
command line lists and validates the pieces without loading torch: tests/test_cli_imports.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import orthogonal


class LowRankIntervention(nn.Module):
    """Φ(h) for one layer; R is `rotate.weight` (kept orthonormal), W and b are `learned`'s weight and bias."""

    def __init__(self, dim: int, rank: int):
        super().__init__()
        # Householder map as in the paper's code (torch's default for r < d), but without the trivialization, whose
        # d×d `base` buffer would cost d² floats per layer in memory and in every checkpoint.
        self.rotate = orthogonal(nn.Linear(dim, rank, bias=False), use_trivialization=False)
        self.learned = nn.Linear(dim, rank)
        # The paper starts from a random W, which is not the identity. We start from W = R and b = 0, so W h − R h = 0
        # and Φ is exactly the identity at step 0: the adapted model is the original model until it is trained.
        with torch.no_grad():
            self.learned.weight.copy_(self.rotate.weight)
            self.learned.bias.zero_()

    def pin_signs(self) -> None:
        # The Householder map reads ±1 signs off the diagonal of its raw tensor through .int(), which gets no gradient
        # but is pulled by weight decay: any decay would truncate 0.99 to 0 and zero rows of R. Snap it back to ±1.
        with torch.no_grad():
            diagonal = self.rotate.parametrizations.weight.original.diagonal()
            diagonal.copy_(torch.where(diagonal < 0, -1.0, 1.0))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.pin_signs()
        x = h.to(self.learned.weight.dtype)  # compute in float32, like peft's LoRA, whatever the model's dtype
        rotate = self.rotate.weight  # the parametrization recomputes R on every access: read it once
        # W h + b − R h as one product with (W − R), which is exactly zero at init (no rounding from two products).
        delta = F.linear(x, self.learned.weight - rotate, self.learned.bias) @ rotate
        return h + delta.to(h.dtype)


class ResidualLowRank(nn.Module):
    def __init__(self, dim: int, rank: int, sign: float, gated: bool):
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)  # A: d -> r
        self.up = nn.Linear(rank, dim, bias=False)  # B: r -> d
        nn.init.normal_(self.down.weight, std=1e-3)
        nn.init.normal_(self.up.weight, std=1e-3)
        self.sign = sign
        self.gate = nn.Parameter(torch.zeros(1)) if gated else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        delta = self.up(self.down(h.to(self.down.weight.dtype)))
        if self.gate is not None:
            delta = delta * torch.sigmoid(self.gate)
        return h + (self.sign * delta).to(h.dtype)


class SineLinear(nn.Module):
    """base(x) + x · (sin(ω·BA)/g)ᵀ; B starts at zero, so the layer starts as the base layer."""

    def __init__(self, base: nn.Linear, rank: int, omega: float, gain: float):
        super().__init__()
        self.base = base
        self.omega, self.gain, self.enabled = omega, gain, True
        self.sine_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        nn.init.kaiming_uniform_(self.sine_A, a=math.sqrt(5))
        self.sine_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))

    def delta_weight(self) -> torch.Tensor:
        return torch.sin(self.omega * (self.sine_B @ self.sine_A)) / self.gain

    def forward(self, x):
        out = self.base(x)
        if self.enabled:
            out = out + F.linear(x, self.delta_weight().to(x.dtype))
        return out
