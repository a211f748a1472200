"""Inference-time SAE gates on one decoder layer's output: mmie.py's static gate and Dynamic SAE Guardrails.

DSG (Muhamed et al. 2025, arXiv 2504.08192; official code aashiqmuhamed/DynamicSAEGuardrails): per token, is any
selected feature active; per sequence, the share of such tokens; where it exceeds a threshold τ calibrated on
retain data, all selected features are clamped to a negative value −c at every token of that sequence where any
selected feature is active (the official code's (batch, length, 1) mask). The layer's output h becomes
decode(z′) + (h − decode(z)): the SAE's error term is always added back.

Both gates compute that as h + (z′ − z) W_dec, the same quantity with b_dec cancelled, restricted to the selected
features' decoder rows: it is exactly h (bitwise) wherever z′ = z, and a sequence the dynamic gate does not fire on
keeps its input tensor as it is. Deviations from the paper, on purpose:
- c is scale-free: c_f = base_alpha × feature f's typical forget activation (the mean of its non-zero activations
  on forget tokens). The paper's c = 500 is in Gemma Scope's units; ours carries across SAEs and models.
- The share is over non-padding tokens other than the first (the paper's code zeroes the first position and
  counts padding in the denominator of packed, unpadded sequences).
- Generation: the share is kept per sequence across cached decoding steps (the share so far), so a continuation is
  gated once its prompt plus continuation crosses τ. In a teacher-forced pass the decision is the whole line's, as
  in the paper (a token's output can depend on whether later tokens fire).

The static gate (mmie.py's) scales the selected features by (1 − alpha) at every token
of every input; it is the baseline DSG is compared with.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from typing import TYPE_CHECKING

from trainables.data import DataError, StudyData
from trainables.methods.registry import GATES, BuildContext, Knob, MmieForm, Piece
from trainables.model.decoder_layers import LayerChoices, decoder_body, decoder_layers, hidden_of, with_hidden
from trainables.settings import SAEConfig

# torch and the SAE code (trainables.methods.gates.sae) are imported where a gate is fitted or runs, not here:
# registering the gates (names, knobs, help) must not load torch, since the command line lists and validates the
# pieces without it (tests/test_cli_imports.py).
if TYPE_CHECKING:
    import torch

    from trainables.methods.gates.sae import SelectedFeatures, SparseAutoencoder

# DSG keeps features whose forget/retain importance ratio is in the top 10% (the paper uses 90-95).
SELECT_PERCENTILE = 90

_N_FEATURES = Knob("n_features", 20, choices=(5, 10, 20, 50), help="SAE features the gate selects (DSG's N)")
# One SAE per layer (trained once per study and layer, then cached): fixed to an early layer unless a study asks.
_SAE_LAYER = Knob("sae_layer", "0", model_choices=LayerChoices(), searched=False,
                  help="decoder layer whose output the SAE reads and the gate edits (DSG: an early layer)")
STATIC_GATE_KNOBS = (
    # mmie.py's --sae_gate_alpha (default 0.35) attenuates (1 removes the features), but on the embedded model the
    # static gate does next to nothing up to 1 (bench_gates.py sweeps it): the range goes on into inversion, to
    # DSG's top strength, so that the baseline is not held back by its range. Log scale.
    # Its own name (mmie.py's flag's), not DSG's base_alpha: the two mean different things, and one Optuna
    # parameter for both would let TPE learn one gate's strength from the other's trials.
    Knob("sae_gate_alpha", 0.35, low=0.05, high=20.0, log=True,
         help="static gate: selected features scaled by 1 - sae_gate_alpha at every token"),
    _N_FEATURES,
    _SAE_LAYER,
)
DSG_GATE_KNOBS = (
    # In units of each feature's typical forget activation: 0.5 clamps to minus half of it, 20 is a hard clamp
    # (the paper's fixed c = 500 is in Gemma Scope's units, not transferable). Log scale.
    Knob("base_alpha", 4.0, low=0.5, high=20.0, log=True,
         help="DSG, on a sequence it fires on: every selected feature clamped to -base_alpha x its typical "
              "forget activation at each token where any of them is active"),
    _N_FEATURES,
    Knob("trigger_percentile", 95.0, low=80.0, high=99.0,
         help="DSG: tau = this percentile of the trigger share on retain lines (fires on ~(100 - p) percent)"),
    _SAE_LAYER,
)


@GATES.contract
class Gate(Piece):
    """An inference-time edit of one decoder layer's output through an SAE's selected features. Life cycle, as the
    Unlearner drives it:

    - built once per trial, after the base measurements and before any unlearning update:
      `GATES.build(name, hparams, context)` runs `from_knobs`, which times `fit(context, **knobs)` on the frozen
      base model (the context's adapter disabled). `fit` reads the cached SAE of its layer (trained on a miss,
      keyed by `context.model_path`; `context.sae_pretrained` reads a SAELens folder instead), selects features
      on training lines (never held-out ones) and calibrates what it needs; it returns the gate, with the figures
      to log once (SAE quality, cache hit, selection, build seconds) in `info`;
    - around every evaluation pass, never in training: `attach_gate(model, gate)` calls `register(model,
      handles)`, a pre-hook on the decoder body (stashes the attention mask and input ids) and a forward hook on
      `layer`, removed on exit; the Unlearner calls `reset()` before a pass whose firing rate it reports and
      reads `firing_rate` after it;
    - on every forward pass through the layer: `edit(h, mask, fresh)` once, `h` the layer's hidden states (batch,
      positions, d), `mask` the attention mask over every position so far, `fresh` false for a cached decoding
      step (it continues the previous pass's sequences). It returns the new hidden states, or None to leave the
      layer's output as it is.
    It keeps counters (`seen`, `gated`, `last_gated`) and what a cached decoding step continues from (DSG's
    running share); nothing of it is checkpointed: a restored trial builds it again from the cached SAE.
    Cached generation needs the attention mask (generate always passes it).
    """

    def __init__(self, sae: SparseAutoencoder, layer: int, features: SelectedFeatures, special_ids=()):
        import torch

        self.sae, self.layer, self.features = sae, int(layer), features
        # Tokens the trigger never counts (DSG's code masks BOS, EOS and padding): in generation, rows that have
        # finished keep receiving EOS with attention mask 1.
        self.special_ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
        self.rows = sae.W_dec[features.indices].detach()  # the only decoder rows a gate can change
        self.info: dict[str, float] = {}  # build figures, logged once
        self.seen = self.gated = 0
        self.last_gated = torch.zeros(0, dtype=torch.bool)  # per row of the latest batch: gated at any point
        self._mask: torch.Tensor | None = None
        self._ids: torch.Tensor | None = None

    @classmethod
    def from_knobs(cls, knobs, context: BuildContext) -> Gate:
        started = time.perf_counter()
        with context.adapter.disabled() if context.adapter is not None else nullcontext():
            gate = cls.fit(context, **knobs)
        gate.info["gate_build_seconds"] = time.perf_counter() - started
        return gate

    @classmethod
    @abstractmethod
    def fit(cls, context: BuildContext, **knobs) -> Gate:
        """The gate for these knob values, fitted on `context.model` and `context.data`, its figures in `info`."""

    @property
    def firing_rate(self) -> float:
        """The share of sequences gated since `reset()`."""
        return self.gated / self.seen if self.seen else 0.0

    def reset(self) -> None:
        self.seen = self.gated = 0

    def register(self, model, handles: list) -> None:
        handles.append(decoder_body(model).register_forward_pre_hook(self._stash_inputs, with_kwargs=True))
        handles.append(decoder_layers(model)[self.layer].register_forward_hook(self._hook))

    def _stash_inputs(self, module, args, kwargs):
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        self._mask = mask if mask is not None and mask.dim() == 2 else None
        self._ids = kwargs.get("input_ids", args[0] if args else None)

    def _counted(self, h: torch.Tensor, mask: torch.Tensor, fresh: bool) -> torch.Tensor:
        """The positions of h the trigger counts: non-padding, not a line's first position, not a special token."""
        import torch

        from trainables.methods.gates.sae import real_positions

        counted = real_positions(mask) if fresh else mask[:, -h.shape[1] :].bool()
        if self._ids is not None and len(self.special_ids):
            counted = counted & ~torch.isin(self._ids, self.special_ids.to(self._ids.device))
        return counted

    def _hook(self, module, args, output):
        import torch

        h = hidden_of(output)
        mask = self._mask if self._mask is not None else torch.ones(h.shape[:2], dtype=torch.long, device=h.device)
        fresh = mask.shape[1] == h.shape[1] or len(self.last_gated) != len(h)
        if fresh:
            self.seen += len(h)
            self.last_gated = torch.zeros(len(h), dtype=torch.bool, device=h.device)
        new = self.edit(h, mask, fresh)
        if new is None:
            return None  # None keeps the layer's output as it is
        return with_hidden(output, new)

    def _selected(self, h: torch.Tensor) -> torch.Tensor:
        return self.sae.encode_features(h, self.features.indices)

    def _shifted(self, h: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
        """decode(z + dz) + (h − decode(z)) = h + dz W_dec, over the selected features' rows."""
        return h + (dz @ self.rows).to(h.dtype)

    @abstractmethod
    def edit(self, h: torch.Tensor, mask: torch.Tensor, fresh: bool) -> torch.Tensor | None:
        """The layer's new hidden states for this pass, or None to keep them (counting what it gates)."""


@GATES.register("sae_gate", knobs=STATIC_GATE_KNOBS, help="mmie.py's static SAE gate: selected features scaled by "
                "1 - sae_gate_alpha on every input",
                mmie=MmieForm(flags=lambda v: ["--sae_gate", "--sae_gate_alpha", str(v["sae_gate_alpha"]),
                                               "--sae_gate_topk", str(v["n_features"]),
                                               "--sae_feature_picker", "activation"],
                              missing="mmie.py trains its own SAE (on per-sequence mean states), encodes densely and "
                                      "picks features by forget-minus-retain |z| (--sae_feature_picker activation is the "
                                      "nearest of its pickers); this gate's SAE and DSG-style selection are not its"))
class StaticGate(Gate):
    """Selected features scaled by (1 − alpha) at every position of every input (mmie.py's gate)."""

    def __init__(self, sae, layer: int, features: SelectedFeatures, alpha: float):
        super().__init__(sae, layer, features)
        self.base_alpha = float(alpha)

    @classmethod
    def fit(cls, context, sae_gate_alpha: float, n_features: int, sae_layer: str):
        layer = int(sae_layer)
        sae, features, info = _fit(context, layer, int(n_features))
        gate = cls(sae, layer, features, sae_gate_alpha)
        gate.info.update(info)
        return gate

    @property
    def firing_rate(self) -> float:
        return 1.0

    def edit(self, h, mask, fresh):
        if fresh:
            self.gated += len(h)
            self.last_gated[:] = True
        return self._shifted(h, -self.base_alpha * self._selected(h))


@GATES.register("dsg", knobs=DSG_GATE_KNOBS, help="Dynamic SAE Guardrails: selected features clamped negative on "
                "sequences whose trigger share exceeds a retain-calibrated threshold",
                mmie=MmieForm(missing="mmie.py's dsg arm crashes as published (its call omits `lid`) and its --dsg "
                                      "only sets a threshold on the static gate"))
class DynamicGate(Gate):
    """DSG: per sequence, when the share of real tokens with any selected feature active exceeds `threshold`, every
    selected feature is clamped to −base_alpha × its typical forget activation at each token where any selected
    feature is active (the official intervention's (batch, length, 1) mask). `active_only` clamps only the
    features active at the token (this project's earlier form), for comparison."""

    def __init__(self, sae, layer: int, features: SelectedFeatures, base_alpha: float, threshold: float,
                 special_ids=(), active_only: bool = False):
        import torch

        super().__init__(sae, layer, features, special_ids)
        self.base_alpha, self.threshold = float(base_alpha), float(threshold)
        self.active_only = active_only
        self.clamp = -self.base_alpha * features.typical.detach()  # z′ of an active selected feature
        self._active = self._real = torch.zeros(0)

    @classmethod
    def fit(cls, context, base_alpha: float, n_features: int, trigger_percentile: float, sae_layer: str):
        from trainables.methods.gates.sae import per_sequence

        layer = int(sae_layer)
        sae, features, info = _fit(context, layer, int(n_features))
        calib, lengths = _activations(context, _calibration_lines(context), layer)
        threshold = calibrate_threshold(sae, features, per_sequence(calib, lengths), trigger_percentile)
        gate = cls(sae, layer, features, base_alpha, threshold, context.tokenizer.all_special_ids)
        gate.info.update(info, gate_threshold=threshold)
        return gate

    def edit(self, h, mask, fresh):
        import torch

        if fresh:  # a new batch of sequences; otherwise a cached decoding step continues the running share
            self._active = torch.zeros(len(h), device=h.device)
            self._real = torch.zeros(len(h), device=h.device)
        real = self._counted(h, mask, fresh)
        z = self._selected(h)
        active = z > 0
        self._active += (active.any(dim=-1) & real).sum(dim=1)
        self._real += real.sum(dim=1)
        fire = self._active / self._real.clamp_min(1) > self.threshold
        self.gated += int((fire & ~self.last_gated).sum())
        self.last_gated |= fire
        if not fire.any():
            return None
        token = (active.any(dim=-1, keepdim=True) if not self.active_only else active) & real.unsqueeze(-1)
        clamp = token.expand_as(z) & fire[:, None, None]
        dz = torch.where(clamp, self.clamp - z, torch.zeros_like(z))
        return torch.where(fire[:, None, None], self._shifted(h, dz), h)


def calibrate_threshold(sae, features: SelectedFeatures, retain_acts_per_sequence: list[torch.Tensor],
                        percentile: float = 95) -> float:
    """τ = the `percentile` of the trigger share over retain lines: the gate fires (share > τ) on at most about
    100 − percentile % of such lines (fewer where many lines tie at τ)."""
    import torch

    from trainables.methods.gates.sae import sequence_shares

    shares = sequence_shares(sae, features, retain_acts_per_sequence)
    return float(torch.quantile(shares.double(), percentile / 100))


@contextmanager
def attach_gate(model, gate: Gate):
    """The gate's hooks on `model` for the body of the block; removed on exit, also when the body raises."""
    handles: list = []
    try:
        gate.register(model, handles)
        yield gate
    finally:
        for handle in handles:
            handle.remove()


# The fewest training lines a gate is built from: per set for feature selection, and retain lines for DSG's τ.
MIN_FIT_LINES = 16
MIN_CALIBRATION_LINES = 16


@dataclass(frozen=True)
class GateLines:
    """How many training lines a gate reads: forget and retain lines to select features on, then the next
    `calibration` retain lines to calibrate DSG's τ on (disjoint from the selection lines)."""

    forget: int
    retain: int
    calibration: int


def gate_lines(data: StudyData, fit_lines: int = 1024) -> GateLines:
    """The gate's line budget sized from what the files hold: up to `fit_lines` each, and where the retain set has
    fewer than 2 × fit_lines training lines, half of them for selection and half for calibration. A set too small
    for a gate is an error that names its file (study.prepare checks this before Ray starts)."""
    forget, retain = len(data.forget.train), len(data.retain.train)
    calibration = min(fit_lines, retain // 2)
    lines = GateLines(forget=min(fit_lines, forget), retain=min(fit_lines, retain - calibration),
                      calibration=calibration)
    if lines.forget < MIN_FIT_LINES:
        raise DataError(f"forget file {data.forget.path}: {forget} training lines, a gate needs at least "
                        f"{MIN_FIT_LINES} to select SAE features on")
    if lines.retain < MIN_FIT_LINES or lines.calibration < MIN_CALIBRATION_LINES:
        raise DataError(f"retain file {data.retain.path}: {retain} training lines, a gate needs at least "
                        f"{MIN_FIT_LINES + MIN_CALIBRATION_LINES} (feature selection, then DSG's threshold)")
    return lines


def _sae_config(context: BuildContext) -> SAEConfig:
    return context.sae if context.sae is not None else SAEConfig()


def _calibration_lines(context: BuildContext) -> list[str]:
    """DSG's τ is calibrated on the retain training lines after those features are selected on (`gate_lines`)."""
    lines = gate_lines(context.data, context.gate_fit_lines)
    return context.data.retain.train[lines.retain : lines.retain + lines.calibration]


def _fit(context: BuildContext, layer: int, n_features: int):
    """The cached SAE (trained on a miss), the features selected on up to `context.gate_fit_lines` forget and
    retain training lines, and figures to log once."""
    import torch

    from trainables.methods.gates.sae import (activation_rates, evaluate_sae, load_or_train_sae, load_saelens,
                                              select_features)

    lines = gate_lines(context.data, context.gate_fit_lines)
    forget, _ = _activations(context, context.data.forget.train[: lines.forget], layer)
    retain, _ = _activations(context, context.data.retain.train[: lines.retain], layer)
    if context.sae_pretrained:
        sae, hit = load_saelens(context.sae_pretrained, context.model.device), True
        report = evaluate_sae(sae, torch.cat([forget, retain]))
    elif context.model_path is None:
        raise ValueError("a gate needs the model's path (its SAE cache key) or a pretrained SAE")
    else:
        sae, report, hit = load_or_train_sae(context.model_path, context.tokenizer, context.data, layer,
                                             _sae_config(context), context.sae_cache_root, model=context.model)
    features = select_features(sae, forget, retain, SELECT_PERCENTILE, n_features)
    info = {
        "gate_sae_fve": report["fve"], "gate_sae_l0": report["l0"], "gate_sae_dead_share": report["dead_share"],
        "gate_sae_cache_hit": float(hit), "gate_n_features": float(len(features)),
        "gate_feature_rate_forget": activation_rates(sae, features, forget),
        "gate_feature_rate_retain": activation_rates(sae, features, retain),
    }
    return sae, features, info


def _activations(context: BuildContext, lines: list[str], layer: int):
    from trainables.methods.gates.sae import collect_activations

    return collect_activations(context.model, context.tokenizer, lines, layer, _sae_config(context).max_len)


def build_gate(kind: str, hparams: dict, model, tok, data: StudyData, model_path: str,
               sae_config: SAEConfig = SAEConfig(), cache_root=None, fit_lines: int = 1024,
               pretrained: str | None = None) -> tuple[Gate, dict]:
    """A gate outside a trial: `GATES.build` with a context made of these, on the model as it is (before any
    unlearning update). Returns the gate and its `info`, the figures to log once."""
    context = BuildContext(model=model, tokenizer=tok, data=data, model_path=model_path, sae=sae_config,
                           sae_pretrained=pretrained or "", sae_cache_root=cache_root, gate_fit_lines=fit_lines)
    gate = GATES.build(kind, hparams, context)
    return gate, gate.info
