"""LoReFT: low-rank linear subspace representation finetuning (Wu et al. 2024, "ReFT: Representation Finetuning").

At each chosen decoder layer's output residual stream, at every position, the hidden state h ∈ ℝ^d becomes

    Φ(h) = h + Rᵀ(W h + b − R h),    R ∈ ℝ^{r×d} with orthonormal rows, W ∈ ℝ^{r×d}, b ∈ ℝ^r,

i.e. the projection of h onto the r-dimensional subspace spanned by R's rows is replaced by W h + b. The base model is
untouched: plain forward hooks edit the layers' outputs, and only R, W and b are trained.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from trainables.methods.adapters import Adapter
from trainables.methods.registry import ADAPTERS, Knob, MmieForm
from trainables.model.decoder_layers import LayerChoices, decoder_layers, hidden_of, with_hidden


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


class HookedInterventions(Adapter):
    """An intervention module per chosen decoder layer, applied to the layer's output by a forward hook; the base
    model is untouched and only the interventions train. Subclasses say what one intervention is."""

    name = ""

    def __init__(self, layers: str):
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
        return LowRankIntervention(dim, self.rank)
