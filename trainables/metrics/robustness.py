"""Does the forgetting survive an attack? A relearning attack, an activation-perturbation audit and an int8 check.

Forgetting measured only as the model stands at the end of training cannot tell a method that hides the forget
language from one that removes it. Each check here works on a run's Evaluator (trainables.evaluator: the trial's
Unlearner's, or the oracle's, which trains nothing) and leaves the model exactly as it found it (adapter weights, gradients, every parameter when the attacker trains them all, train/eval mode and the
random streams), so the trial's metrics and checkpoints are the same with or without it.

- **Relearning attack** (the user's reversibility harness; OpenUnlearning's and MUDMAN's relearning evaluation):
  fine-tune the unlearned model on forget lines that unlearning never trained on and evaluation never reads (the
  forget set's `attack` lines, trainables.data), by default 50 steps of AdamW at lr 5e-5 on the adapter's
  parameters, and re-measure forget_efficacy along the way and extraction strength at the end. Trained without the
  gate, as unlearning is; measured through it.
- **Activation perturbation** (mmie.py's `--actpert_audit`, `--actpert_amp`): Gaussian noise of standard deviation
  `amp` added to the hidden states at the output of every decoder layer the adapter edits; the change in ES.
- **int8 check**: torch's dynamic quantiser (`torch.ao.quantization.quantize_dynamic`, int8 weights of every
  nn.Linear, CPU only) on a copy of the unlearned model, LoRA merged into its weights first; adapters that cannot
  be merged (the sine-bounded LoRA, LoReFT) stay in float beside the quantised base layers.
"""

from __future__ import annotations

import copy
import math
import random
from contextlib import contextmanager

import torch

from trainables.data import StudyData
from trainables.evaluator import Evaluator
from trainables.metrics.core import token_nll
from trainables.model.batching import pad_rows, to_device
from trainables.model.decoder_layers import decoder_layers, hidden_of, with_hidden
from trainables.settings import RobustnessSettings  # noqa: F401  (its settings, also imported from here)

# Seeds of the attack's batches and of its ES sampling: the same for every trial and the oracle, so they compare.
ATTACK_SEED = 7_919
ES_SEED = 104_729


def check_attack_lines(data: StudyData, settings: RobustnessSettings) -> None:
    """A clear error, before any trial, when the forget set is too small to hold out lines for the attack."""
    from trainables.data import DataError

    if settings.relearn and not data.forget.attack:
        raise DataError(f"forget file {data.forget.path}: too few lines to hold out any for the relearning attack "
                        f"({len(data.forget.train)} training lines); add lines or set robustness.relearn: false")


# ---- leaving the trial as it was ------------------------------------------------------------------------------


def evaluator_of(run) -> Evaluator:
    """What measures `run`: an Unlearner's evaluator, or the Evaluator itself (the oracle has no Unlearner)."""
    return run if isinstance(run, Evaluator) else run.evaluator


def attack_parameters(run, which: str) -> list[torch.nn.Parameter]:
    ev = evaluator_of(run)
    params = list(ev.adapter.parameters())
    if which == "all":
        seen = {id(p) for p in params}
        params += [p for p in ev.model.parameters() if id(p) not in seen]
    return params


@contextmanager
def preserved(run, which: str = "adapter"):
    """Yields the parameters an attack may train; on exit every one of them, its gradient and requires_grad flag,
    the model's train/eval mode and torch's random stream are as they were on entry (bit for bit)."""
    model = evaluator_of(run).model
    params = attack_parameters(run, which)
    values = [p.detach().clone() for p in params]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    flags = [p.requires_grad for p in params]
    training = model.training
    devices = [] if model.device.type == "cpu" else [model.device]
    with torch.random.fork_rng(devices=devices):
        try:
            for p in params:
                p.requires_grad_(True)
            yield params
        finally:
            with torch.no_grad():
                for p, v, g, f in zip(params, values, grads, flags):
                    p.copy_(v)
                    p.grad = g
                    p.requires_grad_(f)
            model.train(training)


# ---- measurements ---------------------------------------------------------------------------------------------


