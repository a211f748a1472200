"""The sine-bounded LoRA adapter of Stable Forgetting (arXiv 2509.24166, "GD+Sine").

The paper keeps the gradient-difference loss and bounds the adapter instead: each MLP projection W gets
ΔW = sin(ω·BA)/g, so every entry of ΔW stays within ±1/g however long gradient ascent runs. ω (frequency) and
g (gain) are its knobs; the paper's exact defaults could not be verified, so the defaults here (ω = 10, g = 10,
an initial slope ω/g = 1 like a LoRA scale of 1) are ours, and both are searched.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from trainables.methods.adapters import Adapter
from trainables.methods.registry import ADAPTERS, Knob, MmieForm

# torch is imported where the adapter builds or runs its modules (trainables.methods.adapter_layers), not here:
# registering the adapter must not load it, since the command line lists and validates pieces without it.
if TYPE_CHECKING:
    from trainables.methods.adapter_layers import SineLinear

MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


@ADAPTERS.register(
    "sine_lora",
    knobs=(
        Knob("rank", 8, choices=(4, 8, 16), searched=False, help="rank of B and A"),
        Knob("omega", 10.0, 1.0, 100.0, log=True, help="sine frequency ω"),
        Knob("gain", 10.0, 1.0, 100.0, log=True, help="gain g: every ΔW entry stays within ±1/g"),
    ),
    help="Stable Forgetting's sine-bounded LoRA on the MLP projections: ΔW = sin(ω·BA)/g",
    mmie=MmieForm(missing="mmie.py has no sine-bounded adapter (its LoRA is plain, on q/k/v/o)"),
)
class SineLoRA(Adapter):
    def __init__(self, rank: int, omega: float, gain: float):
        self.rank, self.omega, self.gain = int(rank), omega, gain
        self.layers: dict[str, SineLinear] = {}

    def attach(self, model):
        from trainables.methods.adapter_layers import SineLinear

        targets = [(n, m) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in MLP_PROJECTIONS]
        if not targets:
            raise ValueError(f"sine_lora: the model has no MLP projections named {MLP_PROJECTIONS}")
        for name, module in targets:
            parent_name, _, child = name.rpartition(".")
            layer = SineLinear(module, self.rank, self.omega, self.gain)
            setattr(model.get_submodule(parent_name), child, layer)
            self.layers[name] = layer
        return model

    def parameters(self):
        return [p for layer in self.layers.values() for p in (layer.sine_A, layer.sine_B)]

    @contextmanager
    def disabled(self):
        for layer in self.layers.values():
            layer.enabled = False
        try:
            yield
        finally:
            for layer in self.layers.values():
                layer.enabled = True

    def state_dict(self):
        return {f"{n}.{p}": getattr(layer, p).detach().clone() for n, layer in self.layers.items() for p in ("sine_A", "sine_B")}

    def load_state_dict(self, state):
        import torch

        mine = self.state_dict()
        if set(state) != set(mine):
            raise KeyError(f"adapter checkpoint does not match the adapter: {sorted(set(state) ^ set(mine))[:5]}")
        with torch.no_grad():
            for key, value in state.items():
                name, _, param = key.rpartition(".")
                getattr(self.layers[name], param).copy_(value)
