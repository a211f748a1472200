"""Search strategies at equal trial-steps, and what running trials through Ray Tune costs over a plain loop.

    .venv/bin/python bench/bench_search.py [--seeds 3] [--steps 60] [--random-trials 12] [--sched-trials 24]
        [--grace 10] [--eta 3] [--overhead-trials 4] [--variants ga npo ...] [--only search|overhead]

Cost: the setting of docs/benchmarks.md (`--sched-trials 16 --grace 5`, the 8 training variants) runs 3 seeds x 3 studies,
then 2 x 4 overhead trials of 60 steps (`--only overhead` runs that part alone); docs/benchmarks.md says what it took. The
smoke setting `--seeds 1 --steps 6 --random-trials 2 --sched-trials 3 --grace 2 --overhead-trials 1` takes a few
minutes. Everything
runs in a fresh temporary working directory, each study with its own MLflow sqlite store there.

1. Search strategies on the embedded default (the whole ladder of variants unless --variants), per seed:
   (a) random search (Optuna's random sampler) with FIFO: N trials x S steps, the full budget;
   (b) Optuna TPE + ASHA on the equal-weight sum of (forget_efficacy, utility);
   (c) Optuna TPE + the multi-objective ASHA.
   (b) and (c) run --sched-trials trials each; early stopping decides how many trial-steps (the sum of every
   trial's final `step`) they actually spend, and that is what is printed next to each hypervolume. Hypervolume is
   that of the trials that finished on their own (completed or diverged; trials stopped early do not count, as in
   the study's own front), against `study.pareto.reference_point`. Random search is also scored on its first k
   trials (in start order), k chosen so that their trial-steps come closest to what MO-ASHA spent: the two at
   equal spend. Per seed, then mean +- std, then the check "MO-ASHA reaches X% of full-budget random search's
   hypervolume with Y% of its trial-steps (target: >= 95% with <= 1/3)".
2. Ray Tune's overhead: the same K trial configurations (variants ga and npo, lr and beta fixed, FIFO, one trial at
   a time) through `run_study`, then in a plain loop in this process driving `Unlearner` as the trainable does
   (train_step and evaluate_step every step, evaluate_full every eval_every steps and at the end). Both include
   `prepare_study` (the checks and language detection a study runs before Ray), model and data loading (the
   loop starts with this process's caches cleared) and every trial's steps; run_study adds Ray Tune's controller,
   the worker process start (imports, model load), MLflow logging (parent and child runs, per-step metrics, the
   front's table and plots) and checkpoints. Ray itself is started once before everything; its start-up time is
   printed separately and added in a second ratio. Target: <= 1.10x.

--smoke cuts every study's evaluation to 2 prompts per set and its relearning attack to 2 steps, and leaves out
the oracle's measurement on the parent run, with
`--seeds 1 --steps 2 --random-trials 2 --sched-trials 2 --grace 1 --overhead-trials 1 --variants ga`: a check that
the script runs (tests/test_benches.py), whose figures mean little.

Figures only; nothing is asserted.
"""

from __future__ import annotations

import os

# Before ray and mlflow are imported: neither should phone home from a benchmark.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import argparse
import contextlib
import io
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import ray
import torch

from study.config import StudyConfig, load_config
from study.pareto import hypervolume, reference_point
from study.prepare import prepare_study
from study.runner import SUMMARY_METRICS, run_study
from study.tracking.parent_run import child_runs, latest_parent_run
from trainables import evaluator as evaluator_module
from trainables.model import loading as modeling
from trainables.trial.status import ENDED_STATUSES, FINAL_STATUSES
from trainables.unlearner import Unlearner

STRATEGIES = {  # name -> (searcher, scheduler)
    "random+fifo": ("random", "fifo"),
    "tpe+asha": ("optuna", "asha"),
    "tpe+moasha": ("optuna", "moasha"),
}
TRAIN_SEED = 0  # fixed: the seeds vary the search, not the training batches
SMOKE = {"train.es_prompts": 2, "train.final_es_prompts": 2, "mmie_eval.items": 2, "mmie_eval.final_items": 2,
         "mmie_eval.max_new_tokens": 8, "mmie_eval.teacher_forced_items": 8,
         "robustness.relearn_steps": 2, "robustness.relearn_es_prompts": 2,
         "robustness.oracle": False}  # the parent run's reference, not part of what the search is judged on
