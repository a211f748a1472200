"""Runs `unlearn-study` on bad inputs and misuses (issue 13's list) and writes what each prints as a Markdown table.

    python bench/bad_inputs.py --out docs/bad-inputs.md --repeats 3   # each case 3 times, the median shown
    python bench/bad_inputs.py --out /tmp/b.md --only "empty config" "ftp://"   # the cases named so (a check)

Each case runs the real command line in a fresh folder (its own files, no Ray started unless the case needs it)
and records the exit status, the first line on stderr and the time taken (the median of --repeats runs, after one
untimed run of the command line, so that the disk is warm). Figures, no assertions: tests/test_bad_input.py checks
the behaviour, tests/test_cli_imports.py what is imported before the answer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HI = [f"नमस्ते दुनिया यह पंक्ति {i} है" for i in range(40)]
EN = [f"hello world this is line {i}" for i in range(40)]


def jsonl(texts) -> str:
    return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)


GOOD = {"hi.jsonl": jsonl(HI), "en.jsonl": jsonl(EN)}


# A case's files with this name run in a folder made read-only for the command alone: a read-only bind mount of the
# folder onto itself in a user and mount namespace of its own (as root, a folder of mode 0555 is written anyway).
READ_ONLY = "<read-only>"
READ_ONLY_PREFIX = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && cd "$0" && exec "$@"']


def cut_sqlite() -> bytes:
    """The first half of a real SQLite database of several pages (an mlflow.db whose copy was cut short)."""
    import sqlite3

    with tempfile.TemporaryDirectory() as d:
        with sqlite3.connect(Path(d, "x.db")) as db:
            db.execute("CREATE TABLE alembic_version (version_num TEXT)")
            db.execute("CREATE TABLE runs (x TEXT)")
            db.executemany("INSERT INTO runs VALUES (?)", [("run" * 100,)] * 200)
        data = Path(d, "x.db").read_bytes()
    return data[: len(data) // 2]

DATA = ["--forget", "hi.jsonl", "--retain", "en.jsonl"]

# (what, files to write (name -> text or bytes), arguments)
CASES = [
    ("invalid JSON on a line", {**GOOD, "bad.jsonl": jsonl(HI[:3]) + '{"text": \n'},
     ["run", "--forget", "bad.jsonl", "--retain", "en.jsonl"]),
    ("lone surrogate in the retain file", {**GOOD, "r.jsonl": jsonl(EN[:3]) + '{"text": "a \\ud800 b"}\n'},
     ["run", "--forget", "hi.jsonl", "--retain", "r.jsonl"]),
    ("Latin-1 file", {**GOOD, "l1.jsonl": '{"text": "café au lait"}\n'.encode("latin-1")},
     ["run", "--forget", "hi.jsonl", "--retain", "l1.jsonl"]),
    ("UTF-16 file", {**GOOD, "u16.jsonl": jsonl(EN).encode("utf-16")}, ["run", "--forget", "hi.jsonl", "--retain", "u16.jsonl"]),
    ("a directory as a data file", {**GOOD, "dir/x": ""}, ["run", "--forget", "dir", "--retain", "en.jsonl"]),
    ("a missing data file", GOOD, ["run", "--forget", "nope.jsonl", "--retain", "en.jsonl"]),
    ("forget and retain in one script", {**GOOD, "en2.jsonl": jsonl(f"good morning, line {i}" for i in range(40))},
     ["run", "--forget", "en.jsonl", "--retain", "en2.jsonl"]),
    ("empty config file", {"s.yaml": "# nothing here\n"}, ["run", "--config", "s.yaml"]),
    ("--study ''", {}, ["run", "--study", ""]),
    ("study: ../outside", {"s.yaml": "study: ../outside\n"}, ["run", "--config", "s.yaml"]),
    ("study with a control character", {"s.yaml": 'study: "a\\x01b"\n'}, ["run", "--config", "s.yaml"]),
    ("trust_remote_code: 'yes'", {"s.yaml": "trust_remote_code: 'yes'\n"}, ["run", "--config", "s.yaml"]),
    ("ftp:// tracking URI", {}, ["run", "--tracking-uri", "ftp://host/mlflow"]),
    ("--num-samples -3 with a config", {"s.yaml": "search:\n  num_samples: 24\n"},
     ["run", "--config", "s.yaml", "--num-samples", "-3"]),
    ("lr range through 0 (log knob)", {"s.yaml": "search:\n  space:\n    lr: {low: 0, high: 1.0e-2}\n"},
     ["run", "--config", "s.yaml"]),
    ("lr: {value: fast}", {"s.yaml": "search:\n  space:\n    lr: {value: fast}\n"}, ["run", "--config", "s.yaml"]),
    ("a float range on rank (choices)", {"s.yaml": "search:\n  space:\n    rank: {low: 0.1, high: 0.9}\n"},
     ["run", "--config", "s.yaml"]),
    ("languages: {forget: xx}", {"s.yaml": "languages: {forget: xx}\n"}, ["run", "--config", "s.yaml"]),
    ("gpus_per_trial: 1 on a machine without GPU", {"s.yaml": "resources:\n  gpus_per_trial: 1\n"},
     ["run", "--config", "s.yaml"]),
    ("optuna_storage in a missing folder", {"s.yaml": "search:\n  optuna_storage: no/such/optuna.db\n"},
     ["run", "--config", "s.yaml"]),
    ("a missing local --model", {}, ["run", "--model", "./no-such-model"]),
    ("a hub model with no network", {}, ["run", "--model", "org/not-cached"]),
    ("unreachable --address", {}, ["run", "--address", "127.0.0.1:9"]),
    ("unreachable tracking server", {}, ["run", "--tracking-uri", "http://127.0.0.1:9"]),
    ("front with no store here", {}, ["front", "--study", "default"]),
    ("export with no store here", {}, ["export", "--study", "default", "--out", "x"]),
    ("report with no store here", {}, ["report", "--study", "nope", "--out", "rep"]),
    ("resume with no store here", {}, ["resume", "--study", "default"]),
    # issue 26
    ("mlflow.db that is not SQLite (front)", {"mlflow.db": "study,trial\nx,1\n"}, ["front", "--study", "default"]),
    ("mlflow.db cut short (run)", {"mlflow.db": cut_sqlite()}, ["run"]),
    ("an empty mlflow.db (export)", {"mlflow.db": ""}, ["export", "--study", "default", "--out", "x"]),
    ("front: {include_degenerate: 'no'}", {"s.yaml": "front: {include_degenerate: 'no'}\n"},
     ["run", "--config", "s.yaml"]),
    ("sae: {d_sae: 16, k: 64}", {"s.yaml": "sae: {d_sae: 16, k: 64}\n"}, ["run", "--config", "s.yaml"]),
    ("ASHA weights all 0", {"s.yaml": "scheduler:\n  type: asha\n  weights: {utility: 0, forget_efficacy: 0}\n"},
     ["run", "--config", "s.yaml"]),
    ("--steps 1 with the default scheduler", {}, ["run", "--steps", "1"]),
    ("a read-only working folder (run)", {READ_ONLY: ""}, ["run"]),
]


def run_case(files: dict, argv: list[str], env: dict, repeats: int) -> tuple[int, str, float]:
    """Exit status, what it printed, and the median of `repeats` wall times (each in a fresh folder)."""
    runs = [run_once(files, argv, env) for _ in range(repeats)]
    return runs[0][0], runs[0][1], statistics.median(seconds for _, _, seconds in runs)


def run_once(files: dict, argv: list[str], env: dict) -> tuple[int, str, float]:
    with tempfile.TemporaryDirectory() as d:
        for name, text in files.items():
            path = Path(d, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith("/x") or name == READ_ONLY:
                continue
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        command = [sys.executable, "-m", "study.cli", *argv]
        if READ_ONLY in files:
            command = [*READ_ONLY_PREFIX, d, *command]
        start = time.monotonic()
        out = subprocess.run(command, cwd=d, env=env, capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - start
        lines = [line for line in out.stderr.splitlines() if line.strip() and "Token authentication" not in line
                 and " INFO " not in line]
        first = " ".join(line.strip() for line in lines[:2]) if lines else out.stdout.strip().splitlines()[-1:]
        return out.returncode, str(first).replace(d + "/", "").replace(d, "."), elapsed


def cli_env() -> dict:
    """The environment each command line runs in (this checkout, no store or cluster from outside), after one
    untimed run of the command line, so that the disk is warm."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_ETAG_TIMEOUT": "5"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    subprocess.run([sys.executable, "-m", "study.cli", "--help"], env=env, capture_output=True)  # a warm disk
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/bad-inputs.md")
    parser.add_argument("--repeats", type=int, default=1, help="time each case this many times; the median is shown")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="run only the cases whose description contains one of these")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.only or any(text in c[0] for text in args.only)]
    if not cases:
        parser.error(f"no case matches --only {' '.join(args.only)}")
    env = cli_env()
    rows = []
    for what, files, argv in cases:
        rc, message, seconds = run_case(files, argv, env, args.repeats)
        rows.append((what, " ".join(a if a else "''" for a in argv), rc, message, seconds))
        print(f"{rc:>3}  {seconds:5.1f} s  {what}: {message}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    command = shlex.join(["python", "bench/bad_inputs.py", *sys.argv[1:]])
    timing = "one run of the command line" if args.repeats == 1 else f"the median of {args.repeats} runs"
    lines = ["# Bad inputs and what `unlearn-study` prints",
             "",
             f"Generated on {datetime.date.today()} at commit {commit.strip() or 'unknown'} by `{command}` on "
             f"{os.cpu_count()} CPUs (each case in a fresh folder; exit status 2 = bad input or a service that does "
             f"not answer, before Ray starts). s: {timing}, Python's start-up included; times vary with the "
             "machine's load.",
             "",
             "| case | command | exit | what it prints (stderr) | s |",
             "|---|---|---|---|---|"]
    for what, argv, rc, message, seconds in rows:
        cell = message.replace("|", "\\|")
        lines.append(f"| {what} | `unlearn-study {argv}` | {rc} | {cell} | {seconds:.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
