"""The robustness table of docs/robustness.md, from a finished study in MLflow (figures, no assertions).

    PYTHONPATH=. python bench/robustness_table.py --study robustness [--audit] [--tracking-uri sqlite:///mlflow.db]

Per variant, its best finished trial (highest forget_efficacy at utility >= --min-utility, else the knee of the
variant's own front): forget_efficacy and es_forget, the share of what it forgot that the single relearning attack
(`robustness.relearn`) brought back, and the worst case over the attacker grid (`robustness.attacks`,
trainables.metrics.attack_sweep): the lowest forget_efficacy on any attack's curve, its share back, the highest ES
after an attack, the excess over the retain-only oracle under the same attack, and which attack did it. A variant's
forgetting survives when its worst excess is at most 0: it relearns no faster than a model that never saw the
language, under every attack of the grid. The oracle's row is its worst case under the same grid.

--audit first runs the grid (`unlearn-study audit --trials ...`, from the folder the study ran in, or --path) on
each variant's pick that forgot something (and the oracle), so that every row has its worst case under one grid.
Single-attack shares are computed here from forget_efficacy before and after, so they read the same from any
version of the study.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from mlflow.tracking import MlflowClient

from study.results.export import pick
from study.results.front import load_study

FORGOT_LITTLE = 0.1  # below this forget_efficacy there is nothing for an attack to bring back


def cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def share_back(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return (before - after) / before


def verdict(m: dict) -> str:
    """By the worst case over the grid: survives when no attack brings back more than it brings back to the oracle."""
    if m.get("forget_efficacy", 0.0) < FORGOT_LITTLE:
        return "nothing forgotten"
    if "worst_relearn_forget_efficacy" not in m:
        return "not audited"
    if "worst_relearn_excess" not in m:
        return "no oracle"
    return "yes" if m["worst_relearn_excess"] <= 0 else "no"


def picks(record, min_utility: float) -> dict:
    """Each variant's best finished trial: the most forgetting at utility >= min_utility, else its own knee."""
    out = {}
    for variant in sorted({t.variant for t in record.trials}):
        for how, floor in (("max-forget", min_utility), ("knee", None)):
            try:
                out[variant] = pick(record, how, min_utility=floor, variant=variant)
                break
            except ValueError:
                continue
    return out


COLUMNS = ("forget_efficacy", "es_forget", "relearn_share_back", "worst_relearn_forget_efficacy",
           "worst_relearn_share_back", "worst_relearn_es_forget", "worst_relearn_excess")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", default="robustness")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI")
                        or f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    parser.add_argument("--min-utility", type=float, default=0.9)
    parser.add_argument("--audit", action="store_true", help="run the attacker grid on each variant's pick first")
    parser.add_argument("--attacks", nargs="+", help="with --audit: the grid (default: the study's)")
    parser.add_argument("--attack-steps", type=int, help="with --audit: steps per attack (default: the study's)")
    parser.add_argument("--path", help="with --audit: the study's Ray folder (default: under ./ray_results)")
    args = parser.parse_args()
    record = load_study(args.tracking_uri, args.study)
    chosen = picks(record, args.min_utility)
    if args.audit:
        todo = [t.trial_id for t in chosen.values() if t.metrics.get("forget_efficacy", 0.0) >= FORGOT_LITTLE]
        if todo:
            from study.results.audit import audit_finished

            sweep = {k: v for k, v in (("attacks", args.attacks), ("attack_steps", args.attack_steps)) if v}
            audit_finished(args.tracking_uri, args.study, record.parent_run_id, args.path, trials=todo, sweep=sweep)
            record = load_study(args.tracking_uri, args.study, record.parent_run_id)
            chosen = picks(record, args.min_utility)
    client = MlflowClient(args.tracking_uri)
    oracle = client.get_run(record.parent_run_id).data.metrics
    print("| variant | trial | lr | utility | forget_efficacy | es_forget | single attack: share back | worst: "
          "forget_efficacy | worst: share back | worst: es_forget | worst: excess over the oracle | worst attack "
          "| survives |")
    print("|" + "---|" * 13)
    for variant, trial in chosen.items():
        m = dict(trial.metrics)
        if m.get("forget_efficacy", 0.0) >= FORGOT_LITTLE:
            m["relearn_share_back"] = share_back(m.get("forget_efficacy"), m.get("relearn_forget_efficacy"))
        else:  # a share of next to nothing says nothing (runs audited before the sweep's own floor may hold one)
            for c in ("relearn_share_back", "worst_relearn_share_back", "worst_relearn_excess"):
                m.pop(c, None)
        lr = trial.params.get("lr", trial.params.get("lr_forget"))
        lr_cell = f"{lr:.2g}" if isinstance(lr, float) else "-"
        tags = client.get_run(trial.run_id).data.tags
        attack = tags.get("worst_excess_attack") or tags.get("worst_attack", "-")
        print(f"| {variant} | {trial.trial_id} | {lr_cell} | {cell(m.get('utility'))} | "
              + " | ".join(cell(m.get(c)) for c in COLUMNS) + f" | {attack} | {verdict(m)} |")
    o = {c: oracle.get(f"oracle_{c}") for c in ("forget_efficacy", "es_forget", "utility")}
    o["relearn_share_back"] = share_back(oracle.get("oracle_forget_efficacy"), oracle.get("oracle_relearn_forget_efficacy"))
    for c in ("forget_efficacy", "share_back", "es_forget"):
        o[f"worst_relearn_{c}"] = oracle.get(f"oracle_worst_{c}")
    tags = client.get_run(record.parent_run_id).data.tags
    print(f"| oracle (retain-only) | - | - | {cell(o['utility'])} | " + " | ".join(cell(o.get(c)) for c in COLUMNS)
          + f" | {tags.get('oracle_worst_attack', '-')} | reference |")
    print(f"\ntrials: {len(record.trials)}; grid: the study's robustness.attacks (the parent run's study.yaml)")


if __name__ == "__main__":
    main()
