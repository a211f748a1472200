"""Records learning curves for the replay benchmark: configurations drawn from a study's search space, run through
`run_study` (the real trainable, Ray Tune, MLflow) at the full budget, appended to a curves file (bench/replay/curves.py
describes it).

    .venv/bin/python bench/replay/record.py --out CURVES.jsonl.gz [--configs 150] [--batch 6] [--steps 60]
        [--seed 1000] [--workers 2] [--spec JSON]

Each batch is one study of --batch trials: Optuna's random sampler (seed --seed + batch index) over the default
search space (the registry's variants and knobs, narrowed by --spec), FIFO (no trial stopped early), --workers
trials at a time, each study in a temporary folder with its own MLflow store; the curves are read back from MLflow
(every metric of every step, with MLflow's timestamps for the seconds a step took). The file is rewritten after each
batch, so the recorder can be stopped at any time and run again with the same --out: it resumes at the next batch
(a batch cut short is run again whole) and stops once the file holds --configs configurations. --spec (JSON:
`load_config` overrides, dotted keys) fixes the study the curves belong to; it is stored in the file's header, and
resuming a file with another --spec or --steps is refused.

Cost: a batch of 6 trials x 60 steps on the embedded default, 2 at a time, takes a few minutes on 2 cores; 150
configurations take hours, in the background (`nohup ... &`). The test's tiny file (tests/data/replay_curves.jsonl.gz)
was made by the command in its provenance.
"""

from __future__ import annotations

import os

# Before ray and mlflow are imported: neither should phone home from a benchmark.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import argparse
import contextlib
import datetime
import io
import json
import logging
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

# Run as a script (python bench/replay/record.py), only bench/replay/ is on sys.path: the repository's root
# makes `bench.replay` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.replay.curves import FORMAT, VERSION, Curve, CurvesFile  # noqa: E402
from study.config import load_config
from study.runner import SUMMARY_METRICS, run_study
from study.tracking.parent_run import child_runs, latest_parent_run
from trainables.trial.status import STATUS_TAG


def batch_config(header: dict, batch: int, work: Path, workers: int):
    return load_config(overrides={
        **header["spec"], "study": f"replay-record-b{batch}", "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
        "train.steps": header["steps"], "search.searcher": "random", "search.seed": header["seed"] + batch,
        "search.num_samples": header["batch_size"], "search.max_concurrent": workers, "scheduler.type": "fifo"})


def record_batch(header: dict, batch: int, workers: int) -> list[Curve]:
    """One study of header['batch_size'] random configurations at the full budget; its curves, in start order."""
    work, here = Path(tempfile.mkdtemp(prefix=f"replay-record-b{batch}-")), os.getcwd()
    os.chdir(work)  # Ray's results land here
    cfg = batch_config(header, batch, work, workers)
    with contextlib.redirect_stdout(io.StringIO()):  # the table and Ray Tune's banner
        rows = run_study(cfg, log=lambda *a: None, progress=False)
    configs = {r["trial"]: {k: v for k, v in r.items() if k not in {"trial", "status", *SUMMARY_METRICS}}
               for r in rows}
    client, exp_id, parent = latest_parent_run(cfg.tracking_uri, cfg.study)
    curves = [read_curve(client, run, configs[run.data.tags["trial_id"]], batch)
              for run in child_runs(client, exp_id, parent) if run.data.tags.get("trial_id") in configs]
    os.chdir(here)
    shutil.rmtree(work, ignore_errors=True)  # the study's MLflow store and Ray's state: the curves are read
    return curves


def read_curve(client, run, config: dict, batch: int) -> Curve:
    """A trial's curve from its MLflow run: every metric at every step it logged."""
    history = {key: client.get_metric_history(run.info.run_id, key) for key in run.data.metrics}
    steps = sorted({m.step for metrics in history.values() for m in metrics})
    at = {s: i for i, s in enumerate(steps)}
    values: dict[str, list] = {}
    stamps = [None] * len(steps)
    for key, metrics in history.items():
        values[key] = [None] * len(steps)
        for m in metrics:
            values[key][at[m.step]] = m.value
            stamps[at[m.step]] = m.timestamp if stamps[at[m.step]] is None else min(stamps[at[m.step]], m.timestamp)
    ends = [run.info.start_time, *stamps]
    wall = [max(b - a, 0) / 1000 for a, b in zip(ends, ends[1:])]
    return Curve(config=config, status=run.data.tags.get(STATUS_TAG, "error"), steps=steps, wall_s=wall,
                 values=values, final=dict(run.data.metrics), trial=run.data.tags["trial_id"], batch=batch)


