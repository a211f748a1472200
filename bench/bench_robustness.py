"""What the relearning attack costs next to a default trial, and what it finds (figures, no assertions).

    PYTHONPATH=. python bench/bench_robustness.py [--variant ga --lr 1e-3 --repeats 2 --extras]
        [--steps 100 --relearn-steps 50]      # smoke: --repeats 1 --steps 2 --relearn-steps 2 --extras

One default trial's work (100 steps; per-step evaluation; collateral utilities and ES every 25 steps and at the
end, as the trainable does), then the default attack on its final state, timed side by side in one process and
repeated (the machine is shared: the ratio is what to read). With --extras, also a stronger attack (lr 1e-3), the
attack on every parameter, the activation-perturbation audit and the int8 check (off by default in a study).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from trainables.metrics.robustness import RobustnessSettings, actpert_audit, int8_check, relearning_attack
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner


def default_trial(unlearner: Unlearner, setup: TrialSetup) -> None:
    while unlearner.step < unlearner.steps:
        unlearner.train_step()
        unlearner.evaluate_step()
        last = unlearner.step >= unlearner.steps
        if unlearner.step % setup.train.eval_every == 0 or last:
            unlearner.evaluate_full(setup.train.final_es_prompts if last else setup.train.es_prompts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="ga")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--extras", action="store_true")
    parser.add_argument("--steps", type=int, default=TrainSettings.steps, help="the trial's steps")
    parser.add_argument("--relearn-steps", type=int, default=RobustnessSettings.relearn_steps)
    args = parser.parse_args()
    torch.set_num_threads(1)
    languages = (("forget", "hi"), ("retain", "en"), ("mixed", "hi"), ("xlang_bn", "bn"), ("xlang_pa", "pa"),
                 ("xlang_ur", "ur"))
    setup = TrialSetup(train=TrainSettings(steps=args.steps), languages=languages)
    settings = RobustnessSettings(relearn_steps=args.relearn_steps)
    for r in range(args.repeats):
        u = Unlearner(setup, {"variant": args.variant, "lr": args.lr})
        t0 = time.perf_counter()
        default_trial(u, setup)
        trial_s = time.perf_counter() - t0
        before = u.evaluate_step()["forget_efficacy"]
        t0 = time.perf_counter()
        attack = relearning_attack(u, settings)
        attack_s = time.perf_counter() - t0
        print(f"repeat {r}: trial {trial_s:.1f}s, attack {attack_s:.1f}s ({attack_s / trial_s:.1%} of the trial); "
              f"forget_efficacy {before:.3f} -> {attack['relearn_forget_efficacy']:.3f}, relearn_es_forget "
              f"{attack.get('relearn_es_forget', float('nan')):.3f}, half steps {attack['relearn_half_steps']}")
        if not args.extras:
            continue
        strong = relearning_attack(u, replace(settings, relearn_lr=1e-3))
        full = relearning_attack(u, replace(settings, relearn_params="all"))
        print(f"  lr 1e-3 on the adapter: {strong['relearn_forget_efficacy']:.3f}; lr 5e-5 on all parameters: "
              f"{full['relearn_forget_efficacy']:.3f}")
        t0 = time.perf_counter()
        pert = actpert_audit(u, 0.1, settings.relearn_es_prompts)
        pert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        q = int8_check(u, settings.relearn_es_prompts)
        q_s = time.perf_counter() - t0
        print(f"  actpert (amp 0.1, {pert_s:.1f}s): {pert}\n  int8 ({q_s:.1f}s): {q}")


if __name__ == "__main__":
    main()
