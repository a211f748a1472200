"""Wall time and peak memory of the README's default study, Ray's processes included.

    .venv/bin/python bench/measure_default_study.py [--fresh-cache | --fresh-sae] [-- extra unlearn-study run args]
    .venv/bin/python bench/measure_default_study.py --smoke    # the default study cut to 2 trials x 4 steps: runs?

Runs `unlearn-study run` in a temporary working directory and samples, every second, the summed PSS (proportional
set size: shared pages split between the processes that map them, so the sum is what the study costs the
machine) of the command and every process it starts (Ray's GCS, raylet and workers are its descendants). At the
peak it prints each process's share, so it shows where the memory goes. --fresh-sae keeps the built embedded
model but trains the SAE again inside a trial worker, as a fresh clone does.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def process_name(p: psutil.Process) -> str:
    """A short label: Ray's worker processes name themselves (ray::ImplicitFunc, ray::IDLE), others by command."""
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "?"
    if not cmd:
        return p.name()
    if cmd[0].startswith("ray::"):
        return cmd[0]
    script = next((Path(c).name for c in cmd[1:] if c.endswith(".py") or "/" in c), "")
    return f"{Path(cmd[0]).name} {script}".strip()


def tree_pss(proc: psutil.Process) -> tuple[int, list[tuple[int, str]]]:
    total, parts = 0, []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            pss = p.memory_full_info().pss
        except psutil.Error:
            continue
        total += pss
        parts.append((pss, process_name(p)))
    return total, sorted(parts, reverse=True)


# What the study prints when a phase ends (the first line that matches marks it).
PHASES = (("embedded model built", re.compile(r"embedded default built in")),
          ("oracle built", re.compile(r"retain-only oracle .* built in")),
          ("first trial finished", re.compile(r"trials done [1-9]")),
          ("trials finished", re.compile(r"^\s*trial\s.*status", re.I)))


def stamp_lines(stream, out: Path, started: float, marks: dict[str, float]) -> None:
    """Copy the study's output to `out`, each line after its elapsed seconds, and note when each phase ended."""
    with out.open("w") as f:
        for line in iter(stream.readline, ""):
            at = time.perf_counter() - started
            f.write(f"[{at:7.1f}s] {line}")
            f.flush()
            for name, pattern in PHASES:
                if name not in marks and pattern.search(line):
                    marks[name] = at


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh-cache", action="store_true", help="build the embedded model and the SAE again")
    ap.add_argument("--fresh-sae", action="store_true", help="reuse the built embedded model, train the SAE again")
    ap.add_argument("--smoke", action="store_true", help="the default study cut to 2 trials x 4 steps (grace "
                    "period 2, a 2-step relearning attack), to check that this script runs; its figures mean little")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.fresh_cache or args.fresh_sae:
        from trainables.cache import cache_root

        fresh = Path(tempfile.mkdtemp(prefix="unlearn-cache-"))
        if args.fresh_sae:
            (fresh / "embedded").symlink_to(cache_root() / "embedded")
        env["UNLEARN_STUDY_CACHE"] = str(fresh)
    cli = Path(sys.executable).with_name("unlearn-study")
    work = tempfile.mkdtemp(prefix="unlearn-default-")
    if args.smoke:
        # The default's pieces (its variants, the oracle, the attack, mmie.py's measurements), each cut to a check:
        # few steps, few prompts, a small SAE for a gated trial.
        Path(work, "smoke.yaml").write_text(
            "search: {num_samples: 2}\ntrain: {steps: 4, es_prompts: 2, final_es_prompts: 4}\n"
            "scheduler: {grace_period: 2}\nrobustness: {relearn_steps: 2, relearn_es_prompts: 2}\n"
            "mmie_eval: {items: 2, final_items: 2, max_new_tokens: 8, teacher_forced_items: 8}\nsae: {steps: 100}\n")
        args.rest = ["--config", "smoke.yaml", *args.rest]
    started = time.perf_counter()
    proc = subprocess.Popen([str(cli), "run", *args.rest], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    marks: dict[str, float] = {}
    reader = threading.Thread(target=stamp_lines, args=(proc.stdout, Path(work) / "out.txt", started, marks))
    reader.start()
    ps = psutil.Process(proc.pid)
    peak, peak_parts, peak_at = 0, [], 0.0
    while proc.poll() is None:
        total, parts = tree_pss(ps)
        if total > peak:
            peak, peak_parts, peak_at = total, parts, time.perf_counter() - started
        time.sleep(1.0)
    wall = time.perf_counter() - started
    reader.join()
    print(Path(work, "out.txt").read_text()[-4000:])
    print("phases (seconds from the start to the end of each):",
          ", ".join(f"{name} {marks[name]:.0f}" for name, _ in PHASES if name in marks) or "none seen")
    print(f"exit {proc.returncode}; wall {wall:.0f} s; peak summed PSS (command + Ray processes) "
          f"{peak / 2**30:.2f} GiB at {peak_at:.0f} s; working dir {work}")
    print("at the peak, per process (MiB):")
    for pss, name in peak_parts:
        print(f"  {pss / 2**20:8.0f}  {name}")


if __name__ == "__main__":
    main()