def forget_es(run, prompts: int, seed: int = ES_SEED) -> float | None:
    """Extraction strength of sampled continuations of the first `prompts` held-out forget prompts, through the
    gate (None when the study has no language ID to tell languages apart)."""
    return evaluator_of(run).forget_es(prompts, seed)


def half_steps(curve: list[tuple[int, float]]) -> float:
    """Attack steps until half of what was forgotten is back: the first measured step whose forget_efficacy is at
    most half the starting one; 0 when nothing was forgotten; NaN when not within the attack."""
    start = curve[0][1]
    if start <= 0:
        return 0.0
    return next((float(step) for step, fe in curve if fe <= start / 2), math.nan)


def relearn(ev: Evaluator, lines: list[str], which: str, lr: float, steps: int, eval_every: int, batch_size: int,
            rng: random.Random, es_prompts: int | None = None, stop_when_recovered: bool = False) -> dict:
    """Fine-tune the run on `lines` (next-token NLL, AdamW at `lr` on the adapter's parameters or on all of them),
    measuring forget_efficacy every `eval_every` steps and at the last; then restore the run. Returns the curve
    [(step, forget_efficacy)], the last evaluate_step() and, with `es_prompts`, ES at the attack's end.
    `stop_when_recovered`: stop at the first measurement where forget_efficacy is back to 0 (everything forgotten
    is back: more steps cannot find a worse case)."""
    tok, model, setup = ev.tok, ev.model, ev.setup
    rows = [tok.encode(t, add_special_tokens=False) for t in lines]
    with preserved(ev, which) as params:
        measured = ev.evaluate_step()
        curve = [(0, measured["forget_efficacy"])]
        optimizer = torch.optim.AdamW(params, lr=lr)
        for step in range(1, steps + 1):
            model.train()
            batch = to_device(pad_rows(tok, [rows[rng.randrange(len(rows))] for _ in range(batch_size)],
                                       setup.train.max_len), model.device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
            nll, count = token_nll(logits, batch["labels"])
            loss = nll.sum() / count.sum().clamp_min(1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if setup.train.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, setup.train.max_grad_norm)
            optimizer.step()
            if step % eval_every == 0 or step == steps:
                measured = ev.evaluate_step()
                curve.append((step, measured["forget_efficacy"]))
                if stop_when_recovered and measured["forget_efficacy"] <= 0:
                    break
        es = forget_es(ev, es_prompts) if es_prompts else None
    return {"curve": curve, "last": measured, "es": es}


def relearning_attack(run, settings: RobustnessSettings) -> dict[str, float]:
    """Fine-tune a copy of the trial's state on the forget set's attack lines (next-token NLL, AdamW), measure
    forget_efficacy every `relearn_eval_every` steps and ES at the end, then restore the trial's state.

    Returns `relearn_forget_efficacy`, `relearn_utility`, `relearn_es_forget` (at the attack's end),
    `relearn_forget_efficacy_<k>` along the way, `relearn_half_steps`, `relearn_drop` (forget_efficacy before
    minus after: the forget-language mass that came back, as a share of the base model's) and `relearn_share_back`
    (the drop as a share of what was forgotten: NaN when nothing was); with the oracle's share known,
    `relearn_excess` (ours minus the oracle's: at most 0 when the model relearns no faster than a model that never
    saw the language).
    """
    ev = evaluator_of(run)
    if not ev.data.forget.attack:
        raise ValueError("the forget set holds no attack lines (trainables.data.split_attack)")
    rng = random.Random(f"{ATTACK_SEED}:{ev.setup.train.seed}")
    result = relearn(ev, ev.data.forget.attack, settings.relearn_params, settings.relearn_lr, settings.relearn_steps,
                     settings.relearn_eval_every, settings.relearn_batch_size, rng, settings.relearn_es_prompts)
    curve = result["curve"]
    start = curve[0][1]
    out: dict[str, float] = {f"relearn_forget_efficacy_{step}": fe for step, fe in curve[1:-1]}
    out["relearn_forget_efficacy"] = curve[-1][1]
    out["relearn_utility"] = result["last"]["utility"]
    if result["es"] is not None:
        out["relearn_es_forget"] = result["es"]
    out["relearn_half_steps"] = half_steps(curve)
    out["relearn_drop"] = start - curve[-1][1]
    out["relearn_share_back"] = out["relearn_drop"] / start if start > 0 else math.nan
    if settings.oracle_share_back is not None:
        out["relearn_excess"] = out["relearn_share_back"] - settings.oracle_share_back
    return out


def edit_layers(run) -> list[int]:
    """The decoder layers the adapter edits: LoReFT's chosen layers, else those holding adapter parameters."""
    ev = evaluator_of(run)
    layers = decoder_layers(ev.model)
    interventions = getattr(ev.adapter, "interventions", None)
    if interventions is not None:
        return sorted(int(k) for k in interventions)
    adapter = {id(p) for p in ev.adapter.parameters()}
    return [i for i, layer in enumerate(layers) if any(id(p) in adapter for p in layer.parameters())]


@contextmanager
def activation_noise(model, layers: list[int], amp: float, seed: int):
    """N(0, amp²) added to the hidden states at the output of each of `layers`, from its own generator (so the
    model's sampling draws the same random numbers with and without the noise)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)

    def hook(module, args, output):
        h = hidden_of(output)
        noise = torch.randn(h.shape, generator=generator, device=h.device, dtype=torch.float32)
        return with_hidden(output, h + (amp * noise).to(h.dtype))

    handles = [decoder_layers(model)[i].register_forward_hook(hook) for i in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def actpert_audit(run, amp: float, prompts: int) -> dict[str, float]:
    """ES and forget_efficacy with Gaussian noise at the edit layers, and the change in ES from the same prompts and
    sampling seed without it (`actpert_delta_es` > 0: the noise brings the forget language back)."""
    ev = evaluator_of(run)
    layers = edit_layers(ev)
    clean = forget_es(ev, prompts)
    with activation_noise(ev.model, layers, amp, seed=ES_SEED):
        noisy = forget_es(ev, prompts)
        fe = ev.evaluate_step()["forget_efficacy"]
    out = {"actpert_forget_efficacy": fe, "actpert_layers": float(len(layers))}
    if noisy is not None:
        out.update(actpert_es_forget=noisy, actpert_delta_es=noisy - clean)
    return out


def int8_model(run):
    """An int8 dynamically quantised copy of the unlearned model (CPU), LoRA merged into its weights first."""
    from torch.ao.quantization import quantize_dynamic

    model = evaluator_of(run).model
    if model.device.type != "cpu":
        raise ValueError(f"the int8 check uses torch's CPU dynamic quantiser; the trial's model is on {model.device}")
    model = copy.deepcopy(model)  # LoReFT's hooks come with it, bound to their own copy of the adapter
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.eval()
    return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def int8_check(run, prompts: int) -> dict[str, float]:
    """forget_efficacy (against the float base's token mass), utility and ES of the int8 copy (measured as the run
    is: its batches, baseline, gate; the adapter's norm its own)."""
    ev = evaluator_of(run)
    quantised = ev.with_model(int8_model(ev), ev.adapter)
    measured = quantised.evaluate_step()
    es = forget_es(quantised, prompts)
    out = {"int8_forget_efficacy": measured["forget_efficacy"], "int8_utility": measured["utility"]}
    if es is not None:
        out["int8_es_forget"] = es
    return out


def robustness_metrics(unlearner, settings: RobustnessSettings, final: bool) -> dict[str, float]:
    """Every check the settings ask for at this point of the trial (`final`: its last step)."""
    out: dict[str, float] = {}
    ev = unlearner.evaluator
    if settings.relearn and (final or unlearner.step in settings.relearn_at_steps):
        out.update(relearning_attack(ev, settings))
    if final and settings.actpert_audit:
        out.update(actpert_audit(ev, settings.actpert_amp, settings.relearn_es_prompts))
    if final and settings.int8_check:
        out.update(int8_check(ev, settings.relearn_es_prompts))
    return out
