"""The worst case over a small grid of cheap attackers, not one fixed attack (issue 25).

One weak attacker can say "survives" where a slightly different one says the opposite: UNDO (arXiv 2506.06278)
tries ten attacker learning rates and reports the worst; fine-tuning on *unrelated* lines brings most unlearnt
knowledge back (Łucki et al., arXiv 2409.18025); one steering direction in the residual stream recovers much of it
(Xiang et al., arXiv 2606.03291); MUDMAN (arXiv 2506.12484) reads the minimum over the relearning curve. So each
attack of the grid is run on a copy of the run's state (trainables.metrics.robustness.preserved leaves it as it
was), its curve kept, and the run's robustness is the worst point over every attack:

- `relearn`: fine-tuning at learning rate `lr` on the adapter's parameters or on `all` of them, on the forget
  set's held-out attack lines (`lines=forget`) or on retain-language training lines (`lines=retain`: the
  forgetting should not come back from English);
- `steer`: no training: the difference of mean hidden states between forget-language lines (the attack lines) and
  retain-language lines, taken at the output of each edited decoder layer of the model as the attacker holds it
  (`direction=self`) or of the model before unlearning (`direction=base`: the base weights are public), added
  back at that layer, one layer at a time, at a few strengths.

An attack is written `kind:key=value,...` (`relearn:lr=1e-4,params=all`, `steer:strengths=0.5/1/2`). Each attack
stops early once forget_efficacy is back to 0 (everything forgotten is back). The share of its forgetting that an
attack brings back, against the retain-only oracle's under the same attack, is the excess: forgetting survives only
where it relearns no faster than the oracle under every attack (`worst_relearn_excess` <= 0).
"""

from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from trainables.evaluator import Evaluator
from trainables.metrics.attack_grid import (  # noqa: F401  (the grid's names, also imported from here)
    DEFAULT_ATTACKS,
    FULL_ATTACKS,
    KINDS,
    Attack,
    SweepSettings,
    parse_attack,
)
from trainables.metrics.robustness import (
    ATTACK_SEED,
    ES_SEED,
    edit_layers,
    evaluator_of,
    relearn,
)
from trainables.model.batching import pad_rows, to_device
from trainables.model.decoder_layers import decoder_layers, hidden_of, with_hidden
from trainables.settings import MIN_FORGOTTEN  # no share back, no excess below it


@dataclass
class AttackResult:
    """One attack's curve: (step, or steering point, forget_efficacy), and ES where forget_efficacy was lowest."""

    attack: Attack
    curve: list[tuple[float, float]]
    es: float | None
    es_before: float | None
    labels: list[str] = field(default_factory=list)  # steer: "layer L x strength" for each point after the first

    @property
    def start(self) -> float:
        return self.curve[0][1]

    @property
    def worst_index(self) -> int:
        return min(range(len(self.curve)), key=lambda i: (self.curve[i][1], i))

    @property
    def worst(self) -> float:
        """The lowest forget_efficacy along the curve (MUDMAN's minimum)."""
        return self.curve[self.worst_index][1]

    @property
    def share_back(self) -> float:
        """The share of what was forgotten that came back at the worst point (NaN when next to nothing was
        forgotten: forget_efficacy below MIN_FORGOTTEN)."""
        return (self.start - self.worst) / self.start if self.start >= MIN_FORGOTTEN else math.nan

    @property
    def es_recovered(self) -> float:
        if self.es is None or self.es_before is None:
            return math.nan
        return self.es - self.es_before

    @property
    def where(self) -> str:
        """Where the worst point is: the relearning step, or the steering layer and strength."""
        i = self.worst_index
        if self.attack.kind == "steer":
            return "unsteered" if i == 0 else self.labels[i - 1] if i <= len(self.labels) else f"point {i}"
        return f"step {int(self.curve[i][0])}"

    def metrics(self, prefix: str = "") -> dict[str, float]:
        out = {f"{prefix}attack/{self.attack.slug}/forget_efficacy": self.worst,
               f"{prefix}attack/{self.attack.slug}/share_back": self.share_back}
        if self.es is not None:
            out[f"{prefix}attack/{self.attack.slug}/es_forget"] = self.es
        return out


# ---- the attacks ------------------------------------------------------------------------------------------------


def _relearn_attack(ev: Evaluator, attack: Attack, settings: SweepSettings, es_before: float | None) -> AttackResult:
    lines = ev.data.forget.attack if attack.lines == "forget" else ev.data.retain.train
    if not lines:
        raise ValueError(f"attack {attack.name}: the {attack.lines} set holds no lines for it")
    rng = random.Random(f"{ATTACK_SEED}:{ev.setup.train.seed}:{attack.name}")
    es_prompts = settings.attack_es_prompts if ev.language_id is not None else None
    result = relearn(ev, lines, attack.params, attack.lr, settings.attack_steps, settings.attack_eval_every, settings.attack_batch_size,
                     rng, es_prompts, stop_when_recovered=True)
    return AttackResult(attack, [(float(s), fe) for s, fe in result["curve"]], result["es"], es_before)


def _steer_layers(ev: Evaluator) -> list[int]:
    """The edited decoder layers; every layer for a model with no adapter in its decoder layers."""
    return edit_layers(ev) or list(range(len(decoder_layers(ev.model))))