SMOKE_OVERRIDES: dict = {}  # SMOKE under --smoke


def quiet(*_args) -> None:
    pass


def run_quietly(cfg: StudyConfig) -> list[dict]:
    """run_study without its table and without Ray Tune's experiment banner (printed to stdout even at verbose 0)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return run_study(cfg, log=quiet)


def study_config(name: str, overrides: dict) -> StudyConfig:
    """A study of its own: a unique name and its own MLflow store (a folder per study in the working directory)."""
    store = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=Path.cwd()))
    return load_config(overrides={"study": name, "tracking_uri": f"sqlite:///{store / 'mlflow.db'}",
                                  "train.seed": TRAIN_SEED, **SMOKE_OVERRIDES, **overrides})


def start_order(cfg: StudyConfig) -> list[str]:
    """Trial ids in the order the trials started (their MLflow child runs, oldest first): Ray's trial ids are
    random and run_study's rows are sorted by forget_efficacy."""
    client, exp_id, parent = latest_parent_run(cfg.tracking_uri, cfg.study)
    return [r.data.tags.get("trial_id") for r in child_runs(client, exp_id, parent)]


def front_hypervolume(rows: list[dict], objectives: list[str]) -> float:
    points = [[r.get(o) for o in objectives] for r in rows if r["status"] in FINAL_STATUSES]
    points = [p for p in points if all(v is not None and math.isfinite(v) for v in p)]
    return hypervolume(np.array(points, dtype=float).reshape(-1, len(objectives)), reference_point(objectives))


def trial_steps(rows: list[dict]) -> int:
    return int(sum(r.get("step") or 0 for r in rows))


def run_strategy(strategy: str, seed: int, args) -> dict:
    searcher, scheduler = STRATEGIES[strategy]
    trials = args.random_trials if strategy == "random+fifo" else args.sched_trials
    overrides = {"search.searcher": searcher, "search.num_samples": trials, "search.seed": seed,
                 "search.max_concurrent": 2, "scheduler.type": scheduler, "scheduler.grace_period": args.grace,
                 "scheduler.reduction_factor": args.eta, "train.steps": args.steps}
    if args.variants:
        overrides["variants"] = args.variants
    cfg = study_config(f"search-{strategy.replace('+', '-')}-s{seed}", overrides)
    started = time.perf_counter()
    rows = run_quietly(cfg)
    wall = time.perf_counter() - started
    by_id = {r["trial"]: r for r in rows}
    ordered = [by_id[t] for t in start_order(cfg) if t in by_id]
    ordered += [r for r in rows if r not in ordered]  # a trial without a child run (it errored first) goes last
    objectives = list(cfg.search.objectives)
    return {"strategy": strategy, "rows": ordered, "wall": wall, "objectives": objectives,
            "steps": trial_steps(rows), "hv": front_hypervolume(rows, objectives)}


def first_k_at_spend(result: dict, spend: int) -> dict:
    """Random search cut after its first k trials, k such that their trial-steps come closest to `spend`."""
    rows = result["rows"]
    cumulative = np.cumsum([r.get("step") or 0 for r in rows])
    k = int(np.argmin(np.abs(cumulative - spend))) + 1
    return {"k": k, "steps": int(cumulative[k - 1]), "hv": front_hypervolume(rows[:k], result["objectives"])}


def status_counts(rows: list[dict]) -> str:
    statuses = [r["status"] for r in rows]
    return ", ".join(f"{statuses.count(s)} {s.replace('_', ' ')}" for s in ENDED_STATUSES)


