"""mmie.py's ReFT adapter (its `train_reft`): h <- h + s·B(A h) on the output of each chosen decoder layer, at
every token, optionally gated by sigmoid(g). It is not LoReFT (no orthonormal subspace, no replaced projection):
a plain low-rank residual edit. A and B start at N(0, 1e-3²), so the model starts almost unchanged; s = -1 with
`--reft_negative`. Gated, the edit is scaled by sigmoid(g_raw) (g_raw starts at 0) and mmie.py adds
reft_gate_l1·|g_raw| to the loss, which pulls the gate towards 0.5, not towards closed.
"""

from __future__ import annotations

from trainables.methods.loreft import HookedInterventions
from trainables.methods.registry import ADAPTERS, Knob, MmieForm
from trainables.model.decoder_layers import LayerChoices

_ON_OFF = ("off", "on")


def _flags(v: dict) -> list[str]:
    layers = [int(i) for i in str(v["layers"]).split(",")]
    flags = ["--rank", str(v["rank"]), "--force_layers", *map(str, layers), "--select_top_k", str(len(layers)),
             "--min_layer", str(min(layers))]
    if v["reft_gated"] == "on":
        flags += ["--reft_gated", "--reft_gate_l1", str(v["reft_gate_l1"])]
    if v["reft_negative"] == "on":
        flags.append("--reft_negative")
    return flags


@ADAPTERS.register(
    "reft",
    knobs=(
        Knob("rank", 8, choices=(2, 4, 8, 16), searched=False, help="rank r of A and B (mmie.py's --rank)"),
        Knob("layers", "0,1", model_choices=LayerChoices(several=True), searched=False,
             help="decoder layers whose output is edited, comma-separated (mmie.py's --force_layers)"),
        Knob("reft_gated", "off", choices=_ON_OFF, searched=False, help="scale the edit by sigmoid(g) (--reft_gated)"),
        Knob("reft_gate_l1", 1e-3, 1e-5, 1e-1, log=True, searched=False, help="L1 on |g_raw| (--reft_gate_l1)"),
        Knob("reft_negative", "off", choices=_ON_OFF, searched=False, help="s = -1 (--reft_negative)"),
    ),
    help="mmie.py's ReFT: h + s·B(A h) at the chosen layers' outputs, every token, optionally gated",
    mmie=MmieForm(flags=_flags, steps_flag="--reft_steps"),
)
class MmieReFT(HookedInterventions):
    name = "reft"

    def __init__(self, rank: int, layers: str, reft_gated: str, reft_gate_l1: float, reft_negative: str):
        super().__init__(layers)
        self.rank = int(rank)
        self.gated = reft_gated == "on"
        self.l1 = float(reft_gate_l1)
        self.sign = -1.0 if reft_negative == "on" else 1.0

    def intervention(self, dim):
        from trainables.methods.adapter_layers import ResidualLowRank

        return ResidualLowRank(dim, self.rank, self.sign, self.gated)

    def penalty(self):
        if not self.gated:
            return None
        return self.l1 * sum(m.gate.abs().sum() for m in self.interventions.values())
