"""Retain objectives: the loss a retain batch is minimised under.

`kl` is mmie.py's retain step and the default: KL(P_base || P_model) to the frozen original model (the adapter
disabled), summed over real tokens and the vocabulary and divided by the batch size ("batchmean"), so the adapter
is pulled back towards the model it started from rather than fine-tuned on the retain text. `nll` is gradient
difference: plain NLL on the retain text, which lowers its perplexity below the original's (a utility "better
than the original" that is an artefact of training on the retain distribution).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from trainables.methods.registry import RETAIN_OBJECTIVES, MmieForm, Piece

# torch is imported where a piece computes, not here: registering the pieces (names, knobs, help) must not load it,
# since the command line lists and validates them without it (tests/test_cli_imports.py).
if TYPE_CHECKING:
    import torch


@RETAIN_OBJECTIVES.contract
class RetainObjective(Piece):
    """The loss of a retain batch. Life cycle, as the Unlearner drives it:

    - built once per trial by `RETAIN_OBJECTIVES.build(name, hparams, context)` (its knobs as its constructor's
      keyword arguments, the context not read), the name the variant's or the study's (`retain_objectives`);
    - on every retain update (the optimiser scheme's "retain" phases: one or more per step), after the training
      forward pass: `loss(logits, labels, base_logits)` once. `labels` mark padding -100; `base_logits()` runs the
      frozen model on the same batch (the adapter disabled, no gradient) and costs a forward pass, so only an
      objective with `uses_reference` calls it. The result, plus the adapter's penalty, is backpropagated.
    It keeps no state between updates: nothing of it is checkpointed.
    """

    uses_reference = False  # whether it needs the frozen model's logits on the retain batch

    @abstractmethod
    def loss(self, logits: torch.Tensor, labels: torch.Tensor, base_logits: Callable[[], torch.Tensor]):
        """The scalar to minimise."""


@RETAIN_OBJECTIVES.register(
    "kl",
    help="KL(P_base || P_model) to the frozen original model over real tokens, batchmean (mmie.py's retain step)",
    mmie=MmieForm(),
)
class KLToBase(RetainObjective):
    uses_reference = True

    def loss(self, logits, labels, base_logits):
        return kl_to_base(logits, base_logits(), labels != -100)


def kl_to_base(logits: torch.Tensor, base: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """sum over real positions and the vocabulary of p_base (log p_base - log p_model), over the batch size.

    mmie.py sums over padded positions too (its KL counts pads); here a position counts only where the attention
    mask is 1, so the loss does not depend on how a batch happened to be padded."""
    import torch.nn.functional as F

    log_p = F.log_softmax(logits.float(), dim=-1)
    log_q = F.log_softmax(base.float(), dim=-1)
    per_position = (log_q.exp() * (log_q - log_p)).sum(dim=-1)
    return (per_position * real).sum() / logits.shape[0]


@RETAIN_OBJECTIVES.register(
    "nll",
    help="NLL on the retain batch, mean per token (gradient difference)",
    mmie=MmieForm(missing="mmie.py's retain step is always KL to the base model (retain objective kl)"),
)
class RetainNLL(RetainObjective):
    def loss(self, logits, labels, base_logits):
        from trainables.metrics.core import token_nll

        nll_sum, n_tokens = token_nll(logits, labels)
        return nll_sum.sum() / n_tokens.sum().clamp_min(1)
