"""Degenerate output is not forgetting: when a trial's forget continuations are not language, it is flagged.

Both forget measures reward a broken model: the forget-language token mass is 0 for a model that puts all its mass
on one neutral token (a space, the danda, end-of-text), and language ID restricted to the study's languages finds
no language in empty, punctuation-only or byte-garbage text and labels Latin gibberish as English. So at every full
evaluation the sampled continuations of held-out forget prompts are described as well as counted:

- `es_none`: share in which language ID finds no language;
- `es_retain_language`: share labelled as the retain language (a model that forgot should fall back to it);
- `forget_cont_nll`: the frozen base model's per-token NLL of the continuations as text on their own (fluency; given
  the forget prompt, the base would penalise any switch of language, fluent or not), and `forget_cont_nll_ratio`,
  that over the base model's NLL of its own continuations of the same prompts, measured once per run (so the rule
  does not depend on the model's or the tokenizer's scale);
- `forget_cont_distinct`: distinct tokens / tokens per continuation (repetition loops score low);
- `forget_entropy`: mean next-token entropy (nats) on the held-out forget lines (a collapsed model is near 0).

The rule: a trial is `degenerate` when ANY set threshold is crossed: es_none > max_no_language, forget_cont_nll_ratio
> max_nll_ratio, forget_cont_distinct < min_distinct, or forget_entropy < min_entropy. Each threshold is set in the
study config (`degenerate:`) and None switches it off. A degenerate trial is kept off the Pareto front by default
and never picked by export (study.eligibility).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DegenerateRule:
    # Defaults measured on the embedded model (docs/metrics.md, docs/benchmarks.md): healthy and merely damaged
    # trials stay well inside each of them; a LoRA emitting one token or Latin gibberish after forget prompts
    # crosses them.
    max_no_language: float | None = 0.5
    max_nll_ratio: float | None = 2.5
    min_distinct: float | None = 0.3
    min_entropy: float | None = 0.05

    def reasons(self, metrics: dict) -> list[str]:
        """The thresholds `metrics` cross (empty: not degenerate). A metric that is missing or nan crosses none,
        except the fluency ratio of continuations that are all empty, which es_none catches."""
        out = []
        checks = (("es_none", self.max_no_language, 1), ("forget_cont_nll_ratio", self.max_nll_ratio, 1),
                  ("forget_cont_distinct", self.min_distinct, -1), ("forget_entropy", self.min_entropy, -1))
        for name, threshold, sign in checks:
            value = metrics.get(name)
            if threshold is None or value is None or not math.isfinite(value):
                continue
            if sign * (value - threshold) > 0:
                out.append(f"{name} {value:.3g} {'>' if sign > 0 else '<'} {threshold:g}")
        return out

    def is_degenerate(self, metrics: dict) -> bool:
        return bool(self.reasons(metrics))
