"""Search strategies replayed over many seeds against recorded learning curves (issue 23, item 2).

    .venv/bin/python bench/replay_search.py [--curves bench/replay/default-60.jsonl.gz] [--seeds 20] [--trials N]
        [--workers 2] [--plot out.png] [--strategy NAME=JSON ...] [--only a,b]

Each strategy is a set of study-config overrides (`STRATEGIES`, and any --strategy rows); a peer row (`PEERS`)
replays one of them with another library's rung rule in place of the multi-objective ASHA's. For each seed it
replays a whole study of --trials trials (default: the recorded study's `search.num_samples`), --workers at a time,
with the searcher and scheduler `run_study` builds, on the event-driven clock of `bench.replay.engine.simulate` (docs/replay.md). Per study:

- hypervolume: of the study's own front (`study.pareto.build_front`: `hypervolume` against `reference_point` of the
  study's objectives; utility as the trials log it, capped at 1) over the trials that study's rule ranks
  (`study.eligibility.FrontRule` from its config: completed, or diverged if `front.include_diverged`; not degenerate
  unless `front.include_degenerate`; every objective finite; at or above `utility_floor`). A trial stopped early
  never counts: its values are partial.
- trial-steps: the sum of every trial's last step; simulated wall seconds: when the last trial ended.

The reference is full-budget random search (random + FIFO, the same --trials) on the same seed. Per strategy the
table gives the median over seeds and the 2.5th-97.5th percentile interval over seeds (numpy's linear
interpolation) of its hypervolume and its trial-steps as shares of the reference's on the same seed; a seed on
which random search's front is empty (hypervolume 0) has no share and is left out of the hypervolume columns.
The `hindsight:` line runs bench/replay/hindsight.py's stopper on random search's and TPE's full-budget proposals:
the least any early stopping could spend on them for 95% of random search's hypervolume, as a share of its
trial-steps. The plot (--plot, default bench/out/replay_search.png) draws the anytime hypervolume (median over seeds of the
front's hypervolume so far) against trial-steps spent and against simulated seconds. The last line says whether the
default search (what `unlearn-study run` runs without a config: the defaults of study/config.py) meets the issue's target: a median >= 95% of random search's hypervolume
at <= 1/3 of its trial-steps.

Cost: no Ray, no training; a few seconds per strategy on the test's 4-configuration file (Optuna's first TPE study in
a process takes a few seconds more); docs/replay.md says what it took. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# Run as a script (python bench/replay_search.py), only bench/ is on sys.path: the repository's root makes
# `bench.replay` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay.curves import CurvesFile  # noqa: E402
from bench.replay.hindsight import hindsight_stopping  # noqa: E402
from bench.replay.peers import SyneTuneRankReading  # noqa: E402
from study.config import ConfigError, StudyConfig
from study.pareto import build_front

if TYPE_CHECKING:
    from bench.replay.engine import Outcome

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CURVES = ROOT / "bench" / "replay" / "default-60.jsonl.gz"
RECORD_COMMAND = ("nohup .venv/bin/python bench/replay/record.py --out bench/replay/default-60.jsonl.gz "
                  "--configs 150 --steps 60 --spec '{\"robustness\": {\"oracle\": false}}' > record.log 2>&1 &")
REFERENCE = "random+fifo"
STRATEGIES = {  # name -> study-config overrides (study/config.py's keys); what is not set keeps its default
    REFERENCE: {"search.searcher": "random", "scheduler.type": "fifo"},
    "tpe+fifo": {"search.searcher": "optuna", "search.sampler": "tpe", "scheduler.type": "fifo"},
    "tpe+asha": {"search.searcher": "optuna", "search.sampler": "tpe", "scheduler.type": "asha"},  # equal weights
    "tpe+moasha": {"search.searcher": "optuna", "search.sampler": "tpe", "scheduler.type": "moasha"},
    "nsga2+moasha": {"search.searcher": "optuna", "search.sampler": "nsga2", "scheduler.type": "moasha"},
    "gp+fifo": {"search.searcher": "optuna", "search.sampler": "gp", "scheduler.type": "fifo"},
    "gp+moasha": {"search.searcher": "optuna", "search.sampler": "gp", "scheduler.type": "moasha"},
}
# Full-budget rows whose proposals the hindsight stopper is run on (bench/replay/hindsight.py).
HINDSIGHT_ROWS = (REFERENCE, "tpe+fifo")
# Peers: a strategy's rows with another library's rule in place of the multi-objective ASHA's (same searcher, same
# rungs), never the default.
PEERS = {"tpe+moasha-synetune": ("tpe+moasha", SyneTuneRankReading)}
TARGET_HV, TARGET_STEPS = 0.95, 1 / 3
INTERVAL = (2.5, 97.5)  # percentiles over seeds


@dataclass
class Replayed:
    """One strategy on one seed."""

    hv: float
    steps: int
    wall_s: float
    front: int  # trials ranked on the front
    statuses: dict[str, int]
    trace: list[tuple[int, float, float]]  # (trial-steps spent, simulated seconds, hypervolume) at each trial end


def score(out: Outcome, cfg: StudyConfig) -> Replayed:
    """The replayed study's front and how it grew: the log walked in order, trial-steps counted as reported, the
    front's hypervolume recomputed at each trial's end."""
    objectives = list(cfg.search.objectives)
    rule = cfg.front_rule()
    trials = {t.trial.trial_id: t for t in out.trials}
    reached: dict[str, int] = {}
    spent, ranked, trace = 0, [], []
    for event in out.log:
        kind, trial_id = event[:2]
        if kind == "result":
            spent += event[2] - reached.get(trial_id, 0)
            reached[trial_id] = event[2]
        elif kind in ("complete", "error"):
            t = trials[trial_id]
            metrics = t.metrics
            if rule.ranks(t.status, metrics):
                ranked.append(metrics)
            trace.append((spent, out.ended_at[trial_id], build_front(ranked, objectives).hypervolume()))
    statuses = {}
    for t in out.trials:
        statuses[str(t.status)] = statuses.get(str(t.status), 0) + 1
    hv = trace[-1][2] if trace else 0.0
    return Replayed(hv, out.trial_steps, out.wall_s, len(build_front(ranked, objectives).members) if ranked else 0,
                    statuses, trace)


def hindsight_share(out: Outcome, cfg: StudyConfig, curves: CurvesFile, reference: Replayed
                    ) -> tuple[float, int] | None:
    """The hindsight stopper (bench/replay/hindsight.py) on a full-budget study's proposals: its trial-steps as a
    share of random search's on the seed, for TARGET_HV of random search's hypervolume, and the trials it keeps;
    None when those proposals never reach it (or random search's front is empty)."""
    if not reference.hv:
        return None
    rule = cfg.front_rule()
    finals = [t.metrics if rule.ranks(t.status, t.metrics) else None for t in out.trials]
    best = hindsight_stopping(finals, list(cfg.search.objectives), TARGET_HV * reference.hv, curves.header["steps"])
    return None if best is None else (share(best.trial_steps, reference.steps), best.kept)


def print_hindsight(hindsight: dict[str, list[tuple[float, int] | None]], trials: int) -> None:
    """One line: what a stopper with hindsight would spend on each FIFO row's proposals, and on how many seeds even
    it misses the target's share of trial-steps."""
    parts = []
    for name, per_seed in hindsight.items():
        reached = [h for h in per_seed if h is not None]
        if not reached:
            parts.append(f"{name}'s proposals never reach it")
            continue
        mid, low, high = median_interval([h[0] for h in reached])
        over = sum(h[0] > TARGET_STEPS for h in reached) + len(per_seed) - len(reached)
        parts.append(f"{name}'s proposals {pct(mid)} {interval(low, high)} (median {np.median([h[1] for h in reached]):.0f} "
                     f"of {trials} trials run to the end; over {TARGET_STEPS:.0%} or unreachable on {over} of "
                     f"{len(per_seed)} seeds)")
    if parts:
        print(f"hindsight: a stopper that knows every trial's end, runs the fewest to it and stops the rest after 1 "
              f"step spends, for {TARGET_HV:.0%} of random search's hypervolume, this share of its trial-steps: "
              + "; ".join(parts))


def config_for(curves: CurvesFile, name: str, overrides: dict, seed: int, trials: int | None) -> StudyConfig:
    from bench.replay.engine import replay_config

    extra = {"search.seed": seed, **({"search.num_samples": trials} if trials else {})}
    return replay_config(curves, study=f"replay-{name}-s{seed}", **{**extra, **overrides})  # a row's own size wins


def search_of(cfg: StudyConfig) -> tuple:
    """What makes two configs the same search: the searcher's and the scheduler's settings, seed and size aside."""
    return (cfg.search.model_dump(exclude={"seed", "num_samples"}), cfg.scheduler.model_dump())


def strategies(curves: CurvesFile, trials: int | None, rows: dict[str, dict] = STRATEGIES
               ) -> tuple[dict[str, dict], dict[str, str], str]:
    """(the strategies of `rows` this study config can express, those it cannot with the reason, the default
    search's name). The default search is the strategy whose settings are the defaults; if none is, it runs as
    `default`."""
    available, missing = {}, {}
    for name, overrides in rows.items():
        try:
            config_for(curves, name, overrides, 0, trials)
        except ConfigError as e:
            missing[name] = str(e).splitlines()[-1].strip()
            continue
        available[name] = overrides
    default = search_of(config_for(curves, "default", {}, 0, trials))
    name = next((n for n, o in available.items() if search_of(config_for(curves, n, o, 0, trials)) == default), None)
    if name is None:
        name, available["default"] = "default", {}
    return available, missing, name


def clock_check(curves: CurvesFile) -> list[tuple[int, float, float, bool]]:
    """Each recorded batch replayed as it ran live: random search, FIFO, the batch's seed, size and workers (from
    its command; record.py's default 2). Per batch: (batch, live seconds, replayed seconds, whether the replay drew
    exactly the batch's configurations). The live seconds include what the clock leaves out: the study's set-up,
    Ray Tune's start, each worker's start-up and model load."""
    from bench.replay.engine import simulate

    checks = []
    for batch in curves.batches:
        found = re.search(r"--workers[ =](\d+)", batch.get("command", ""))
        cfg = config_for(curves, "clock", STRATEGIES[REFERENCE], batch["seed"], batch["trials"])
        out = simulate(curves, cfg, workers=int(found.group(1)) if found else 2)
        recorded = sorted(i for i, c in enumerate(curves.curves) if c.batch == batch["batch"])
        checks.append((batch["batch"], batch["wall_s"], out.wall_s, sorted(t.source for t in out.trials) == recorded))
    return checks


def median_interval(values: list[float]) -> tuple[float, float, float]:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan, math.nan
    low, high = np.percentile(values, INTERVAL)
    return float(np.median(values)), float(low), float(high)


def share(a: float, b: float) -> float:
    return a / b if b else math.nan


def pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0%}"