def provenance(batch: int, seed: int, started: float, trials: int) -> dict:
    def git(*args) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    root = Path(__file__).resolve().parents[2]
    here = os.getcwd()
    os.chdir(root)
    try:
        commit, dirty = git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    finally:
        os.chdir(here)
    versions = {p: metadata.version(p) for p in ("torch", "ray", "optuna", "mlflow", "transformers", "peft")}
    return {"kind": "batch", "batch": batch, "seed": seed, "commit": commit, "dirty": dirty,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform(), **versions},
            "wall_s": round(time.perf_counter() - started, 1), "trials": trials}


def pinned_spec(spec: dict) -> dict:
    """`spec` with the search space it resolves to written out: the defaults move between commits (the default study's
    learning-rate ranges did), and a curves file must say which space its configurations were drawn from."""
    if "search.space" in spec or "space" in spec.get("search", {}):
        return spec
    space = load_config(overrides=spec).search.space
    return {**spec, "search.space": {name: r.model_dump(exclude_none=True) for name, r in space.items()}}


def model_identity(spec: dict) -> str:
    """Which model the recorded trials train: the embedded build's cache key (its spec's hash: a change to the
    builder's defaults makes another model under the same config) or the config's model name or path."""
    from study.prepare import embedded_spec

    cfg = load_config(overrides=spec)
    return f"embedded:{embedded_spec(cfg).key()}" if cfg.model == "embedded" else cfg.model


def open_curves(args) -> CurvesFile:
    spec = pinned_spec(json.loads(args.spec))
    model = model_identity(spec)
    if Path(args.out).exists():
        curves = CurvesFile.read(args.out)
        asked = {"spec": spec, "steps": args.steps, "seed": args.seed, "batch_size": args.batch, "model": model}
        # Curves of two models in one file would replay as one search space's; a file from before headers named
        # their model has None here, and its provenance's commits say which model it was.
        differs = {k: (curves.header.get(k), v) for k, v in asked.items() if curves.header.get(k) != v}
        if differs:
            raise SystemExit(f"{args.out} was recorded with other settings (recorded, asked): {differs}; resume it "
                             "with its own, or give another --out")
        return curves
    objectives = list(load_config(overrides=spec).search.objectives)
    return CurvesFile({"kind": "header", "format": FORMAT, "version": VERSION, "spec": spec, "steps": args.steps,
                       "objectives": objectives, "seed": args.seed, "batch_size": args.batch, "model": model})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="the curves file (.jsonl.gz), made or resumed")
    ap.add_argument("--configs", type=int, default=150, help="stop once the file holds this many")
    ap.add_argument("--batch", type=int, default=6, help="configurations per study")
    ap.add_argument("--steps", type=int, default=60, help="the budget every configuration runs")
    ap.add_argument("--seed", type=int, default=1000, help="batch b draws with search seed --seed + b")
    ap.add_argument("--workers", type=int, default=2, help="trials at a time")
    ap.add_argument("--spec", default="{}", help="JSON: load_config overrides the recorded study runs with")
    args = ap.parse_args()
    args.out = str(Path(args.out).resolve())
    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    curves = open_curves(args)
    if len(curves.curves) >= args.configs:
        print(f"{args.out} holds {len(curves.curves)} configurations already (--configs {args.configs})")
        return
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        while len(curves.curves) < args.configs:
            batch = len(curves.batches)
            started = time.perf_counter()
            new = record_batch(curves.header, batch, args.workers)
            curves.batches.append(provenance(batch, curves.header["seed"] + batch, started, len(new)))
            curves.curves.extend(new)
            curves.write(args.out)
            statuses = [c.status for c in new]
            print(f"batch {batch}: {len(new)} configurations ({', '.join(f'{statuses.count(s)} {s}' for s in sorted(set(statuses)))}) "
                  f"in {time.perf_counter() - started:.0f} s; {len(curves.curves)} in {args.out}", flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
