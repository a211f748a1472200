"""A trial as the user's mmie.py runs it: its pieces' flags, read from the registry, and what mmie.py cannot carry.

Every registered piece declares its mmie.py form (`trainables.methods.registry.MmieForm`); nothing here switches on a
variant's name. Used by the exporter (the command line and its note) and by `search.mmie_expressible` (a search
space of only what mmie.py runs by flags).
"""

from __future__ import annotations

from typing import Any

import trainables.methods.variants  # noqa: F401  (registers every piece)
from trainables.methods.lr_schedule import lr_multiplier
from trainables.methods.optimizers import MMIE_LR
from trainables.methods.registry import ADAPTERS, RETAIN_OBJECTIVES, Entry, Registry, Variant
from trainables.model.decoder_layers import LayerChoices

# mmie.py's training setup, which it hard-codes (no flag sets them); a study with others runs a different experiment.
MMIE_TRAINING = {"batch_size": 16, "max_len": 256, "lr_schedule": "warmup_cosine", "warmup_ratio": 0.1,
                 "max_grad_norm": 1.0}
# mmie.py's layer-selection and probe defaults (MMIE-INTERFACE.md §1): on a model of 2 layers --min_layer 2 leaves
# no eligible layer and its selection goes on silently with none.
MMIE_MIN_LAYER, MMIE_TOP_K, MMIE_PROBE_LAYERS = 2, 3, (8, 16, 24)
# mmie.py's gate names (its report's `gates`), by the prefix the study's ACCEPTANCE_GATES share with them.
MMIE_GATES = {"G1": "G1_ES50", "G1S": "G1S_ES50_sem", "G2": "G2_PPL10", "G3": "G3_MIX30", "G3S": "G3S_MIX30_sem",
              "G4": "G4_NoRedistrib", "G5": "G5_NoXLeak", "G6": "G6_MIA0", "G7": "G7_AdvES"}


def trial_pieces(variant: Variant, params: dict[str, Any]) -> list[tuple[Registry, str]]:
    """Every piece a trial ran: the variant's, plus the study's choice of retain objective and adapter."""
    pieces = variant.pieces()
    if variant.study_chooses_retain:
        pieces.append((RETAIN_OBJECTIVES, variant.retain_objective_of(params)))
    if variant.study_chooses_adapter:
        pieces.append((ADAPTERS, variant.adapter_of(params)))
    return pieces


def _entries(pieces) -> list[Entry]:
    return [registry.get(name) for registry, name in pieces]


def _values(entry: Entry, params: dict[str, Any], num_layers: int | None = None) -> dict[str, Any]:
    return {k.name: resolve_layers(k, params.get(k.name, k.default), num_layers) for k in entry.knobs}


def resolve_layers(knob, value, num_layers: int | None):
    """A layer knob's value with negative indices counted from the last layer (-1: the last), as the study read
    them: mmie.py drops negative --force_layers indices, and could end with no layer. Other knobs unchanged."""
    if num_layers is None or not isinstance(knob.model_choices, LayerChoices) or str(value) == "all":
        return value
    try:
        indices = [int(i) for i in str(value).split(",")]
    except ValueError:
        return value
    return ",".join(str(i % num_layers if -num_layers <= i < 0 else i) for i in indices)


def problems(variant: Variant, params: dict[str, Any]) -> list[str]:
    """Why mmie.py's flags cannot run exactly this trial (empty when they can)."""
    out: list[str] = []
    groups: dict[str, list[str]] = {}
    for entry in _entries(trial_pieces(variant, params)):
        out += entry.mmie.problems(entry.name, _values(entry, params))
        if entry.mmie.exclusive:
            groups.setdefault(entry.mmie.exclusive, []).append(entry.name)
    for group, names in groups.items():
        if len(names) > 1:
            out.append(f"{' and '.join(names)}: mmie.py applies only one {group} (the first wins)")
    return out


def piece_flags(variant: Variant, params: dict[str, Any], num_layers: int | None = None) -> list[str]:
    """The flags of the trial's pieces, each piece's nearest form where mmie.py has no exact one; layer indices
    resolved on a model of `num_layers` layers."""
    flags: list[str] = []
    for entry in _entries(trial_pieces(variant, params)):
        flags += entry.mmie.flags(_values(entry, params, num_layers))
    return flags


def layer_flags(num_layers: int | None, flags: list[str]) -> list[str]:
    """--min_layer/--select_top_k and --probe_layers that fit a model of `num_layers` layers where mmie.py's
    defaults do not (none where they do, or where the pieces' flags already chose the layers)."""
    if num_layers is None:
        return []
    out = []
    if "--force_layers" not in flags and num_layers <= MMIE_MIN_LAYER:
        min_layer = min(MMIE_MIN_LAYER, num_layers - 1)
        out += ["--min_layer", str(min_layer), "--select_top_k", str(min(MMIE_TOP_K, num_layers - min_layer))]
    if max(MMIE_PROBE_LAYERS) >= num_layers:
        probes = sorted({min(i, num_layers - 1) for i in MMIE_PROBE_LAYERS})
        out += ["--probe_layers", *map(str, probes)]
    return out