def mean_std(values: list[float], fmt: str = ".3f") -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{fmt}} ± {std:{fmt}}"


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def bench_search(args) -> None:
    budget = args.random_trials * args.steps
    print(f"== search strategies: random+fifo {args.random_trials} trials x {args.steps} steps (budget {budget} "
          f"trial-steps); TPE + ASHA / MO-ASHA {args.sched_trials} trials, grace {args.grace}, eta {args.eta}; "
          f"variants {' '.join(args.variants) if args.variants else 'default (whole ladder)'}; 2 trials at a time")
    print("hypervolume: front of the trials that finished on their own (completed or diverged), reference "
          "(forget_efficacy, utility) = (0, 0)")
    per_seed = []
    for seed in range(args.seeds):
        results = {s: run_strategy(s, seed, args) for s in STRATEGIES}
        random_full = results["random+fifo"]
        cut = first_k_at_spend(random_full, results["tpe+moasha"]["steps"])
        for r in results.values():
            print(f"seed {seed}  {r['strategy']:11} {len(r['rows']):3} trials ({status_counts(r['rows'])})  "
                  f"trial-steps {r['steps']:5} ({ratio(r['steps'], random_full['steps']):4.0%} of random's)  "
                  f"HV {r['hv']:.4f} ({ratio(r['hv'], random_full['hv']):4.0%} of random's)  wall {r['wall']:5.0f} s")
        print(f"seed {seed}  random, first {cut['k']} trials (closest to MO-ASHA's spend): trial-steps "
              f"{cut['steps']:5}  HV {cut['hv']:.4f}")
        per_seed.append((results, cut))

    print(f"\nover {args.seeds} seed(s), mean ± std")
    print(f"{'strategy':34} {'trial-steps':>16} {'of random':>14} {'hypervolume':>16} {'of random':>14}")

    def summary(name: str, picks) -> None:
        steps = [float(p["steps"]) for p in picks]
        hvs = [p["hv"] for p in picks]
        full = [res["random+fifo"] for res, _ in per_seed]
        steps_frac = [ratio(p["steps"], f["steps"]) * 100 for p, f in zip(picks, full)]
        hv_frac = [ratio(p["hv"], f["hv"]) * 100 for p, f in zip(picks, full)]
        print(f"{name:34} {mean_std(steps, '.0f'):>16} {mean_std(steps_frac, '.0f') + ' %':>14} "
              f"{mean_std(hvs, '.4f'):>16} {mean_std(hv_frac, '.0f') + ' %':>14}")

    for s in STRATEGIES:
        summary(s + (" (full budget)" if s == "random+fifo" else ""), [res[s] for res, _ in per_seed])
    summary("random, first k (MO-ASHA's spend)", [cut for _, cut in per_seed])
    hv_pct = [ratio(res["tpe+moasha"]["hv"], res["random+fifo"]["hv"]) * 100 for res, _ in per_seed]
    steps_pct = [ratio(res["tpe+moasha"]["steps"], res["random+fifo"]["steps"]) * 100 for res, _ in per_seed]
    print(f"\nMO-ASHA reaches {mean_std(hv_pct, '.0f')}% of full-budget random search's hypervolume with "
          f"{mean_std(steps_pct, '.0f')}% of its trial-steps (target: ≥ 95% with ≤ 1/3)")


def overhead_config(args) -> StudyConfig:
    return study_config("overhead", {
        "variants": ["ga", "npo"], "search.space": {"lr": {"value": 1e-3}, "beta": {"value": 0.1}},
        "search.searcher": "random", "search.num_samples": args.overhead_trials, "search.max_concurrent": 1,
        "scheduler.type": "fifo", "train.steps": args.steps,
    })


def clear_process_caches() -> None:
    """So the loop loads model, tokenizer, data and language identifier itself, as a fresh Ray worker does."""
    for cached in (modeling._load_base, modeling.load_tokenizer, evaluator_module.study_data,
                   evaluator_module._cached_forget_mask, evaluator_module._language_id):
        cached.cache_clear()


