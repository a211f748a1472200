"""Every preset on the embedded default at equal steps and equal learning rates, and adapter norm growth.

    .venv/bin/python bench/bench_variants.py [--steps 100] [--adapter lora|loreft] [--growth-steps 200]

Prints, per preset: final forget_efficacy, utility, xlang_utility, ES on forget (96 sampled continuations),
adapter norm, and median wall time per step relative to `ga` (target: adaptive presets <= 1.10x). Then the
adapter's weight norm over steps for ga, bounded and sine_bounded at a high learning rate (1e-2), to measure
rather than assume the guide's claim that GA grows weights without bound. One thread, as in a 1-CPU trial.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainables.registry import VARIANTS
from trainables.trial_setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner


def run(variant: str, adapter: str, steps: int, lr: float, norm_every: int = 0):
    hp = {"variant": variant, "adapter": adapter, "lr": lr, "lr_forget": lr, "lr_retain": lr}
    u = Unlearner(TrialSetup(train=TrainSettings(steps=steps)), hp)
    times, norms, m = [], [], {}
    for _ in range(steps):
        t = time.perf_counter()
        m = u.train_step()
        times.append(time.perf_counter() - t)
        if norm_every and u.step % norm_every == 0:
            norms.append((u.step, u.evaluate_step()["adapter_norm"]))
        if m["diverged"]:
            break
    m.update(u.evaluate_step())
    m.update(u.evaluate_full(96))
    return m, statistics.median(times), norms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--adapter", default="lora")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--growth-steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"presets at {args.steps} steps, lr = lr_forget = lr_retain = {args.lr}, adapter {args.adapter} "
          "(sine_bounded uses its own sine LoRA)")
    print(f"{'preset':13} {'forget_eff':>10} {'utility':>8} {'xlang_u':>8} {'es_forget':>9} {'adapter_norm':>12} "
          f"{'s/step':>7} {'vs ga':>6}")
    base = None
    for name in ["ga"] + [v for v in sorted(VARIANTS) if v != "ga"]:
        m, per_step, _ = run(name, args.adapter, args.steps, args.lr)
        base = base or per_step
        print(f"{name:13} {m['forget_efficacy']:10.3f} {m['utility']:8.3f} {m.get('xlang_utility', float('nan')):8.3f} "
              f"{m['es_forget']:9.3f} {m['adapter_norm']:12.2f} {per_step:7.3f} {per_step / base:5.2f}x")
    every = max(args.growth_steps // 8, 1)
    print(f"\nadapter norm over steps at lr 1e-2 ({args.growth_steps} steps)")
    for name in ("ga", "bounded", "sine_bounded"):
        _, _, norms = run(name, args.adapter, args.growth_steps, 1e-2, norm_every=every)
        print(f"{name:13} " + "  ".join(f"{s}:{n:.2f}" for s, n in norms))


if __name__ == "__main__":
    main()
