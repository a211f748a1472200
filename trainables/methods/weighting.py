"""Sample weightings: how much each forget sample counts in a batch's loss, or which samples make the batch.

Weights always average 1 over the batch, so a weighting redistributes the forget gradient without shrinking it (the
adaptive-unlearning proposal's weights, docs/methods.md, summed to 1, which divides the forget gradient by the batch size). mmie.py's forms of the same
ideas (`--forget_reweight`, `--use_curriculum`) do not weight a batch: they choose its lines, by sampling with
probabilities from the current model's losses; they implement `draw` and keep uniform weights.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from trainables.methods.registry import WEIGHTINGS, Knob, MmieForm, Piece

# torch is imported where a weighting computes, not here: registering the pieces (names, knobs, help) must not load
# it, since the command line lists and validates them without it (tests/test_cli_imports.py).
if TYPE_CHECKING:
    import torch

# Callable scoring forget training lines (by index) with the current model: mean NLL per token, no gradient.
Scorer = Callable[[list[int]], "torch.Tensor"]


@WEIGHTINGS.contract
class SampleWeighting(Piece):
    """How much each forget line counts, or which lines a forget batch holds. Life cycle, as the Unlearner drives it:

    - built once per trial by `WEIGHTINGS.build(name, hparams, context)` (its knobs as its constructor's keyword
      arguments, the context not read), one per name in the variant's `weightings`; several are combined by
      `Product`;
    - `prepare(frozen_losses)` once, at the end of the Unlearner's set-up, before the first step (again in a
      trial restored from a checkpoint: the weighting itself is not checkpointed, it recomputes what it needs);
    - on every forget update (one per step): `draw(...)` once, before the batch is built (None: the default
      uniform draw; at most one piece of a variant may choose the lines), then, after the training forward pass,
      `weights(per_sample_nll, indices, step, total_steps)` once. `per_sample_nll` is each line's mean NLL per
      token under the current model (detached), `indices` the lines drawn, `step` the 0-based step of
      `total_steps`. The weights multiply the forget objective's per-sample losses: one per line, mean 1.
    """

    def prepare(self, frozen_losses: Callable[[], torch.Tensor]) -> None:
        """Called once before training; `frozen_losses()` scores every forget training line with the frozen model
        (costly: only weightings that need it call it)."""

    def draw(self, n_lines: int, batch_size: int, rng: torch.Generator, step: int, total_steps: int,
             score: Scorer) -> list[int] | None:
        """The forget lines (indices) of this step's batch, or None for the default uniform draw."""
        return None

    @abstractmethod
    def weights(self, per_sample_nll: torch.Tensor, indices: torch.Tensor, step: int, total_steps: int):
        """One weight per line of the batch, mean 1."""


def normalised(logits: torch.Tensor) -> torch.Tensor:
    """softmax(logits) rescaled to mean 1."""
    import torch

    return torch.softmax(logits, dim=0) * logits.numel()


@WEIGHTINGS.register("uniform", help="every forget sample counts the same", mmie=MmieForm())
class Uniform(SampleWeighting):
    def weights(self, per_sample_nll, indices, step, total_steps):
        import torch

        return torch.ones_like(per_sample_nll)


_TEMPERATURE = Knob("temperature", 1.0, 0.1, 10.0, log=True,
                    help="LoReUn's tau, fixed, in the loss's units (mean NLL per token): w ∝ exp(-L/tau)")
_LOREUN_IN_MMIE = MmieForm(missing="mmie.py's --forget_reweight samples higher-loss lines more often (variant "
                                   "forget_reweight); LoReUn's exp(-L/tau) weights have no flag")


@WEIGHTINGS.register(
    "loreun",
    knobs=(_TEMPERATURE,),
    help="LoReUn (arXiv 2507.22499), dynamic: w_i ∝ exp(-L_i/tau) from the current model's training forward pass",
    mmie=_LOREUN_IN_MMIE,
)
class LoReUnDynamic(SampleWeighting):
    """Lower loss => more weight: well-memorised samples are the hard ones to forget. The losses are the training
    forward pass's own, so the weighting costs no extra pass over the forget set. tau is fixed, as in the paper:
    a batch-relative tau (scaled by the batch's median loss) would make the weights blind to the loss's scale."""

    def __init__(self, temperature: float):
        self.tau = temperature

    def weights(self, per_sample_nll, indices, step, total_steps):
        return normalised(-per_sample_nll / self.tau)


@WEIGHTINGS.register(
    "loreun_static",
    knobs=(_TEMPERATURE,),
    help="LoReUn, static: w_i ∝ exp(-L_i/tau) with L_i from the frozen original model, scored once",
    mmie=_LOREUN_IN_MMIE,
)
class LoReUnStatic(SampleWeighting):
    def __init__(self, temperature: float):
        import torch

        self.tau = temperature
        self.losses: torch.Tensor | None = None

    def prepare(self, frozen_losses):
        self.losses = frozen_losses()

    def weights(self, per_sample_nll, indices, step, total_steps):
        losses = self.losses.to(per_sample_nll.device)[indices]
        return normalised(-losses / self.tau)


