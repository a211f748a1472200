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

With --front, the real thing side by side: the default study (`unlearn-study run`, no arguments, in a fresh
folder), timed, then the audit of its whole front as `unlearn-study audit --study default` runs it (the oracle
once, then every front member), timed in this process; both wall times, their ratio (the target is at most 25%),
and how many attacks stopped early (their curves in MLflow end before --attack-steps). --study-dir reuses a study
this mode ran before (its wall time given by --study-seconds), to time the audit with other sweep settings:

    PYTHONPATH=. python bench/bench_robustness.py --front [--study-dir DIR --study-seconds 552]
        [--attacks ... --attack-steps 50 --attack-es-prompts 32 --attack-eval-every 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
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


def default_trial(unlearner: Unlearner, setup: TrialSetup) -> dict[str, float]:
    """The trial as the trainable runs it; the metrics of its last step (its final evaluation included)."""
    while unlearner.step < unlearner.steps:
        unlearner.train_step()
        metrics = unlearner.evaluate_step()
        last = unlearner.step >= unlearner.steps
        if unlearner.step % setup.train.eval_every == 0 or last:
            metrics |= unlearner.evaluate_full(setup.train.final_es_prompts if last else setup.train.es_prompts)
    return metrics


def time_sweep(u: Unlearner, setup: TrialSetup, args) -> None:
    """The sweep on the trial and on the oracle, timed; its cost on a front against the study's wall time."""
    from study.oracle import oracle_evaluators
    from trainables.embedded import ensure_oracle

    settings = SweepSettings(attacks=tuple(args.attacks), attack_steps=args.attack_steps,
                             attack_eval_every=args.attack_eval_every, attack_es_prompts=args.attack_es_prompts)
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


def build_study_models(uri: str, study: str) -> None:
    """The finished study's embedded model and oracle, as `unlearn-study audit` loads them."""
    from mlflow.tracking import MlflowClient

    from study.oracle import oracle_model_path
    from study.prepare import prepare_study
    from study.results.audit import load_study, stored_config

    client = MlflowClient(uri)
    cfg = stored_config(client, load_study(uri, study, log=lambda *_: None).parent_run_id)
    oracle_model_path(cfg, prepare_study(cfg, log=print), log=print)


def time_front_audit(args) -> None:
    """The default study, then the audit of its whole front, each timed; the audit's share of the study."""
    from mlflow.tracking import MlflowClient

    from study.results.audit import AUDIT_COLUMNS, audit_finished
    from study.runner import format_table

    work = Path(args.study_dir or tempfile.mkdtemp(prefix="bench-robustness-"))
    if args.study_dir is None:
        cli = Path(sys.executable).with_name("unlearn-study")
        t0 = time.perf_counter()
        with (work / "study.txt").open("w") as out:
            config = ["--config", str(Path(args.config).resolve())] if args.config else []
            subprocess.run([str(cli), "run", *config], cwd=work, stdout=out, stderr=subprocess.STDOUT, check=True)
        study_s = time.perf_counter() - t0
        print(f"the default study: {study_s:.0f} s wall (its output: {work / 'study.txt'})")
    else:
        study_s = args.study_seconds
    os.chdir(work)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    sweep_settings = {"attack_steps": args.attack_steps, "attack_eval_every": args.attack_eval_every,
                      "attack_es_prompts": args.attack_es_prompts, "attacks": list(args.attacks)}
    # The embedded model and its oracle, built now if this machine's cache lacks them: a study builds both before
    # its first trial, so their build is not the audit's cost (an audit on a cold cache once read 543 s, 465 s of
    # it the two builds).
    t0 = time.perf_counter()
    build_study_models(uri, "default")
    print(f"the study's model and oracle, built or found in the cache: {time.perf_counter() - t0:.0f} s "
          "(not counted below)")
    t0 = time.perf_counter()
    rows = audit_finished(uri, "default", top=args.top, log=print, sweep=sweep_settings)
    audit_s = time.perf_counter() - t0
    print(format_table([{c: r.get(c) for c in AUDIT_COLUMNS} for r in rows]))
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("default").experiment_id])
    audited = [r for r in runs if r.data.tags.get("role") == "study" or "worst_relearn_forget_efficacy" in r.data.metrics]
    relearning, stopped = 0, 0
    for run in audited:
        for key in run.data.metrics:
            if key.startswith(("attack/relearn", "oracle_attack/relearn")) and key.endswith("/curve"):
                relearning += 1
                stopped += max(m.step for m in client.get_metric_history(run.info.run_id, key)) < args.attack_steps
    print(f"audit of the front ({len(rows)} members and the oracle, {len(args.attacks)} attacks, "
          f"{args.attack_steps} steps, ES on {args.attack_es_prompts} prompts): {audit_s:.0f} s wall; "
          f"{stopped} of {relearning} relearning attacks stopped early")
    print(f"side by side: study {study_s:.0f} s, audit {audit_s:.0f} s = {audit_s / study_s:.1%} of the study "
          f"(target <= 25%); folder {work}")


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
    parser.add_argument("--attack-eval-every", type=int, default=SweepSettings.attack_eval_every)
    parser.add_argument("--attack-es-prompts", type=int, default=SweepSettings.attack_es_prompts)
    parser.add_argument("--front", action="store_true", help="the default study, then the audit of its front, "
                        "side by side")
    parser.add_argument("--top", type=int, help="with --front: audit at most this many front members, the knee first")
    parser.add_argument("--config", help="with --front: a config for `unlearn-study run` (study name default) "
                        "instead of the default study, e.g. a cut-down one to check this mode runs")
    parser.add_argument("--study-dir", help="with --front: a folder where --front ran the study before")
    parser.add_argument("--front-size", type=int, default=5)
    parser.add_argument("--study-seconds", type=float, help="the study's wall time the sweep is set against")
    args = parser.parse_args()
    if args.front:
        if args.study_dir and not args.study_seconds:
            parser.error("--study-dir needs --study-seconds (the study's wall time)")
        time_front_audit(args)
        return
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
