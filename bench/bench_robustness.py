"""What the relearning attack costs next to a default trial, and what it finds (figures, no assertions).

    PYTHONPATH=. python bench/bench_robustness.py [--variant ga --lr 1e-3 --repeats 2 --extras]
        [--steps 100 --relearn-steps 50]      # smoke: --repeats 1 --steps 2 --relearn-steps 2 --extras

One default trial's work (100 steps; per-step evaluation; collateral utilities and ES every 25 steps and at the
end, as the trainable does), then the default attack on its final state, timed side by side in one process and
repeated (the machine is shared: the ratio is what to read). With --extras, also a stronger attack (lr 1e-3), the
attack on every parameter, the activation-perturbation audit and the int8 check (off by default in a study).

With --sweep, the attacker sweep's cost (trainables.metrics.attack_sweep, the default grid unless --attacks) on the
trial's final state and on the retain-only oracle, and what it costs on a front of --front-size members (the oracle
once, each member once) as a share of a study of --study-seconds (the default study's wall time, measured by
bench/measure_default_study.py; the target is at most 25%):

    PYTHONPATH=. python bench/bench_robustness.py --sweep --repeats 1 --front-size 5 --study-seconds 600
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from trainables.metrics.attack_sweep import SweepSettings, sweep
from trainables.metrics.robustness import (
    RobustnessSettings,
    actpert_audit,
    int8_check,
    relearning_attack,
)
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner


def default_trial(unlearner: Unlearner, setup: TrialSetup) -> None:
    while unlearner.step < unlearner.steps:
        unlearner.train_step()
        unlearner.evaluate_step()
        last = unlearner.step >= unlearner.steps
        if unlearner.step % setup.train.eval_every == 0 or last:
            unlearner.evaluate_full(setup.train.final_es_prompts if last else setup.train.es_prompts)


def time_sweep(u: Unlearner, setup: TrialSetup, args) -> None:
    """The sweep on the trial and on the oracle, timed; its cost on a front against the study's wall time."""
    from study.oracle import oracle_evaluators
    from trainables.embedded import ensure_oracle

    settings = SweepSettings(attacks=tuple(args.attacks), attack_steps=args.attack_steps)
    t0 = time.perf_counter()
    results = sweep(u, settings, log=print)
    member_s = time.perf_counter() - t0
    _, oracle = oracle_evaluators(setup, str(ensure_oracle(setup.embedded, "hi").model_dir))
    t0 = time.perf_counter()
    oracle_results = sweep(oracle, settings, log=print)
    oracle_s = time.perf_counter() - t0
    stopped = sum(r.curve[-1][0] < args.attack_steps for r in results + oracle_results if r.attack.kind == "relearn")
    total = oracle_s + args.front_size * member_s
    print(f"sweep ({len(settings.attacks)} attacks, {args.attack_steps} steps): trial {member_s:.1f}s, oracle "
          f"{oracle_s:.1f}s, {stopped} relearning attacks stopped early; a front of {args.front_size}: {total:.0f}s"
          + (f" = {total / args.study_seconds:.1%} of a {args.study_seconds:.0f}s study" if args.study_seconds else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="ga")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--extras", action="store_true")
    parser.add_argument("--steps", type=int, default=TrainSettings.steps, help="the trial's steps")
    parser.add_argument("--relearn-steps", type=int, default=RobustnessSettings.relearn_steps)
    parser.add_argument("--sweep", action="store_true", help="time the attacker sweep too")
    parser.add_argument("--attacks", nargs="+", default=list(SweepSettings.attacks))
    parser.add_argument("--attack-steps", type=int, default=SweepSettings.attack_steps)
    parser.add_argument("--front-size", type=int, default=5)
    parser.add_argument("--study-seconds", type=float, help="the study's wall time the sweep is set against")
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
        if args.sweep:
            time_sweep(u, setup, args)
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