@WEIGHTINGS.register(
    "curriculum",
    help="a curriculum heuristic (docs/methods.md; not from a paper): low-loss samples first, then uniform, then high-loss",
    mmie=MmieForm(missing="mmie.py's --use_curriculum samples lines by softmax(-/+L) at temperature 1 (variant "
                          "use_curriculum); these median-scaled weights have no flag"),
)
class Curriculum(SampleWeighting):
    """First third of training: w ∝ exp(-L/median L) (low-loss samples are "easy" here, where LoReUn calls them
    hard); middle third uniform; last third w ∝ exp(+L/median L)."""

    def weights(self, per_sample_nll, indices, step, total_steps):
        import torch

        progress = step / max(total_steps, 1)
        if 1 / 3 <= progress < 2 / 3:
            return torch.ones_like(per_sample_nll)
        sign = -1.0 if progress < 1 / 3 else 1.0
        return normalised(sign * per_sample_nll / per_sample_nll.median().clamp_min(1e-6))


def _draw(probabilities: torch.Tensor, batch_size: int, rng: torch.Generator) -> list[int]:
    import torch

    return torch.multinomial(probabilities, batch_size, replacement=True, generator=rng).tolist()


@WEIGHTINGS.register(
    "forget_reweight",
    help="mmie.py's --forget_reweight: each forget step draws its batch from the first 128 forget lines with "
         "probability ∝ (L - min L)/(max L - min L) under the current model (higher loss, more often)",
    mmie=MmieForm(flags=lambda v: ["--forget_reweight"], exclusive="mmie.py's batch sampler"),
)
class ForgetReweight(SampleWeighting):
    """The opposite direction to LoReUn (which favours low-loss lines), and the lowest-loss line is never drawn."""

    pool = 128

    def draw(self, n_lines, batch_size, rng, step, total_steps, score):
        import torch

        losses = score(list(range(min(n_lines, self.pool))))
        spread = losses.max() - losses.min()
        if not spread > 0:
            return _draw(torch.ones_like(losses), batch_size, rng)
        return _draw((losses - losses.min()) / spread, batch_size, rng)

    def weights(self, per_sample_nll, indices, step, total_steps):
        import torch

        return torch.ones_like(per_sample_nll)


@WEIGHTINGS.register(
    "use_curriculum",
    knobs=(
        Knob("curriculum_s1", 0.33, 0.05, 0.6, help="end of the easy-first phase (share of training)"),
        Knob("curriculum_s2", 0.66, 0.4, 0.95, help="end of the uniform phase (share of training)"),
    ),
    help="mmie.py's --use_curriculum: draw the batch from the first 256 forget lines by softmax(-L) (low loss "
         "first), then uniformly, then by softmax(+L), L the current model's losses, temperature 1",
    mmie=MmieForm(flags=lambda v: ["--use_curriculum", "--curriculum_stages", str(v["curriculum_s1"]),
                                   str(v["curriculum_s2"])], exclusive="mmie.py's batch sampler"),
)
class MmieCurriculum(SampleWeighting):
    pool = 256

    def __init__(self, curriculum_s1: float, curriculum_s2: float):
        self.stages = (curriculum_s1, curriculum_s2)

    def draw(self, n_lines, batch_size, rng, step, total_steps, score):
        import torch

        # mmie.py's phase = (step + 1) / steps on its counter, where forget steps are the even ones of 2 per ours.
        phase = (2 * step + 1) / (2 * max(total_steps, 1))
        pool = list(range(min(n_lines, self.pool)))
        if self.stages[0] <= phase < self.stages[1]:
            return _draw(torch.ones(len(pool)), batch_size, rng)
        losses = score(pool)
        return _draw(torch.softmax(-losses if phase < self.stages[0] else losses, dim=0), batch_size, rng)

    def weights(self, per_sample_nll, indices, step, total_steps):
        import torch

        return torch.ones_like(per_sample_nll)


class Product(SampleWeighting):
    """Several weightings at once: their weights multiplied, then renormalised to mean 1."""

    def __init__(self, parts: list[SampleWeighting]):
        self.parts = parts

    def prepare(self, frozen_losses):
        for part in self.parts:
            part.prepare(frozen_losses)

    def draw(self, n_lines, batch_size, rng, step, total_steps, score):
        drawn = [d for d in (p.draw(n_lines, batch_size, rng, step, total_steps, score) for p in self.parts)
                 if d is not None]
        if len(drawn) > 1:
            raise ValueError("two weightings both choose the batch's lines; combine at most one sampler")
        return drawn[0] if drawn else None

    def weights(self, per_sample_nll, indices, step, total_steps):
        import torch

        w = torch.ones_like(per_sample_nll)
        for part in self.parts:
            w = w * part.weights(per_sample_nll, indices, step, total_steps)
        return w / w.mean().clamp_min(1e-12)
