"""mmie.py entry points: the functions the adaptive-unlearning proposal (docs/methods.md, "Sources") named for
mmie.py, implemented on the variant registry.

    from trainables.adaptive_unlearning import train_lora_adaptive, train_reft_adaptive
    lora = train_lora_adaptive(model, tok, forget, retain, device, steps=400, lr_forget=1e-4, lr_retain=5e-5)

`forget` and `retain` are lists of texts, as mmie.py loads them. The keyword arguments are the proposal's (steps, bs,
max_len, lr_forget, lr_retain, bound, temperature, use_curriculum, recompute_weights_every, seed) plus `variant`
(default "adaptive") and any other knob of the chosen variant: the JSON `unlearn-study export` writes holds
exactly these keyword arguments, so an exported configuration runs unchanged. `run_config` runs such a JSON's
arguments and also returns the run's final metrics.
"""

from __future__ import annotations

from dataclasses import replace

from trainables.data import UTILITY_SET, StudyData, split_set
from trainables.methods import variants  # noqa: F401  (registers every piece and variant)
from trainables.methods.registry import (
    DEFAULT_ADAPTER,
    DEFAULT_RETAIN_OBJECTIVE,
    Variant,
    get_variant,
)
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner


def resolve_variant(name: str, use_curriculum: bool | None, recompute_weights_every: int | None) -> Variant:
    """The registered variant, adjusted by the proposal's two switches.

    use_curriculum adds or removes the curriculum weighting. recompute_weights_every = 0 makes LoReUn static
    (frozen-model losses, scored once); any positive value keeps it dynamic, which here recomputes the weights at
    every step from the training forward pass at no extra cost, so the interval itself has nothing left to set.
    """
    v = get_variant(name)
    weightings = [w for w in v.weightings if w != "uniform"]
    if use_curriculum is not None and use_curriculum != ("curriculum" in weightings):
        weightings = weightings + ["curriculum"] if use_curriculum else [w for w in weightings if w != "curriculum"]
    if recompute_weights_every == 0:
        weightings = ["loreun_static" if w == "loreun" else w for w in weightings]
    weightings = tuple(weightings) or ("uniform",)
    if weightings == v.weightings:
        return v
    return replace(v, name=f"{v.name}[{'+'.join(weightings)}]", weightings=weightings)


def _data(forget: list[str], retain: list[str], seed: int, heldout: int,
          utility_eval: list[str] | None = None) -> StudyData:
    # The study's own split (held-out and attack lines included): the same lines in, the same training out.
    sets = [("forget", forget), ("retain", retain)] + ([(UTILITY_SET, utility_eval)] if utility_eval else [])
    return StudyData(sets={name: split_set(name, f"<{name} texts>", list(texts), seed, heldout)
                           for name, texts in sets})


def run_config(model, tok, forget: list[str], retain: list[str], device: str = "cpu", *, adapter: str = DEFAULT_ADAPTER,
               variant: str = "adaptive", steps: int = 500, bs: int = TrainSettings.batch_size,
               max_len: int = TrainSettings.max_len, seed: int = 0,
               use_curriculum: bool | None = None, recompute_weights_every: int | None = None,
               max_grad_norm: float = TrainSettings.max_grad_norm, heldout: int = TrialSetup.heldout,
               lr_schedule: str = TrainSettings.lr_schedule, warmup_ratio: float = TrainSettings.warmup_ratio,
               retain_objective: str = DEFAULT_RETAIN_OBJECTIVE, stop_at_step: int | None = None,
               utility_eval: list[str] | None = None, **knobs) -> tuple[Unlearner, dict]:
    """Unlearn with one configuration; returns the run (model, adapter) and its final per-step metrics.
    `retain_objective` names the retain step: kl (mmie.py's, the default) or nll. `stop_at_step` ends the run after
    that many of its `steps` steps (an exported diverged trial: the schedule is the `steps`-step one, and the run
    stops where the trial's metrics were measured). `utility_eval`: the lines `utility` is measured on, never
    trained on (a study's data.utility_eval, which its export names in `study_data`); without them utility is
    measured on held-out retain lines, which the retain steps fit, as mmie.py's entry points are called."""
    for p in model.parameters():
        p.requires_grad_(False)  # only the adapter trains
    train = TrainSettings(steps=steps, batch_size=bs, max_len=max_len, seed=seed, max_grad_norm=max_grad_norm,
                          lr_schedule=lr_schedule, warmup_ratio=warmup_ratio)
    setup = TrialSetup(model="<in memory>", device=device, train=train, heldout=heldout)
    # A gate acts at evaluation, not in training: the entry points return the trained adapter without it (an
    # exported gated trial names its gate; trainables.methods.gates.sae_gates.build_gate builds it from the model's path).
    chosen = replace(resolve_variant(variant, use_curriculum, recompute_weights_every), gate=None)
    hparams = {"variant": chosen.name, "adapter": adapter, "retain_objective": retain_objective, **knobs}
    unlearner = Unlearner(setup, hparams, model=model.to(device),
                          tokenizer=tok, data=_data(forget, retain, seed, heldout, utility_eval), variant=chosen)
    metrics: dict = {}
    last = unlearner.steps if stop_at_step is None else min(stop_at_step, unlearner.steps)
    while unlearner.step < last:
        metrics = unlearner.train_step()
        if metrics["diverged"]:
            break
    metrics.update(unlearner.evaluate_step())
    return unlearner, metrics


def train_lora_adaptive(model, tok, forget, retain, device="cpu", steps=500, bs=16, max_len=256, lr_forget=1e-4,
                        lr_retain=5e-5, bound=10.0, temperature=1.0, use_curriculum=True,
                        recompute_weights_every=50, seed=0, variant="adaptive", **knobs):
    """Adaptive unlearning with a LoRA adapter (mmie.py's: rank 8 on q/k/v/o, alpha 16, unless `rank`,
    `target_modules`, `lora_alpha` say otherwise). Returns the model with the trained adapter (a peft model)."""
    unlearner, _ = run_config(
        model, tok, forget, retain, device, adapter="lora", variant=variant, steps=steps, bs=bs, max_len=max_len,
        seed=seed, use_curriculum=use_curriculum, recompute_weights_every=recompute_weights_every,
        lr_forget=lr_forget, lr_retain=lr_retain, bound=bound, temperature=temperature, **knobs,
    )
    return unlearner.model


def train_reft_adaptive(model, tok, layers, forget, retain, device="cpu", rank=4, steps=500, bs=16, max_len=256,
                        lr_forget=5e-5, lr_retain=2e-5, bound=10.0, temperature=1.0, use_curriculum=True,
                        recompute_weights_every=50, seed=0, variant="adaptive", **knobs):
    """Adaptive unlearning with LoReFT interventions at `layers` (a list of layer indices, or "all").
    Returns (model, adapter); adapter.detach() removes the interventions."""
    layers = layers if isinstance(layers, str) else ",".join(str(i) for i in layers)
    unlearner, _ = run_config(
        model, tok, forget, retain, device, adapter="loreft", variant=variant, steps=steps, bs=bs, max_len=max_len,
        seed=seed, use_curriculum=use_curriculum, recompute_weights_every=recompute_weights_every, rank=rank,
        layers=layers, lr_forget=lr_forget, lr_retain=lr_retain, bound=bound, temperature=temperature, **knobs,
    )
    return unlearner.model, unlearner.adapter