def interval(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{low:.0%}, {high:.0%}]"


def anytime(traces: list[list[tuple]], axis: int, grid: np.ndarray) -> np.ndarray:
    """Median over seeds of the hypervolume reached by each grid value of trial-steps (axis 0) or seconds (axis 1):
    a seed's front as it stood then (0 before its first trial ended, its final front after its study ended)."""
    held = []
    for trace in traces:
        xs = np.array([p[axis] for p in trace], dtype=float)
        hvs = np.array([0.0] + [p[2] for p in trace])
        held.append(hvs[np.searchsorted(xs, grid, side="right")])
    return np.median(np.array(held), axis=0)


def plot(results: dict[str, list[Replayed]], default: str, workers: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, ax, label in ((0, axes[0], "trial-steps spent"), (1, axes[1], f"simulated seconds ({workers} workers)")):
        for name, runs in results.items():
            end = max(max(p[axis] for p in r.trace) for r in runs if r.trace)
            grid = np.linspace(0, end, 400)
            ax.plot(grid, anytime([r.trace for r in runs if r.trace], axis, grid),
                    label=name + (" (default)" if name == default else ""), lw=2.2 if name == default else 1.3,
                    zorder=3 if name == default else 2, ls="--" if name == REFERENCE else "-")
        ax.set_xlabel(label)
        ax.set_ylabel("hypervolume of the front so far (median over seeds)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curves", type=Path, default=DEFAULT_CURVES, help="a curves file (bench/replay/curves.py)")
    ap.add_argument("--seeds", type=int, default=20, help="search seeds 0..N-1, every strategy on each")
    ap.add_argument("--trials", type=int, default=None,
                    help="trials per study (default: the recorded study's search.num_samples)")
    ap.add_argument("--workers", type=int, default=2, help="trials at a time on the simulated clock")
    ap.add_argument("--plot", type=Path, default=ROOT / "bench" / "out" / "replay_search.png",
                    help="where the anytime hypervolume plot goes (PNG; default bench/out/, which git ignores)")
    ap.add_argument("--strategy", action="append", default=[], metavar="NAME=JSON",
                    help="another row: study-config overrides (dotted keys), e.g. 'g10={\"scheduler.grace_period\": "
                         "10}'; its own search.num_samples wins over --trials (repeatable)")
    ap.add_argument("--only", default=None, help="comma-separated rows to replay (random+fifo and the default "
                                                 "search always run)")
    args = ap.parse_args()
    rows = dict(STRATEGIES)
    for item in args.strategy:
        name, _, spec = item.partition("=")
        try:
            rows[name] = json.loads(spec)
        except json.JSONDecodeError as e:
            ap.error(f"--strategy {item!r}: not NAME=JSON ({e})")
    if not args.curves.is_file():
        print(f"{args.curves}: no such curves file. Record it first (hours on 2 cores, in the background; run it "
              f"again to resume), as docs/replay.md says under 'Recording the curves':\n    {RECORD_COMMAND}\n"
              "or pass another one with --curves (the test's: tests/data/replay_curves.jsonl.gz).", file=sys.stderr)
        return 2
    from bench.replay.engine import simulate  # Ray Tune's import (2 s) waits until the curves file is found

    logging.getLogger("optuna").setLevel(logging.WARNING)  # not "A new study created in memory" per study

    started = time.perf_counter()
    curves = CurvesFile.read(args.curves)
    available, missing, default = strategies(curves, args.trials, rows)
    only = set(args.only.split(",")) if args.only else None
    if only:
        available = {n: o for n, o in available.items() if n in only | {REFERENCE, default}}
    probe = config_for(curves, default, available[default], 0, args.trials)
    print(f"{args.curves}: {len(curves.curves)} recorded configurations x {curves.header['steps']} steps; "
          f"{probe.search.num_samples} trials per study, {args.workers} at a time; {args.seeds} seeds; "
          f"objectives {', '.join(probe.search.objectives)}")
    print("hypervolume: the study's front (completed, not degenerate, not diverged, not stopped early), reference "
          "point 0 per objective, utility capped at 1")
    for name, why in missing.items():
        print(f"{name}: not available ({why})")

    from study.search import make_scheduler

    runs = {name: (overrides, None) for name, overrides in available.items()}
    runs.update({name: (available[base], moasha) for name, (base, moasha) in PEERS.items()
                 if base in available and (not only or name in only)})
    results: dict[str, list[Replayed]] = {name: [] for name in runs}
    hindsight: dict[str, list[tuple[float, int] | None]] = {name: [] for name in HINDSIGHT_ROWS if name in runs}
    for seed in range(args.seeds):
        for name, (overrides, moasha) in runs.items():
            cfg = config_for(curves, name, overrides, seed, args.trials)
            scheduler = make_scheduler(cfg, moasha) if moasha else None
            out = simulate(curves, cfg, workers=args.workers, scheduler=scheduler)
            results[name].append(score(out, cfg))
            if name in hindsight:
                hindsight[name].append(hindsight_share(out, cfg, curves, results[REFERENCE][-1]))

    reference = results[REFERENCE]
    header = (f"{'strategy':24} {'HV/random':>9} {'95% interval':>14} {'steps/random':>12} {'95% interval':>14} "
              f"{'HV':>7} {'trial-steps':>11} {'wall s':>8} {'front':>5}  seeds")
    print(f"\nmedian over seeds; 95% interval: {INTERVAL[0]}th-{INTERVAL[1]}th percentile over seeds; shares of "
          f"random+fifo's on the same seed")
    print(header)
    summary = {}
    for name, runs in results.items():
        hv_share = median_interval([share(r.hv, ref.hv) for r, ref in zip(runs, reference)])
        steps_share = median_interval([share(r.steps, ref.steps) for r, ref in zip(runs, reference)])
        counted = sum(1 for ref in reference if ref.hv)
        summary[name] = (hv_share[0], steps_share[0], counted)
        label = name + (" (default)" if name == default else "")
        print(f"{label:24} {pct(hv_share[0]):>9} {interval(*hv_share[1:]):>14} {pct(steps_share[0]):>12} "
              f"{interval(*steps_share[1:]):>14} {np.median([r.hv for r in runs]):7.4f} "
              f"{np.median([r.steps for r in runs]):11.0f} {np.median([r.wall_s for r in runs]):8.1f} "
              f"{np.median([r.front for r in runs]):5.0f}  {counted}/{len(runs)}")
    checks = clock_check(curves)
    if checks:
        live, replayed = np.median([c[1] for c in checks]), np.median([c[2] for c in checks])
        print(f"clock: the {len(checks)} recorded batches (live random+fifo studies) took {live:.0f} s (median); "
              f"replayed, {replayed:.0f} s ({replayed / live - 1:+.0%}: the study's set-up and the workers' "
              f"start-up are off the clock); {sum(c[3] for c in checks)}/{len(checks)} replays drew exactly the "
              "batch's configurations")
    print_hindsight(hindsight, probe.search.num_samples)
    if args.plot:
        plot(results, default, args.workers, args.plot, f"{args.curves.name}: {len(curves.curves)} configurations, "
             f"{probe.search.num_samples} trials per study, {args.workers} workers, {args.seeds} seeds")
        print(f"plot: {args.plot}")
    print(f"replayed {len(results)} strategies x {args.seeds} seeds in {time.perf_counter() - started:.1f} s")

    hv, steps, counted = summary[default]
    met = hv >= TARGET_HV and steps <= TARGET_STEPS  # NaN compares False: no share, not met
    print(f"target {'met' if met else 'not met'}: default search {default}, median {pct(hv)} of random search's "
          f"hypervolume at {pct(steps)} of its trial-steps, {counted} seeds (target >= {TARGET_HV:.0%} at "
          f"<= {TARGET_STEPS:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