@torch.no_grad()
def mean_hidden(ev: Evaluator, lines: list[str], layers: list[int], base: bool) -> dict[int, torch.Tensor]:
    """The mean hidden state over the (non-padding) tokens of `lines` at the output of each of `layers`, through
    the model as evaluated (`base`: with the adapter disabled)."""
    sums: dict[int, torch.Tensor] = {}
    count = 0
    current = {}

    def hook(i):
        def record(module, args, output):
            current[i] = hidden_of(output).float()
        return record

    handles = [decoder_layers(ev.model)[i].register_forward_hook(hook(i)) for i in layers]
    try:
        ev.model.eval()
        rows = [ev.tok.encode(t, add_special_tokens=False) for t in lines]
        batch = to_device(pad_rows(ev.tok, rows, ev.setup.train.max_len), ev.model.device)
        mask = batch["attention_mask"].unsqueeze(-1).float()
        with ev.adapter.disabled() if base else ev.gated():
            ev.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        for i in layers:
            sums[i] = (current[i] * mask).sum(dim=(0, 1))
        count = mask.sum()
    finally:
        for handle in handles:
            handle.remove()
    return {i: s / count for i, s in sums.items()}


def steering_directions(ev: Evaluator, n_lines: int, base: bool = False) -> dict[int, torch.Tensor]:
    """Per layer, mean hidden state of forget-language lines minus that of retain-language lines (lines the
    evaluation never reads: the forget set's attack lines and retain training lines)."""
    layers = _steer_layers(ev)
    forget = mean_hidden(ev, ev.data.forget.attack[:n_lines], layers, base)
    retain = mean_hidden(ev, ev.data.retain.train[:n_lines], layers, base)
    return {i: forget[i] - retain[i] for i in layers}


@contextmanager
def steered(model, layer: int, direction: torch.Tensor, strength: float):
    """`strength` x `direction` added to the hidden states at the output of decoder layer `layer`."""
    def hook(module, args, output):
        h = hidden_of(output)
        return with_hidden(output, h + (strength * direction).to(h.dtype))

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _steer_attack(ev: Evaluator, attack: Attack, settings: SweepSettings, es_before: float | None) -> AttackResult:
    directions = steering_directions(ev, settings.attack_steer_lines, base=attack.direction == "base")
    curve = [(0.0, ev.evaluate_step()["forget_efficacy"])]
    labels: list[str] = []
    points: list[tuple[int, float]] = []
    for layer, direction in directions.items():
        for strength in attack.strengths:
            with steered(ev.model, layer, direction, strength):
                curve.append((float(len(curve)), ev.evaluate_step()["forget_efficacy"]))
            labels.append(f"layer {layer} x {strength:g}")
            points.append((layer, strength))
            if curve[-1][1] <= 0:
                break
        if curve[-1][1] <= 0:
            break
    result = AttackResult(attack, curve, None, es_before, labels)
    if ev.language_id is not None:
        i = result.worst_index
        if i == 0:
            result.es = es_before
        else:
            layer, strength = points[i - 1]
            with steered(ev.model, layer, directions[layer], strength):
                result.es = ev.forget_es(settings.attack_es_prompts, ES_SEED)
    return result


_RUNNERS = {"relearn": _relearn_attack, "steer": _steer_attack}


def sweep(run, settings: SweepSettings, log=None) -> list[AttackResult]:
    """Every attack of the grid on `run` (an Unlearner or an Evaluator), each from the run's own state."""
    ev = evaluator_of(run)
    es_before = ev.forget_es(settings.attack_es_prompts, ES_SEED) if ev.language_id is not None else None
    out = []
    for attack in settings.parsed():
        started = time.perf_counter()
        out.append(_RUNNERS[attack.kind](ev, attack, settings, es_before))
        if log is not None:
            r = out[-1]
            log(f"  {attack.name}: forget_efficacy {r.start:.3f} -> {r.worst:.3f} ({r.where}; "
                f"{time.perf_counter() - started:.1f} s)")
    return out


# ---- the worst case ---------------------------------------------------------------------------------------------


def worst_case(results: list[AttackResult], oracle: list[AttackResult] | None = None,
               prefix: str = "worst_relearn_") -> tuple[dict[str, float], dict[str, str]]:
    """The metrics and tags of the worst attack: the lowest forget_efficacy anywhere on any curve (and so the
    largest share back), the highest ES after an attack, and, against the oracle's results under the same attacks
    (matched by name), the largest excess share back. Tags: which attack, and where on its curve."""
    worst = min(results, key=lambda r: r.worst)
    tags = {"worst_attack": worst.attack.name, "worst_attack_at": worst.where}
    metrics = {f"{prefix}forget_efficacy": worst.worst, f"{prefix}share_back": worst.share_back}
    es = [r.es for r in results if r.es is not None]
    if es:
        metrics[f"{prefix}es_forget"] = max(es)
        metrics[f"{prefix}es_recovered"] = max(r.es_recovered for r in results if r.es is not None)
    if oracle is not None:
        theirs = {r.attack.name: r.share_back for r in oracle}
        excess = [(r.share_back - theirs[r.attack.name], r) for r in results if r.attack.name in theirs]
        excess = [(e, r) for e, r in excess if math.isfinite(e)]
        if excess:
            value, by = max(excess, key=lambda x: x[0])
            metrics[f"{prefix}excess"] = value
            tags["worst_excess_attack"] = by.attack.name
    return metrics, tags
