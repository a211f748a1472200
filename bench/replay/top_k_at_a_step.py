"""A design study on the curves file, not a scheduler: what a synchronous successive halving with one rung would
keep, if it ran every trial of a study to step g, paused them, and ran to the end only the k best by their
hypervolume box at g (a trial's own hypervolume, as the study's front computes it).

    .venv/bin/python bench/replay/top_k_at_a_step.py [--curves bench/replay/default-60.jsonl.gz] [--studies 200]

Each study is 16 configurations drawn at random from the file (numpy's generator, seed 1), as random search draws
them; its share is the kept trials' front hypervolume over all 16's (the study's FrontRule ranks the trials); its
trial-steps are 16 g + k (steps - g). It goes through no scheduler class and no clock, so it says whether a pausing
rule could meet issue 23's target on these curves, not what any scheduler of this project does (docs/replay.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.replay.curves import CurvesFile  # noqa: E402
from bench.replay.engine import replay_config  # noqa: E402
from study.pareto import build_front  # noqa: E402

TRIALS = 16


def box(metrics: dict, objectives: list[str]) -> float:
    """A trial's own hypervolume, as the study's front computes it; 0 while an objective is missing or not finite."""
    if not all(np.isfinite(metrics.get(name, np.nan)) for name in objectives):
        return 0.0
    return build_front([metrics], objectives).hypervolume()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curves", type=Path, default=Path(__file__).with_name("default-60.jsonl.gz"))
    ap.add_argument("--studies", type=int, default=200)
    args = ap.parse_args()
    curves = CurvesFile.read(args.curves)
    cfg = replay_config(curves, study="top-k")
    rule, objectives, steps = cfg.front_rule(), list(cfg.search.objectives), curves.header["steps"]
    finals = []
    for c in curves.curves:
        metrics = {**c.final, **c.result(len(c.steps) - 1)}
        finals.append(metrics if rule.ranks(c.status, metrics) else None)

    def hypervolume(indices) -> float:
        ranked = [finals[i] for i in indices if finals[i] is not None]
        return build_front(ranked, objectives).hypervolume() if ranked else 0.0

    rng = np.random.default_rng(1)
    studies = [rng.choice(len(finals), TRIALS, replace=False) for _ in range(args.studies)]
    print(f"{args.curves.name}: {len(finals)} configurations; {args.studies} studies of {TRIALS}, each a random draw")
    print(f"{'g':>3} {'k':>2} {'HV share':>9} {'95% interval':>13} {'>= 95%':>7} {'trial-steps':>11}")
    for g in (1, 3, 5, 10):
        for k in (2, 3, 4, 5):
            shares = []
            for study in studies:
                whole = hypervolume(study)
                if whole:
                    early = np.array([box(curves.curves[i].result(g - 1), objectives) for i in study])
                    shares.append(hypervolume(study[np.argsort(-early)[:k]]) / whole)
            low, high = np.percentile(shares, [2.5, 97.5])
            spent = (TRIALS * g + k * (steps - g)) / (TRIALS * steps)
            print(f"{g:3d} {k:2d} {np.median(shares):9.0%} {f'[{low:.0%}, {high:.0%}]':>13} "
                  f"{np.mean(np.array(shares) >= 0.95):7.0%} {spent:11.0%}")


if __name__ == "__main__":
    main()
