"""A trial as the user's mmie.py runs it: its pieces' flags, read from the registry, and what mmie.py cannot carry.

Every registered piece declares its mmie.py form (`trainables.methods.registry.MmieForm`); nothing here switches on a
variant's name. Used by the exporter (the command line and its note) and by `search.mmie_expressible` (a search
space of only what mmie.py runs by flags).
"""

from __future__ import annotations

from typing import Any

import trainables.methods.variants  # noqa: F401  (registers every piece)
from trainables.methods.registry import ADAPTERS, RETAIN_OBJECTIVES, Entry, Registry, Variant

# mmie.py's training setup, which it hard-codes (no flag sets them); a study with others runs a different experiment.
MMIE_TRAINING = {"batch_size": 16, "max_len": 256, "lr_schedule": "warmup_cosine", "warmup_ratio": 0.1,
                 "max_grad_norm": 1.0}


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


def _values(entry: Entry, params: dict[str, Any]) -> dict[str, Any]:
    return {k.name: params.get(k.name, k.default) for k in entry.knobs}


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


def piece_flags(variant: Variant, params: dict[str, Any]) -> list[str]:
    """The flags of the trial's pieces, each piece's nearest form where mmie.py has no exact one."""
    flags: list[str] = []
    for entry in _entries(trial_pieces(variant, params)):
        flags += entry.mmie.flags(_values(entry, params))
    return flags


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


def _close(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) <= 1e-12
    except (TypeError, ValueError):
        return False
