"""The attacker grid as a study config writes it (`robustness.attacks`, `robustness.attack_*`): each attack parsed
from `kind[:key=value,...]`, and the sweep's settings. No torch here: the driver validates a config's attacks
before it loads anything heavy; trainables.metrics.attack_sweep runs them (its docstring says what each attack is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("relearn", "steer")


@dataclass(frozen=True)
class Attack:
    """One attacker of the grid (see the module's docstring for each field)."""

    kind: str
    lr: float = 1e-4
    params: str = "adapter"  # relearn: "adapter" or "all"
    lines: str = "forget"  # relearn: "forget" (held-out attack lines) or "retain" (unrelated retain-language lines)
    strengths: tuple[float, ...] = (0.5, 1.0, 2.0)  # steer
    direction: str = "self"  # steer: "self" (the attacked model's activations) or "base" (the adapter disabled)

    @property
    def name(self) -> str:
        """The attack as a config writes it (and as the tag `worst_attack` names it)."""
        if self.kind == "relearn":
            return f"relearn:lines={self.lines},lr={self.lr:g},params={self.params}"
        return f"steer:direction={self.direction},strengths={'/'.join(f'{s:g}' for s in self.strengths)}"

    @property
    def slug(self) -> str:
        """The attack in a metric name (MLflow allows no '=' or ',')."""
        if self.kind == "relearn":
            return f"relearn_{self.lines}_lr{self.lr:g}_{self.params}"
        return f"steer_{self.direction}"


# The full grid: UNDO's learning rates (a decade apart) on the adapter and on every parameter, relearning from
# unrelated retain-language lines, and the steering direction. The default; its cost is measured in
# docs/robustness.md ("Cost").
FULL_ATTACKS = (
    "relearn:lr=1e-5,params=adapter", "relearn:lr=1e-4,params=adapter", "relearn:lr=1e-3,params=adapter",
    "relearn:lr=1e-5,params=all", "relearn:lr=1e-4,params=all", "relearn:lr=1e-3,params=all",
    "relearn:lines=retain,lr=1e-3,params=all",
    "steer",
)
DEFAULT_ATTACKS = FULL_ATTACKS

# A cheaper grid (its strongest attacker on forget and on retain lines, and the steering direction; meant with 20
# steps and ES on 16 prompts): what it saves and what it finds against the full grid, docs/robustness.md ("Cost").
CHEAP_ATTACKS = ("relearn:lr=1e-3,params=all", "relearn:lines=retain,lr=1e-3,params=all", "steer")

_CHOICES = {"params": ("adapter", "all"), "lines": ("forget", "retain"), "direction": ("self", "base")}


def parse_attack(text: str) -> Attack:
    """`kind[:key=value,...]` as an Attack; a ValueError naming what is wrong."""
    kind, _, rest = text.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"attack {text!r}: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    allowed = {"relearn": ("lr", "params", "lines"), "steer": ("strengths", "direction")}[kind]
    values: dict = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in allowed:
            raise ValueError(f"attack {text!r}: {item!r} is not one of {', '.join(k + '=...' for k in allowed)}")
        try:
            if key == "lr":
                values[key] = float(value)
                if not values[key] > 0:
                    raise ValueError
            elif key == "strengths":
                values[key] = tuple(float(v) for v in value.split("/"))
                if not values[key] or any(not math.isfinite(v) for v in values[key]):
                    raise ValueError
            elif value in _CHOICES[key]:
                values[key] = value
            else:
                raise ValueError
        except ValueError:
            hint = " or ".join(_CHOICES[key]) if key in _CHOICES else ("> 0" if key == "lr" else "numbers a/b/c")
            raise ValueError(f"attack {text!r}: {key}={value!r} is not valid ({hint})") from None
    return Attack(kind=kind, **values)


@dataclass(frozen=True)
class SweepSettings:
    """The sweep's grid and budget (the study config's `robustness.attacks` and `robustness.attack_*`)."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    attack_steps: int = 50  # relearning steps per attack (each stops once everything is back)
    attack_eval_every: int = 10  # forget_efficacy along each relearning curve
    attack_batch_size: int = 8
    attack_es_prompts: int = 32  # ES at each attack's worst point
    attack_steer_lines: int = 32  # lines per language whose mean hidden state gives the steering direction

    def parsed(self) -> list[Attack]:
        return [parse_attack(a) for a in self.attacks]
