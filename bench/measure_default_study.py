"""Wall time and peak memory of the README's default study, Ray's processes included.

    .venv/bin/python bench/measure_default_study.py [--fresh-cache] [-- extra unlearn-study run args]

Runs `unlearn-study run` in a temporary working directory and samples, every 0.5 s, the summed resident memory of
the command and every process it starts (Ray's GCS, raylet and workers are its descendants).
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


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh-cache", action="store_true")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.fresh_cache:
        env["UNLEARN_STUDY_CACHE"] = tempfile.mkdtemp(prefix="unlearn-cache-")
    cli = Path(sys.executable).with_name("unlearn-study")
    work = tempfile.mkdtemp(prefix="unlearn-default-")
    started = time.perf_counter()
    proc = subprocess.Popen([str(cli), "run", *args.rest], cwd=work, env=env,
                            stdout=open(Path(work) / "out.txt", "w"), stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.5)
    wall = time.perf_counter() - started
    print(Path(work, "out.txt").read_text()[-3000:])
    print(f"exit {proc.returncode}; wall {wall:.0f} s; peak memory (command + Ray processes) {peak / 2**30:.2f} GiB;"
          f" working dir {work}")


if __name__ == "__main__":
    main()
