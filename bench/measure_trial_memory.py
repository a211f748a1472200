"""Peak memory of one trial worker, as the default study's workers run a trial (without Ray around it).

    .venv/bin/python bench/measure_trial_memory.py [--variant adaptive+dsg] [--steps 10] [--keep-sae-cache]

A fresh process imports what a worker imports, builds the trial (`Unlearner`) of the default study's setup, trains
a few steps and runs a full evaluation; this script samples its PSS every 0.5 s and prints the peak and where it
was reached. By default the SAE cache is fresh (the embedded model is reused), so a gated variant trains its SAE
inside the worker, as the first gated trial of a study from a fresh clone does. Use it when the machine is too
busy for bench/measure_default_study.py, which measures the whole study.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

WORKER = r"""
import sys, time, torch
torch.set_num_threads(1)
def stage(name): print(f"STAGE {time.time():.3f} {name}", flush=True)
stage("start")
import ray.tune, transformers, peft
from study.config import load_config
from study.prepare import prepare_study
from trainables.unlearner import Unlearner
stage("imports")
setup = prepare_study(load_config(), log=lambda *a: None)
variant, steps = sys.argv[1], int(sys.argv[2])
stage("setup")
u = Unlearner(setup, {"variant": variant, "lr": 1e-3, "lr_forget": 1e-3, "lr_retain": 1e-3})
stage("trial built")
for _ in range(steps if u.trains else 0):
    u.train_step(); u.evaluate_step()
stage("steps")
u.evaluate_full(setup.train.final_es_prompts)
stage("full evaluation")
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="adaptive+dsg")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--keep-sae-cache", action="store_true")
    args = ap.parse_args()
    from trainables.cache import cache_root

    env = dict(os.environ)
    if not args.keep_sae_cache:
        fresh = Path(tempfile.mkdtemp(prefix="unlearn-cache-"))
        (fresh / "embedded").symlink_to(cache_root() / "embedded")
        env["UNLEARN_STUDY_CACHE"] = str(fresh)
    log = Path(tempfile.mkdtemp(prefix="trial-memory-")) / "worker.log"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, args.variant, str(args.steps)], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    peak, peak_at, samples = 0, 0.0, []
    while proc.poll() is None:
        try:
            pss = ps.memory_full_info().pss
        except psutil.Error:
            break
        samples.append((time.time(), pss))
        if pss > peak:
            peak, peak_at = pss, time.time()
        time.sleep(0.5)
    stages = [line.split(maxsplit=2)[1:] for line in log.read_text().splitlines() if line.startswith("STAGE ")]
    if proc.returncode != 0:
        print(log.read_text()[-3000:])
    print(f"variant {args.variant}, {args.steps} steps, SAE cache {'kept' if args.keep_sae_cache else 'fresh'}: "
          f"exit {proc.returncode}; peak PSS {peak / 2**20:.0f} MiB")
    for (t, name), nxt in zip(stages, [*stages[1:], [str(time.time()), "end"]]):
        during = [p for s, p in samples if float(t) <= s < float(nxt[0])]
        print(f"  {name:16s} -> {nxt[1]:16s} max PSS {max(during, default=0) / 2**20:6.0f} MiB"
              f"{'  <- peak' if float(t) <= peak_at < float(nxt[0]) else ''}")


if __name__ == "__main__":
    main()
