"""Registries of the pieces a variant is made of, and of the variants themselves.

Each piece (a forget objective, a retain objective, a sample weighting, an optimiser scheme, an adapter, a gate) is
a class that registers itself once with its name and its knobs (hyperparameters with default search ranges). The
trainable, the search space, the CLI and the exporter only ever look names up here: adding a piece never edits a
switch elsewhere. Every registry builds its pieces the same way: `REGISTRY.build(name, hparams, context)` hands the
piece's knob values and the trial's `BuildContext` to `Piece.from_knobs` and returns one piece, an instance of the
registry's contract (the abstract base class its module declares with `@REGISTRY.contract`).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Knob:
    """A hyperparameter: its default and the range a study searches by default.

    Either a numeric range (low, high, log scale or not, integer or not), a tuple of choices, or choices that depend
    on the model (`model_choices`, a function of its ModelSize such as decoder_layers.LayerChoices: a layer knob
    searches the loaded model's layers; `for_model` resolves them).
    `searched` says whether a study searches it unless its config says otherwise.
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None
    searched: bool = True
    help: str = ""
    model_choices: Callable[[Any], tuple] | None = None

    def __post_init__(self):
        if self.model_choices is not None:
            return
        if self.choices is None and (self.low is None or self.high is None):
            raise ValueError(f"knob {self.name}: needs low and high, or choices")
        if self.choices is None and not self.low <= self.default <= self.high:
            raise ValueError(f"knob {self.name}: default {self.default} outside [{self.low}, {self.high}]")

    def for_model(self, shape) -> "Knob":
        """This knob on a model of that shape: model-dependent choices resolved (the others unchanged)."""
        if self.model_choices is None:
            return self
        choices = tuple(self.model_choices(shape))
        default = self.default if self.default in choices or _valid(self.model_choices, self.default, shape) else choices[0]
        return replace(self, choices=choices, default=default, model_choices=None)

    def describe(self) -> str:
        if self.model_choices is not None:
            rng = "{" + str(self.model_choices) + "}"
        elif self.choices is not None:
            rng = "{" + ", ".join(map(str, self.choices)) + "}"
        else:
            rng = f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "") + (" int" if self.integer else "")
        return f"{self.name}={self.default!r} {rng}{'' if self.searched else ' (fixed unless configured)'}"


@dataclass(frozen=True)
class MmieForm:
    """How the user's mmie.py expresses a piece (its flags), or why it cannot.

    `flags(values)` turns the piece's knob values into mmie.py's flags (spelled in full): its exact form, or where
    `missing` says there is none, the nearest one (mmie_npo's flags for the paper's NPO). `fixed` holds the knob
    values mmie.py hard-codes (no flag sets them): a trial with other values is not what mmie.py runs, and
    `search.mmie_expressible` fixes them. `missing` non-empty: mmie.py has no form of this piece at all; it says
    why. Pieces in the same `exclusive` group cannot be combined on mmie.py's command line (it applies one).
    """

    flags: Callable[[dict[str, Any]], list[str]] = lambda values: []
    fixed: tuple[tuple[str, Any], ...] = ()
    missing: str = ""
    exclusive: str = ""
    steps_flag: str = ""  # an adapter's: mmie.py's flag for its training steps (--lora_steps, --reft_steps)
    # What the command does instead when a fixed value differs (empty: nothing expresses it).
    fixed_instead: str = ""

    def problems(self, piece: str, values: dict[str, Any]) -> list[str]:
        """Why these knob values are not what mmie.py runs (empty: they are)."""
        if self.missing:
            return [f"{piece}: {self.missing}"]
        instead = f"; {self.fixed_instead}" if self.fixed_instead else ""
        return [f"{piece}: mmie.py fixes {name} = {value!r}, this trial has {values[name]!r}{instead}"
                for name, value in self.fixed if name in values and not _same(values[name], value)]


def _same(a, b) -> bool:
    if isinstance(b, float) or isinstance(a, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)


NOT_DECLARED = MmieForm(missing="no mmie.py form is declared for this piece")


