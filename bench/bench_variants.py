"""Every preset on the embedded default at equal steps and equal learning rates, and adapter norm growth.

    .venv/bin/python bench/bench_variants.py [--steps 100] [--adapter lora|loreft] [--growth-steps 200]
        [--variants ga dsg ...] [--es-prompts 96] [--sae-steps 2000]
        # smoke: --steps 2 --growth-steps 2 --es-prompts 2 --sae-steps 20

Prints, per preset: final forget_efficacy, utility, xlang_utility, ES on forget (96 sampled continuations),
adapter norm, and median wall time per step relative to `ga` (target: adaptive presets <= 1.10x). A gate-only
preset (dsg, sae_gate) trains nothing: its row is its gate on the base model, measured at step 0, with no time per
step. Then the adapter's weight norm over steps for ga, bounded and sine_bounded at a high learning rate (1e-2), to
measure rather than assume the claim (docs/methods.md) that GA grows weights without bound. One thread, as in a 1-CPU trial.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainables.methods.registry import VARIANTS, get_variant
from trainables.settings import SAEConfig
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner


def run(variant: str, adapter: str, steps: int, lr: float, norm_every: int = 0, es_prompts: int | None = 96,
        sae: SAEConfig = SAEConfig()):
    """Final metrics (the full evaluation on `es_prompts`; None: the per-step ones only), the median seconds per
    step (None for a gate-only variant, which has no step: measured at step 0) and the adapter norm every
    `norm_every` steps."""
    hp = {"variant": variant, "adapter": adapter, "lr": lr, "lr_forget": lr, "lr_retain": lr}
    u = Unlearner(TrialSetup(train=TrainSettings(steps=steps), sae=sae), hp)
    times, norms, m = [], [], {}
    for _ in range(u.steps):
        t = time.perf_counter()
        m = u.train_step()
        times.append(time.perf_counter() - t)
        if norm_every and u.step % norm_every == 0:
            norms.append((u.step, u.evaluate_step()["adapter_norm"]))
        if m["diverged"]:
            break
    m.update(u.evaluate_step())
    if es_prompts is not None:
        m.update(u.evaluate_full(es_prompts))
    return m, statistics.median(times) if times else None, norms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--adapter", default="lora")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--growth-steps", type=int, default=200)
    ap.add_argument("--variants", nargs="+", default=None, help="presets to run (default: every registered one); "
                    "ga always runs first, as the time baseline")
    ap.add_argument("--es-prompts", type=int, default=96, help="prompts of the final ES evaluation")
    ap.add_argument("--sae-steps", type=int, default=SAEConfig.steps, help="training steps of the SAE a gate-only "
                    "preset reads (trained once and cached; a smoke check needs few)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    chosen = args.variants or sorted(VARIANTS)
    for name in chosen:
        try:
            get_variant(name)
        except KeyError as e:
            ap.error(e.args[0])
    print(f"presets at {args.steps} steps, lr = lr_forget = lr_retain = {args.lr}, adapter {args.adapter} "
          "(sine_bounded uses its own sine LoRA); gate-only presets at step 0")
    order = ["ga"] + [v for v in chosen if v != "ga"]
    width = max(13, *map(len, order))
    print(f"{'preset':{width}} {'forget_eff':>10} {'utility':>8} {'xlang_u':>8} {'es_forget':>9} {'adapter_norm':>12} "
          f"{'s/step':>7} {'vs ga':>6}")
    base = None
    for name in order:
        m, per_step, _ = run(name, args.adapter, args.steps, args.lr, es_prompts=args.es_prompts,
                             sae=SAEConfig(steps=args.sae_steps))
        base = base or per_step
        timing = "      -  gate only, step 0" if per_step is None else f"{per_step:7.3f} {per_step / base:5.2f}x"
        print(f"{name:{width}} {m['forget_efficacy']:10.3f} {m['utility']:8.3f} {m.get('xlang_utility', float('nan')):8.3f} "
              f"{m['es_forget']:9.3f} {m['adapter_norm']:12.2f} {timing}")
    every = max(args.growth_steps // 8, 1)
    print(f"\nadapter norm over steps at lr 1e-2 ({args.growth_steps} steps)")
    for name in ("ga", "bounded", "sine_bounded"):
        _, _, norms = run(name, args.adapter, args.growth_steps, 1e-2, norm_every=every, es_prompts=None)
        print(f"{name:13} " + "  ".join(f"{s}:{n:.2f}" for s, n in norms))


if __name__ == "__main__":
    main()
