"""Forget objectives: the loss a forget batch is minimised under, per sample (weightings need per-sample values).

Each takes the per-sequence summed NLL under the current model (and, for NPO, under the frozen reference) and the
number of predicted tokens, and returns one loss per sample. Retain batches always use plain NLL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import OBJECTIVES, Knob


class ForgetObjective:
    uses_reference = False  # whether it needs the frozen model's NLL (the adapter disabled)

    def per_sample(self, nll_sum: torch.Tensor, n_tokens: torch.Tensor, ref_nll_sum: torch.Tensor | None):
        raise NotImplementedError


@OBJECTIVES.register("ga", help="gradient ascent: minimise -NLL(forget)")
class GradientAscent(ForgetObjective):
    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        return -nll_sum / n_tokens.clamp_min(1)


@OBJECTIVES.register(
    "npo",
    knobs=(Knob("beta", 0.1, 0.01, 1.0, log=True, help="NPO inverse temperature; beta -> 0 approaches GA"),),
    help="Negative Preference Optimisation (Zhang et al. 2024), reference = the model with its adapter disabled",
)
class NegativePreference(ForgetObjective):
    """L = -(2/beta) log sigmoid(-beta * (log pi_theta(y|x) - log pi_ref(y|x))), log-likelihoods summed over y."""

    uses_reference = True

    def __init__(self, beta: float):
        self.beta = beta

    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        log_ratio = ref_nll_sum - nll_sum  # log pi_theta - log pi_ref
        return -(2.0 / self.beta) * F.logsigmoid(-self.beta * log_ratio)


@OBJECTIVES.register(
    "bounded",
    knobs=(Knob("bound", 5.0, 0.5, 20.0, log=True, help="B in -B*tanh(NLL/B); only bites when B is near the NLL"),),
    help="the guide's tanh-bounded forget loss (a heuristic, not the Stable Forgetting paper's method)",
)
class TanhBounded(ForgetObjective):
    """L_i = -B * tanh(NLL_i / B): |L_i| < B, and dL/dNLL = -sech^2(NLL/B) shrinks to 0 as NLL grows past B.

    Stable Forgetting (arXiv 2509.24166) bounds the adapter instead (see the sine_lora adapter); this bounds the
    loss, as the guide proposed. With B = 10 and NLL of 1-5 it is nearly plain GA.
    """

    def __init__(self, bound: float):
        self.bound = bound

    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        return -self.bound * torch.tanh(nll_sum / n_tokens.clamp_min(1) / self.bound)