def plain_trial(setup, hparams: dict) -> dict:
    """One trial as `trainables.trial.trainable._train` runs it, without Ray, MLflow or checkpoints."""
    u = Unlearner(setup, hparams)
    metrics: dict = {}
    while u.step < setup.train.steps:
        metrics = u.train_step()
        metrics.update(u.evaluate_step())
        diverged = bool(metrics["diverged"]) or metrics["adapter_norm"] > setup.train.max_adapter_norm
        last = u.step == setup.train.steps or diverged
        if u.step % setup.train.eval_every == 0 or last:
            metrics.update(u.evaluate_full(setup.train.final_es_prompts if last else setup.train.es_prompts))
        metrics["step"] = u.step
        if diverged:
            break
    return metrics


def bench_overhead(args, ray_start: float) -> None:
    cfg = overhead_config(args)
    print(f"\n== Ray Tune's overhead: {args.overhead_trials} trials (ga/npo, lr 1e-3, beta 0.1) x {args.steps} "
          f"steps, one at a time, eval_every {cfg.train.eval_every}, ES prompts {cfg.train.es_prompts}/"
          f"{cfg.train.final_es_prompts}, checkpoint_every {cfg.train.checkpoint_every}; Ray already running"
          + (" (and warm from the search section)" if args.only is None else ""))
    started = time.perf_counter()
    rows = run_quietly(cfg)
    through_ray = time.perf_counter() - started
    by_id = {r["trial"]: r for r in rows}
    rows = [by_id[t] for t in start_order(cfg) if t in by_id]
    skip = {"trial", "status", *SUMMARY_METRICS}
    configs = [{k: v for k, v in r.items() if k not in skip} for r in rows]

    clear_process_caches()
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.resources.cpus_per_trial)  # as the trainable does
    started = time.perf_counter()
    setup = prepare_study(cfg, log=quiet)
    plain = [plain_trial(setup, hp) for hp in configs]
    loop = time.perf_counter() - started
    torch.set_num_threads(threads)

    for r, hp, m in zip(rows, configs, plain):
        print(f"  {hp['variant']:4} steps ray {r['step']} / loop {m['step']}; forget_efficacy ray "
              f"{r['forget_efficacy']:.4f} / loop {m['forget_efficacy']:.4f}; utility ray {r['utility']:.4f} / "
              f"loop {m['utility']:.4f}")
    print(f"run_study (Ray Tune, worker start and model load, MLflow, checkpoints): {through_ray:7.1f} s")
    print(f"plain loop in this process (Unlearner, same settings):                   {loop:7.1f} s")
    print(f"ratio {through_ray / loop:.2f}x (target ≤ 1.10x); with Ray's start-up ({ray_start:.1f} s, once per "
          f"process) counted in: {(through_ray + ray_start) / loop:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--random-trials", type=int, default=12)
    ap.add_argument("--sched-trials", type=int, default=24)
    ap.add_argument("--grace", type=int, default=10)
    ap.add_argument("--eta", type=float, default=3.0)
    ap.add_argument("--overhead-trials", type=int, default=4)
    ap.add_argument("--variants", nargs="+", default=None)
    ap.add_argument("--only", choices=("search", "overhead"), default=None)
    ap.add_argument("--smoke", action="store_true", help="2 prompts per evaluation set, a 2-step attack, no oracle (a check)")
    args = ap.parse_args()
    if args.smoke:
        SMOKE_OVERRIDES.update(SMOKE)
    # One line per study created is noise here; warnings still show.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    # Ray's results, MLflow stores and checkpoints all land here, not in the caller's directory.
    work = tempfile.mkdtemp(prefix="bench-search-")
    os.chdir(work)
    print(f"working directory {work}")
    started = time.perf_counter()
    # Once for the whole benchmark: run_study reuses an initialised Ray, so no study pays for its start.
    ray.init(address="local", num_cpus=2,  # its own instance, never a test session's
              include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - started
    try:
        if args.only in (None, "search"):
            bench_search(args)
        if args.only in (None, "overhead"):
            bench_overhead(args, ray_start)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
