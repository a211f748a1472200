"""The named variants (presets) a study can search. Each line composes registered pieces.

The ladder of docs/methods.md, each step on its own over GA so a study can tell whether it helps, then all of
them together; `sine_bounded` is the Stable Forgetting paper's own method (bound the adapter, not the loss).
mmie.py's own forms of the same ideas (named after its flags) sit beside them, so a study can compare mmie.py's
version of an idea with the paper's: `forget_reweight`, `use_curriculum`, `mmie_npo`, `mmie_bounded`; its
`--dual_optimizer` is `dualoptim` at retain_freq 1, and its ReFT is the adapter `reft`. Every training variant's
retain step is the study's retain objective (default `kl`, mmie.py's) unless the variant names one.
The gate-only variants measure an SAE gate on the base model (no training); `<variant>+<gate>` puts a gate on top
of any training variant (`adaptive+dsg` ends the ladder).
"""

from __future__ import annotations

# Importing the piece modules registers them.
from trainables.methods import (  # noqa: F401
    adapters,
    loreft,
    mmie_reft,
    objectives,
    optimizers,
    retain_objectives,
    sine_lora,
    weighting,  # noqa: F401
)
from trainables.methods.gates import sae_gates  # noqa: F401
from trainables.methods.registry import Variant, register_variant

register_variant(Variant("ga", objective="ga", help="gradient ascent on forget (mmie.py's default arm)"))
register_variant(Variant("npo", objective="npo", help="NPO on forget (the paper's per-sequence form, beta searched)"))
register_variant(Variant("bounded", objective="bounded", help="GA with a tanh-bounded loss per sample (heuristic)"))
register_variant(Variant("loreun", objective="ga", weightings=("loreun",), help="GA with dynamic LoReUn weights"))
register_variant(Variant("dualoptim", objective="ga", optimizer="dual", help="GA with DualOptim's two Adams"))
register_variant(
    Variant("curriculum", objective="ga", weightings=("curriculum",), help="GA with a loss curriculum (heuristic)")
)
register_variant(
    Variant(
        "adaptive",
        objective="bounded",
        weightings=("loreun", "curriculum"),
        optimizer="dual",
        help="bounded loss + LoReUn + DualOptim + curriculum: the full adaptive recipe (docs/methods.md)",
    )
)
register_variant(
    Variant("sine_bounded", objective="ga", adapter="sine_lora", help="GD+Sine (Stable Forgetting): sine-bounded LoRA")
)
register_variant(Variant("sae_gate", objective=None, gate="sae_gate", help="mmie.py's static SAE gate alone, no training"))
register_variant(Variant("dsg", objective=None, gate="dsg", help="Dynamic SAE Guardrails alone, no training"))
register_variant(Variant("mmie_npo", objective="mmie_npo", help="mmie.py's npo (batch-mean NLL, beta 0.1)"))
register_variant(Variant("mmie_bounded", objective="mmie_bounded", help="mmie.py's bounded loss (batch-mean NLL)"))
register_variant(Variant("forget_reweight", objective="ga", weightings=("forget_reweight",),
                         help="GA with mmie.py's --forget_reweight (higher-loss lines drawn more often)"))
register_variant(Variant("use_curriculum", objective="ga", weightings=("use_curriculum",),
                         help="GA with mmie.py's --use_curriculum (lines drawn by softmax(-/+L) per phase)"))
