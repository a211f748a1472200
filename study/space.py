"""The search space, built from the registry: the variant and adapter are categoricals, and each variant's knobs
exist only when that variant is chosen. The study config narrows, widens or fixes any knob.

It is an Optuna define-by-run function, the form Ray's OptunaSearch takes for conditional spaces (giving the
space through Tuner's param_space would also silently turn a multi-objective OptunaSearch single-objective).

Knobs whose choices depend on the model (layer knobs: LoReFT's `layers`, the gates' `sae_layer`) are resolved
here against the study model's shape, read from its config before Ray starts (study.prepare.model_shape).
"""

from __future__ import annotations

from typing import Any

import trainables.methods.variants  # noqa: F401  (registers every variant)
from study.config import ConfigError, KnobRange, StudyConfig
from study.prepare import model_shape
from study.results import mmie_command as mmie
from trainables.methods.registry import ADAPTERS, RETAIN_OBJECTIVES, Knob, get_variant
from trainables.model.decoder_layers import ModelSize


def resolve_knob(knob: Knob, override: KnobRange | None) -> Knob | Any:
    """The knob as the study searches it, or its fixed value (a plain value, not a Knob)."""
    if override is None:
        return knob if knob.searched else knob.default
    if override.searched is not None:  # its own default range (a layer knob: every layer of the model), or fixed
        return knob if override.searched else knob.default
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


class SearchSpace:
    """An Optuna define-by-run function (a class, so Ray can pickle it with the searcher's state).

    Calling it suggests the searched knobs and returns the fixed (unsearched) ones as constants.
    """

    def __init__(self, cfg: StudyConfig, shape: ModelSize | None = None):
        if shape is None:  # read from the model's config (no weights loaded)
            shape = model_shape(cfg)
        self.variants = list(cfg.variants)
        self.adapters = list(cfg.adapters)
        self.retains = list(cfg.retain_objectives)
        self.overrides = dict(cfg.search.space)
        self.shape = shape
        self.mmie_only = cfg.search.mmie_expressible
        if self.mmie_only:  # the config's validation made sure something is left
            self.variants = mmie.expressible_variants(self.variants)
            self.adapters = mmie.expressible(ADAPTERS, self.adapters)
            self.retains = mmie.expressible(RETAIN_OBJECTIVES, self.retains)

    def __call__(self, trial) -> dict[str, Any]:
        constants: dict[str, Any] = {}
        variant = get_variant(self._choose(trial, "variant", self.variants, constants))
        # A variant that is an adapter (sine_bounded) brings its own; a gate-only variant trains none.
        adapters = [self._choose(trial, "adapter", self.adapters, constants)] if variant.study_chooses_adapter else []
        knobs = variant.knobs_with(adapters)
        if variant.study_chooses_retain:
            self._choose(trial, "retain_objective", self.retains, constants)
        fixed = mmie.fixed_knobs(mmie.trial_pieces(variant, constants | trial.params)) if self.mmie_only else {}
        for knob in knobs:
            if knob.name in fixed:  # mmie.py hard-codes it
                constants[knob.name] = fixed[knob.name]
                continue
            resolved = resolve_knob(knob.for_model(self.shape), self.overrides.get(knob.name))
            if isinstance(resolved, Knob):
                _suggest(trial, resolved)
            else:
                constants[knob.name] = resolved
        return constants

    @staticmethod
    def _choose(trial, name: str, options: list[str], constants: dict) -> str:
        if len(options) > 1:
            return trial.suggest_categorical(name, options)
        constants[name] = options[0]
        return options[0]


def check_one_distribution_per_knob(cfg: StudyConfig, shape: ModelSize | None = None) -> None:
    """Optuna keeps one distribution per parameter name in a study, so a knob two of the study's pieces search
    differently (LoRA's `rank` choices and LoReFT's, both adapters searched) would fail the study at the first trial
    that samples the second. Refused before Ray, naming both."""
    space = SearchSpace(cfg, shape)
    seen: dict[str, tuple[Any, str]] = {}
    for variant in map(get_variant, space.variants):
        for adapter in space.adapters if variant.study_chooses_adapter else [None]:
            for retain in space.retains if variant.study_chooses_retain else [None]:
                params = {"adapter": adapter, "retain_objective": retain}
                fixed = mmie.fixed_knobs(mmie.trial_pieces(variant, params)) if space.mmie_only else {}
                for knob in variant.knobs_with([adapter] if adapter else []):
                    resolved = resolve_knob(knob.for_model(space.shape), space.overrides.get(knob.name))
                    if knob.name in fixed or not isinstance(resolved, Knob):
                        continue
                    form = _form(resolved)
                    owner = variant.name + (f" on {adapter}" if adapter else "")
                    first = seen.setdefault(knob.name, (form, owner))
                    if first[0] != form:
                        raise ConfigError(
                            f"search.space.{knob.name}: {first[1]} searches it over {first[0]} and {owner} over "
                            f"{form}; one Optuna study keeps one range per name: give "
                            f"search.space.{knob.name} one range (choices, low/high or a value) for both")


def _form(knob: Knob) -> str:
    """The distribution Optuna would be given, in words (two knobs are searched alike when these are equal)."""
    if knob.choices is not None:
        return f"choices {list(knob.choices)}"
    kind = "integers" if knob.integer else "floats"
    return f"{kind} in [{knob.low:g}, {knob.high:g}]" + (" (log)" if knob.log else "")


def define_by_run(cfg: StudyConfig, shape: ModelSize | None = None) -> SearchSpace:
    """The study's search space on its model (shape read from the model's config when not given)."""
    return SearchSpace(cfg, shape)