def steps_flag(variant: Variant, params: dict[str, Any]) -> str | None:
    """mmie.py's step-count flag for the trial's adapter (None for a trial whose adapter mmie.py lacks)."""
    for entry in _entries(trial_pieces(variant, params)):
        if entry.mmie.steps_flag:
            return entry.mmie.steps_flag
    return None


def _expressible(entry: Entry) -> bool:
    return not entry.mmie.missing


def expressible_variants(variants: list[str]) -> list[str]:
    """The variants whose own pieces mmie.py runs by flags (the study's adapter and retain choices aside)."""
    from trainables.methods.registry import get_variant

    keep = []
    for name in variants:
        entries = _entries(get_variant(name).pieces())
        groups = [e.mmie.exclusive for e in entries if e.mmie.exclusive]
        if all(map(_expressible, entries)) and len(groups) == len(set(groups)):
            keep.append(name)
    return keep


def expressible(registry: Registry, names: list[str]) -> list[str]:
    return [n for n in names if _expressible(registry.get(n))]


def fixed_knobs(pieces: list[tuple[Registry, str]]) -> dict[str, Any]:
    """The knob values mmie.py hard-codes for these pieces (a mmie_expressible study fixes them)."""
    return {name: value for entry in _entries(pieces) for name, value in entry.mmie.fixed}


def training_differences(settings: dict[str, Any]) -> list[str]:
    """How a study's training setup differs from mmie.py's hard-coded one."""
    return [f"mmie.py trains with {name} = {value!r} (no flag sets it); the study used {settings[name]!r}"
            for name, value in MMIE_TRAINING.items()
            if name in settings and str(settings[name]) != str(value)
            and not _close(settings[name], value)]


def step_differences(settings: dict[str, Any], steps: int, updates_per_step: int = 2) -> list[str]:
    """How the study's training step differs from mmie.py's where no setting of the study's chose mmie.py's form,
    each with its size where it can be computed from the study's settings alone."""
    out = []
    if settings.get("padding", "masked") != "mmie":
        out.append("padding: mmie.py pads every row to the longest line of the whole set and counts the pads in its "
                   "NLL, KL and perplexity; the study masked padding (train.padding: masked). Size: not computed by "
                   "the export; measured on the embedded default in docs/mmie-metrics.md (\"Masked against "
                   "mmie.py's padding\"): a trial's forgetting and mmie.py's figures can move far; search with "
                   "train.padding: mmie to remove it")
    warmup = _warmup_excess(settings, steps * updates_per_step)
    if warmup is not None:
        out.append(warmup)
    out.append("batches: the study draws each update's lines at random (with replacement, seeded by seed, phase "
               "and step); mmie.py shuffles each file once and cycles through it. The same lines with the same "
               "expected frequency; the order differs (not measured alone; docs/mmie.md bounds it by the spread "
               "over seeds)")
    return out


def _warmup_excess(settings: dict[str, Any], updates: int) -> str | None:
    """mmie.py's warm-up runs update u at lr·u/w (its first update at lr 0); the study's schedule is read from
    trainables.methods.lr_schedule, so a study whose schedule already matches has no difference here."""
    schedule = str(settings.get("lr_schedule", "constant"))
    ratio = float(settings.get("warmup_ratio", 0.0))
    w = int(ratio * updates)
    if schedule != "warmup_cosine" or w == 0:
        return None
    ours = [lr_multiplier(schedule, u, updates, ratio) for u in range(w)]
    mmie = [u / w for u in range(w)]
    excess = sum(ours) - sum(mmie)
    if abs(excess) < 1e-9:
        return None
    total = sum(lr_multiplier(schedule, u, updates, ratio) for u in range(updates))
    return (f"warm-up: update u of the first {w} runs at lr·(u+1)/{w} in the study and at lr·u/{w} in mmie.py (its "
            f"first update at lr 0): one update ahead, {excess:.3g} update(s) of full learning rate more in all, "
            f"{excess / (total - excess):.2%} of mmie.py's summed learning rate")


def lr_runs_as(lr: float) -> str | None:
    """What mmie.py really runs for a single AdamW's learning rate (None: its own 2e-4, exact)."""
    if abs(float(lr) - MMIE_LR) <= 1e-12:
        return None
    return (f"lr {lr:g} runs as --dual_optimizer --lr_forget {lr:g} --lr_retain {lr:g}: mmie.py has no --lr, so "
            "the command keeps two AdamW states (each steps only on its own updates), not the study's one. Size: "
            "this can change forgetting more than anything else listed (measured on the embedded default in "
            "docs/mmie.md, 'Every remaining difference'); the dualoptim variant trains what the command runs")


def gates_checked(acceptance_gates) -> tuple[list[str], list[str]]:
    """(mmie.py's gates the study's `acceptance_gates` compute, the ones they leave unchecked), by mmie.py's names."""
    prefixes = {g.split("_", 1)[0] for g in acceptance_gates}
    checked = [name for p, name in MMIE_GATES.items() if p in prefixes]
    return checked, [name for name in MMIE_GATES.values() if name not in checked]


def _close(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) <= 1e-12
    except (TypeError, ValueError):
        return False
