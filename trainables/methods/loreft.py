"""LoReFT: low-rank linear subspace representation finetuning (Wu et al. 2024, "ReFT: Representation Finetuning").

At each chosen decoder layer's output residual stream, at every position, the hidden state h ∈ ℝ^d becomes

    Φ(h) = h + Rᵀ(W h + b − R h),    R ∈ ℝ^{r×d} with orthonormal rows, W ∈ ℝ^{r×d}, b ∈ ℝ^r,

i.e. the projection of h onto the r-dimensional subspace spanned by R's rows is replaced by W h + b. The base model is
untouched: plain forward hooks edit the layers' outputs, and only R, W and b are trained.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

from trainables.methods.adapters import Adapter
from trainables.methods.registry import ADAPTERS, Knob, MmieForm
from trainables.model.decoder_layers import LayerChoices, decoder_layers, hidden_of, with_hidden

# torch is imported where the adapter builds or runs its modules (trainables.methods.adapter_layers), not here:
# registering the adapter must not load it, since the command line lists and validates pieces without it.
if TYPE_CHECKING:
    import torch
    from torch import nn

class HookedInterventions(Adapter):
    """An intervention module per chosen decoder layer, applied to the layer's output by a forward hook; the base
    model is untouched and only the interventions train. Subclasses say what one intervention is."""

    name = ""

    def __init__(self, layers: str):
        from torch import nn

        self.layers = str(layers)  # a YAML override may give a bare int
        self.interventions = nn.ModuleDict()  # keyed by layer index
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        self.enabled = True

    def intervention(self, dim: int) -> nn.Module:
        raise NotImplementedError

    def _indices(self, n: int) -> list[int]:
        if self.layers.strip() == "all":
            return list(range(n))
        indices = [int(i) for i in self.layers.split(",")]
        if not indices or any(not -n <= i < n for i in indices):
            raise ValueError(f"{self.name}: layers {self.layers!r} outside a model with {n} decoder layers")
        return sorted({i % n for i in indices})  # negative indices count from the last layer, as in Python

    def attach(self, model):
        import torch

        self.detach()
        layers = decoder_layers(model)
        dim, device = model.config.hidden_size, next(model.parameters()).device
        for i in self._indices(len(layers)):
            self.interventions[str(i)] = self.intervention(dim).to(device=device, dtype=torch.float32)
            self.handles.append(layers[i].register_forward_hook(partial(self._hook, str(i))))
        return model

    def _hook(self, key: str, module, args, output):
        if not self.enabled:
            return None  # None keeps the layer's output as it is
        return with_hidden(output, self.interventions[key](hidden_of(output)))

    def detach(self) -> None:
        """Remove the hooks; the model is then the original one again. Safe to call twice."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def parameters(self):
        return list(self.interventions.parameters())

    @contextmanager
    def disabled(self):
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous

    def state_dict(self):
        return {name: t.detach().clone() for name, t in self.interventions.state_dict().items()}

    def load_state_dict(self, state):
        mine = self.interventions.state_dict()
        if set(state) != set(mine):
            raise KeyError(f"adapter checkpoint does not match the adapter: {sorted(set(state) ^ set(mine))[:5]}")
        self.interventions.load_state_dict(state, strict=True)


@ADAPTERS.register(
    "loreft",
    knobs=(
        Knob("rank", 4, choices=(1, 2, 4, 8), searched=False, help="LoReFT rank r (dimension of the edited subspace)"),
        Knob(
            "layers",
            "all",
            model_choices=LayerChoices(with_all=True, several=True),
            searched=False,
            help="decoder layers whose output is intervened on: 'all' or comma-separated indices",
        ),
    ),
    help="LoReFT (Wu et al. 2024) on decoder-layer outputs, all positions: h + Rᵀ(Wh + b − Rh); starts as identity",
    mmie=MmieForm(missing="mmie.py's ReFT is h + s·B(A h), not LoReFT (adapter reft)"),
)
class LoReFT(HookedInterventions):
    name = "loreft"

    def __init__(self, rank: int, layers: str):
        super().__init__(layers)
        self.rank = int(rank)

    def intervention(self, dim):
        from trainables.methods.adapter_layers import LowRankIntervention

        return LowRankIntervention(dim, self.rank)
