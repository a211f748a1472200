"""The search space, built from the registry: the variant and adapter are categoricals, and each variant's knobs
exist only when that variant is chosen. The study config narrows, widens or fixes any knob.

It is an Optuna define-by-run function, the form Ray's OptunaSearch takes for conditional spaces (giving the
space through Tuner's param_space would also silently turn a multi-objective OptunaSearch single-objective).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trainables.variants  # noqa: F401  (registers every variant)
from trainables.registry import ADAPTERS, Knob, get_variant

from .config import KnobRange, StudyConfig


def resolve_knob(knob: Knob, override: KnobRange | None) -> Knob | Any:
    """The knob as the study searches it, or its fixed value (a plain value, not a Knob)."""
    if override is None:
        return knob if knob.searched else knob.default
    if override.value is not None:
        return override.value
    if override.choices is not None:
        return Knob(knob.name, override.choices[0], choices=tuple(override.choices))
    log = knob.log if override.log is None else override.log
    default = min(max(knob.default, override.low), override.high) if knob.choices is None else override.low
    return Knob(knob.name, default, override.low, override.high, log=log, integer=knob.integer)


def _suggest(trial, knob: Knob):
    if knob.choices is not None:
        return trial.suggest_categorical(knob.name, list(knob.choices))
    if knob.integer:
        return trial.suggest_int(knob.name, int(knob.low), int(knob.high), log=knob.log)
    return trial.suggest_float(knob.name, knob.low, knob.high, log=knob.log)


def define_by_run(cfg: StudyConfig) -> Callable:
    """An Optuna define-by-run function; it returns the fixed (unsearched) knobs as constants."""

    def space(trial) -> dict[str, Any]:
        constants: dict[str, Any] = {}
        variant = trial.suggest_categorical("variant", cfg.variants) if len(cfg.variants) > 1 else cfg.variants[0]
        adapter = trial.suggest_categorical("adapter", cfg.adapters) if len(cfg.adapters) > 1 else cfg.adapters[0]
        if len(cfg.variants) == 1:
            constants["variant"] = variant
        if len(cfg.adapters) == 1:
            constants["adapter"] = adapter
        for knob in (*get_variant(variant).knobs(), *ADAPTERS.get(adapter).knobs):
            resolved = resolve_knob(knob, cfg.search.space.get(knob.name))
            if isinstance(resolved, Knob):
                _suggest(trial, resolved)
            else:
                constants[knob.name] = resolved
        return constants

    return space