def _valid(model_choices, value, shape) -> bool:
    """Whether a value outside the listed choices is still one the model accepts (LoReFT's "0,1")."""
    try:
        model_choices.check(value, shape)
    except (AttributeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class BuildContext:
    """What a trial's pieces are built from besides their knobs: one object, handed to every registry's factory.

    The Unlearner fills it as its set-up goes: the adapter is built with `model` the base model and `adapter` None;
    every other piece after the adapter is attached (`model` the adapted model, `adapter` set). A piece reads only
    what it needs; a bare `BuildContext()` builds any piece that needs nothing of the trial. A new piece that needs
    more of the trial adds a field here."""

    model: Any = None
    tokenizer: Any = None
    data: Any = None  # trainables.data.StudyData
    model_path: str | None = None  # None: a model handed in (it has no SAE cache key)
    adapter: Any = None  # the trial's Adapter, once attached (an optimiser scheme trains its parameters())
    # SAE gates: the SAE's settings (trainables.settings.SAEConfig; None: its defaults), a SAELens folder read instead
    # of training one, the SAE cache's root (None: the default) and the training lines per set a gate fits on.
    sae: Any = None
    sae_pretrained: str = ""
    sae_cache_root: Any = None
    gate_fit_lines: int = 1024


class Piece(ABC):
    """What every registered piece is: a class built from its knob values and the trial's BuildContext."""

    @classmethod
    def from_knobs(cls, knobs: dict[str, Any], context: BuildContext):
        """The piece for one trial; `knobs` holds a value for each of its registered knobs. By default they are the
        constructor's keyword arguments; a piece that needs something of the trial overrides this and reads
        `context`."""
        return cls(**knobs)


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    knobs: tuple[Knob, ...] = ()
    help: str = ""
    mmie: MmieForm = NOT_DECLARED


@dataclass
class Registry(Generic[T]):
    kind: str
    base: type | None = None  # the contract every piece subclasses (set by `contract`)
    _entries: dict[str, Entry[T]] = field(default_factory=dict)

    def contract(self, base: type) -> type:
        """Class decorator on the abstract base class (a Piece) that every piece of this registry subclasses."""
        if self.base is not None:
            raise ValueError(f"{self.kind}: contract {self.base.__name__} already declared")
        if not issubclass(base, Piece):
            raise TypeError(f"{self.kind}: contract {base.__name__} is not a Piece")
        self.base = base
        return base

    def register(self, name: str, knobs: tuple[Knob, ...] = (), help: str = "", mmie: MmieForm = NOT_DECLARED):
        """Class decorator: register a piece (a subclass of the registry's contract) under `name` with its knobs and
        its mmie.py form."""

        def decorate(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            if self.base is None or not (isinstance(factory, type) and issubclass(factory, self.base)):
                contract = self.base.__name__ if self.base else "its registry's contract (none declared yet)"
                raise TypeError(f"{self.kind} {name!r}: {factory!r} is not a subclass of {contract}")
            self._entries[name] = Entry(name=name, factory=factory, knobs=tuple(knobs), help=help, mmie=mmie)
            return factory

        return decorate

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}") from None

    def build(self, name: str, hparams: dict[str, Any], context: BuildContext = BuildContext()) -> T:
        """The piece `name` for one trial: its knobs' values from hparams (defaults where absent) and the trial's
        context, through its `from_knobs`."""
        entry = self.get(name)
        values = {k.name: hparams.get(k.name, k.default) for k in entry.knobs}
        piece = entry.factory.from_knobs(values, context)
        if not isinstance(piece, self.base):
            raise TypeError(f"{self.kind} {name!r}: from_knobs returned {type(piece).__name__}, not a "
                            f"{self.base.__name__}")
        return piece

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())


OBJECTIVES: Registry = Registry("forget objective")
RETAIN_OBJECTIVES: Registry = Registry("retain objective")
WEIGHTINGS: Registry = Registry("sample weighting")
OPTIMIZERS: Registry = Registry("optimiser scheme")
ADAPTERS: Registry = Registry("adapter")
GATES: Registry = Registry("gate")
REGISTRIES = (OBJECTIVES, RETAIN_OBJECTIVES, WEIGHTINGS, OPTIMIZERS, ADAPTERS, GATES)

# What a trial runs when neither its variant nor its study names one: mmie.py's LoRA and KL retain step.
DEFAULT_ADAPTER = "lora"
DEFAULT_RETAIN_OBJECTIVE = "kl"


def _unique(knobs: Iterable[Knob]) -> tuple[Knob, ...]:
    """Each knob once, in first-seen order (two pieces' same-named knobs with different ranges both stay)."""
    seen: list[Knob] = []
    for knob in knobs:
        if knob not in seen:
            seen.append(knob)
    return tuple(seen)


