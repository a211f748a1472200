"""How long `unlearn-study` takes to answer `--help`, `variants` and each bad input of bench/bad_inputs.py: the
median of --repeats runs of the real command line (after one untimed run, a warm disk), Python's start-up included.
Issue 21 asks for at most 2 s each; the command line reads and checks its input before it imports torch, Ray,
transformers or MLflow (tests/test_cli_imports.py checks that, not the time).

    python bench/bench_cli_errors.py                  # every case, 3 runs each
    python bench/bench_cli_errors.py --repeats 1 --only help variants "missing data"   # a quick look

Prints one line per case (median seconds, exit status, the case) and then the slowest case. Figures, no
assertions; docs/bad-inputs.md (bench/bad_inputs.py) keeps what each bad input prints, with the same medians.
"""

from __future__ import annotations

import argparse
import os

from bad_inputs import CASES, cli_env, run_case

TARGET_S = 2.0
# The answers that are not bad inputs, beside them: the help and the list of variants and pieces.
ANSWERS = [("--help", {}, ["--help"]), ("variants", {}, ["variants"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median is printed")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="only the cases whose description contains one of these")
    args = parser.parse_args()
    cases = [c for c in ANSWERS + CASES if not args.only or any(text in c[0] for text in args.only)]
    if not cases:
        parser.error(f"no case matches --only {' '.join(args.only)}")
    env = cli_env()
    print(f"median of {args.repeats} run(s) per case, {os.cpu_count()} CPUs; target {TARGET_S:g} s")
    timed = []
    for what, files, argv in cases:
        rc, _, seconds = run_case(files, argv, env, args.repeats)
        timed.append((seconds, what))
        print(f"{seconds:6.2f} s  exit {rc}  {what}" + ("" if seconds <= TARGET_S else "  (over the target)"),
              flush=True)
    over = sum(seconds > TARGET_S for seconds, _ in timed)
    slowest = max(timed)
    print(f"slowest: {slowest[0]:.2f} s ({slowest[1]}); {over} of {len(timed)} cases over {TARGET_S:g} s")


if __name__ == "__main__":
    main()
