"""Forget objectives: the loss a forget batch is minimised under.

Each takes the per-sequence summed NLL under the current model (and, for NPO, under the frozen reference) and the
number of predicted tokens. `per_sample` gives one loss per sample (weightings need per-sample values); `loss`
combines them with the batch's sample weights into the scalar that is minimised. mmie.py's forms of GA, NPO and the
bounded loss work on the batch's mean token NLL (Hugging Face's mean cross-entropy), so they are registered beside
the papers' per-sequence forms. Padding never counts (mmie.py counts it: see docs/mmie.md).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

from trainables.methods.registry import OBJECTIVES, Knob, MmieForm, Piece

# torch is imported where a piece computes, not here: registering the pieces (names, knobs, help) must not load it,
# since the command line lists and validates them without it (tests/test_cli_imports.py).
if TYPE_CHECKING:
    import torch


@OBJECTIVES.contract
class ForgetObjective(Piece):
    """The loss of a forget batch. Life cycle, as the Unlearner drives it:

    - built once per trial, after the adapter is attached: `OBJECTIVES.build(name, hparams, context)` passes the
      piece's knobs to its constructor as keyword arguments (`from_knobs`; the context is not read);
    - on every forget update (one per step, whatever the optimiser scheme), after the training forward pass:
      `loss(nll_sum, n_tokens, ref_nll_sum, weights)` once. `nll_sum` and `n_tokens` are per sequence (padding
      excluded); `ref_nll_sum` is the same NLL under the frozen model (the adapter disabled, no gradient) when
      `uses_reference` is true, else None; `weights` come from the variant's sample weighting (mean 1). The result,
      plus the adapter's penalty, is backpropagated;
    - `per_sample` is what the default `loss` weights and averages; an objective defined per batch (mmie.py's)
      overrides `loss` and makes `per_sample` raise.
    It keeps no state between updates: nothing of it is checkpointed.
    """

    uses_reference = False  # whether it needs the frozen model's NLL (the adapter disabled)

    @abstractmethod
    def per_sample(self, nll_sum: torch.Tensor, n_tokens: torch.Tensor, ref_nll_sum: torch.Tensor | None):
        """One loss per sequence (a tensor of the batch's size), to be minimised."""

    def loss(self, nll_sum, n_tokens, ref_nll_sum, weights: torch.Tensor) -> torch.Tensor:
        return (weights * self.per_sample(nll_sum, n_tokens, ref_nll_sum)).mean()


def _batch_mean_nll(nll_sum: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """The batch's mean NLL per token: Hugging Face's mean cross-entropy, which mmie.py's objectives use."""
    return nll_sum.sum() / n_tokens.sum().clamp_min(1)


@OBJECTIVES.register(
    "ga",
    help="gradient ascent: minimise -NLL(forget), NLL the batch's mean per token (as mmie.py's ga)",
    mmie=MmieForm(flags=lambda v: ["--forget_obj", "ga"]),
)
class GradientAscent(ForgetObjective):
    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        # Dividing by the batch's mean token count (not each sequence's own) makes the uniform-weight mean exactly
        # the batch's mean NLL per token, mmie.py's loss; sample weights still redistribute it.
        return -nll_sum / n_tokens.float().mean().clamp_min(1)


@OBJECTIVES.register(
    "npo",
    knobs=(Knob("beta", 0.1, 0.01, 1.0, log=True, help="NPO inverse temperature; beta -> 0 approaches GA"),),
    help="Negative Preference Optimisation (Zhang et al. 2024), reference = the model with its adapter disabled",
    mmie=MmieForm(flags=lambda v: ["--forget_obj", "npo"],
                  missing="mmie.py's npo takes the batch's mean token NLL with beta fixed at 0.1 (variant mmie_npo); "
                          "the paper's per-sequence log-likelihoods and a searched beta have no flag"),
)
class NegativePreference(ForgetObjective):
    """L = -(2/beta) log sigmoid(-beta * (log pi_theta(y|x) - log pi_ref(y|x))), log-likelihoods summed over y."""

    uses_reference = True

    def __init__(self, beta: float):
        self.beta = beta

    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        import torch.nn.functional as F

        log_ratio = ref_nll_sum - nll_sum  # log pi_theta - log pi_ref
        return -(2.0 / self.beta) * F.logsigmoid(-self.beta * log_ratio)


@OBJECTIVES.register(
    "mmie_npo",
    help="mmie.py's npo: the NPO loss on the batch's mean token NLL, beta = 0.1, reference = the adapter disabled",
    mmie=MmieForm(flags=lambda v: ["--forget_obj", "npo"]),
)
class MmieNegativePreference(ForgetObjective):
    """-(2/b) log sigmoid(-b (NLL_ref - NLL_model)) once per batch, NLLs the batch's mean per token, b = 0.1."""

    uses_reference = True
    beta = 0.1  # hard-coded in mmie.py

    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        raise TypeError("mmie_npo is defined per batch, not per sample; it takes no sample weights")

    def loss(self, nll_sum, n_tokens, ref_nll_sum, weights):
        import torch.nn.functional as F

        log_ratio = _batch_mean_nll(ref_nll_sum, n_tokens) - _batch_mean_nll(nll_sum, n_tokens)
        return -(2.0 / self.beta) * F.logsigmoid(-self.beta * log_ratio)


@OBJECTIVES.register(
    "bounded",
    knobs=(Knob("bound", 5.0, 0.5, 20.0, log=True,
                help="B in -B*tanh(NLL_i/B), NLL_i a line's mean per token; bites only when B is near it"),),
    help="tanh-bounded forget loss per sample (a heuristic, docs/methods.md; not the Stable Forgetting paper's method)",
    mmie=MmieForm(missing="mmie.py bounds the batch's mean NLL, not each sample's (variant mmie_bounded)"),
)
class TanhBounded(ForgetObjective):
    """L_i = -B * tanh(NLL_i / B): |L_i| < B, and dL/dNLL = -sech^2(NLL/B) shrinks to 0 as NLL grows past B.

    Stable Forgetting (arXiv 2509.24166) bounds the adapter instead (see the sine_lora adapter); this bounds the
    loss, as the adaptive-unlearning proposal did (docs/methods.md). With B = 10 and NLL of 1-5 it is nearly plain GA.
    """

    def __init__(self, bound: float):
        self.bound = bound

    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        import torch

        return -self.bound * torch.tanh(nll_sum / n_tokens.clamp_min(1) / self.bound)


@OBJECTIVES.register(
    "mmie_bounded",
    knobs=(Knob("bounded_forget_bound", 10.0, 0.5, 20.0, log=True, help="mmie.py's B in -B*tanh(NLL/B)"),),
    help="mmie.py's bounded forget loss: -B*tanh(NLL/B) on the batch's mean token NLL",
    mmie=MmieForm(missing="mmie.py implements it but its parser rejects --forget_obj bounded (choices ga, npo); "
                          "only --auto selects it, and --auto changes much else"),
)
class MmieTanhBounded(ForgetObjective):
    def __init__(self, bounded_forget_bound: float):
        self.bound = bounded_forget_bound

    def per_sample(self, nll_sum, n_tokens, ref_nll_sum=None):
        raise TypeError("mmie_bounded is defined per batch, not per sample; it takes no sample weights")

    def loss(self, nll_sum, n_tokens, ref_nll_sum, weights):
        import torch

        return -self.bound * torch.tanh(_batch_mean_nll(nll_sum, n_tokens) / self.bound)