@dataclass(frozen=True)
class Variant:
    """A named composition of registered pieces; its knobs are the union of theirs.

    A variant without an objective trains nothing: a gate-only variant measures its gate on the base model."""

    name: str
    objective: str | None
    retain: str | None = None  # the retain objective; None: the study's choice (`retain_objectives`, default kl)
    weightings: tuple[str, ...] = ("uniform",)  # several multiply (then renormalise to mean 1)
    optimizer: str = "adamw"
    adapter: str | None = None  # set when the method is an adapter (sine_bounded); else the study chooses
    gate: str | None = None  # an inference-time SAE gate applied at evaluation
    help: str = ""

    @property
    def trains(self) -> bool:
        return self.objective is not None

    @property
    def study_chooses_adapter(self) -> bool:
        """Whether the study picks the adapter (`adapters:`): not for a variant that is one, nor a gate-only one."""
        return self.trains and self.adapter is None

    @property
    def study_chooses_retain(self) -> bool:
        """Whether the study picks the retain objective (`retain_objectives:`)."""
        return self.trains and self.retain is None

    def adapter_of(self, hparams: dict[str, Any]) -> str:
        """The adapter a trial of this variant runs: its own (sine_bounded is one), else the trial's `adapter`
        (the study's choice, logged as a param), else LoRA (a gate-only trial keeps an untrained one)."""
        return self.adapter or hparams.get("adapter", DEFAULT_ADAPTER)

    def retain_objective_of(self, hparams: dict[str, Any]) -> str:
        """The retain objective a trial of this variant runs: its own, else the trial's `retain_objective` (the
        study's choice), else mmie.py's kl."""
        return self.retain or hparams.get("retain_objective", DEFAULT_RETAIN_OBJECTIVE)

    def knobs_with(self, adapters: Iterable[str]) -> tuple[Knob, ...]:
        """Its knobs and those of the adapters the study may give it (none when it brings its own or trains
        nothing), each once: the knobs a trial of it can have."""
        extra = [k for a in adapters for k in ADAPTERS.get(a).knobs] if self.study_chooses_adapter else []
        return _unique([*self.knobs(), *extra])

    def pieces(self) -> list[tuple[Registry, str]]:
        pieces: list[tuple[Registry, str]] = []
        if self.trains:
            pieces += [(OBJECTIVES, self.objective), *((WEIGHTINGS, w) for w in self.weightings), (OPTIMIZERS, self.optimizer)]
        pieces += [(RETAIN_OBJECTIVES, self.retain)] if self.trains and self.retain else []
        pieces += [(ADAPTERS, self.adapter)] if self.adapter else []
        return pieces + ([(GATES, self.gate)] if self.gate else [])

    def knobs(self) -> tuple[Knob, ...]:
        seen: dict[str, Knob] = {}
        for registry, name in self.pieces():
            for knob in registry.get(name).knobs:
                if knob.name in seen and seen[knob.name] != knob:
                    raise ValueError(f"variant {self.name}: knob {knob.name} defined twice with different ranges")
                seen[knob.name] = knob
        return tuple(seen.values())


VARIANTS: dict[str, Variant] = {}

# "<variant>+<gate>": any training variant with a registered gate on top (the ladder of docs/methods.md ends in
# adaptive+dsg).
GATE_SEPARATOR = "+"


def register_variant(variant: Variant) -> Variant:
    if variant.name in VARIANTS:
        raise ValueError(f"variant {variant.name!r} registered twice")
    if GATE_SEPARATOR in variant.name:
        raise ValueError(f"variant {variant.name!r}: {GATE_SEPARATOR!r} is reserved for adding a gate")
    for registry, name in variant.pieces():
        registry.get(name)  # fail at import time on a typo
    variant.knobs()
    VARIANTS[variant.name] = variant
    return variant


def study_knobs(variants: Iterable[str], adapters: Iterable[str]) -> tuple[Knob, ...]:
    """Every knob a study of these variants and adapters can search, each once."""
    adapters = tuple(adapters)
    return _unique(k for name in variants for k in get_variant(name).knobs_with(adapters))


def get_variant(name: str) -> Variant:
    """A registered variant, or `<variant>+<gate>`: a training variant with that gate at evaluation."""
    base_name, _, gate = name.partition(GATE_SEPARATOR)
    try:
        base = VARIANTS[base_name]
    except KeyError:
        raise KeyError(f"unknown variant {base_name!r}; known: {', '.join(sorted(VARIANTS))}"
                       f" (each training variant also as <variant>{GATE_SEPARATOR}<gate>)") from None
    if not gate:
        return base
    if gate not in GATES:
        raise KeyError(f"unknown gate {gate!r} in variant {name!r}; known: {', '.join(GATES.names())}")
    if not base.trains or base.gate:
        raise KeyError(f"variant {name!r}: a gate goes on top of a training variant without one; {base_name!r} is not")
    return replace(base, name=name, gate=gate, help=f"{base.help}; the {gate} gate at evaluation")
