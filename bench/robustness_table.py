"""The robustness table of docs/benchmarks.md, from a finished study in MLflow (figures, no assertions).

    PYTHONPATH=. python bench/robustness_table.py --study robustness [--tracking-uri sqlite:///mlflow.db]

Per variant, its best finished trial (highest forget_efficacy at utility >= --min-utility, else the knee of the
variant's own front): forget_efficacy and es_forget before and after the relearning attack, the share of what it
forgot that came back against the retain-only oracle's, and whether the forgetting survives: the model relearns
no faster than the oracle, which never saw the language (a share back no larger than the oracle's). Shares are
computed here from forget_efficacy before and after, so they read the same from any version of the study.
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


def verdict(m: dict, oracle_share: float | None) -> str:
    if m.get("forget_efficacy", 0.0) < FORGOT_LITTLE:
        return "nothing forgotten"
    if oracle_share is None:
        return "no oracle"
    return "yes" if share_back(m["forget_efficacy"], m["relearn_forget_efficacy"]) <= oracle_share else "no"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", default="robustness")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI")
                        or f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    parser.add_argument("--min-utility", type=float, default=0.9)
    args = parser.parse_args()
    record = load_study(args.tracking_uri, args.study)
    oracle = MlflowClient(args.tracking_uri).get_run(record.parent_run_id).data.metrics
    columns = ("forget_efficacy", "relearn_forget_efficacy", "es_forget", "relearn_es_forget", "relearn_half_steps",
               "share_back", "int8_forget_efficacy", "actpert_delta_es")
    oracle_share = share_back(oracle.get("oracle_forget_efficacy"), oracle.get("oracle_relearn_forget_efficacy"))
    oracle["oracle_share_back"] = oracle_share
    print("| variant | trial | lr | utility | " + " | ".join(columns) + " | survives |")
    print("|" + "---|" * (len(columns) + 5))
    for variant in sorted({t.variant for t in record.trials}):
        try:
            trial = pick(record, "max-forget", min_utility=args.min_utility, variant=variant)
        except ValueError:
            try:
                trial = pick(record, "knee", variant=variant)
            except ValueError:
                continue
        m = dict(trial.metrics)
        if m.get("forget_efficacy", 0.0) >= FORGOT_LITTLE:  # a share of next to nothing says nothing
            m["share_back"] = share_back(m.get("forget_efficacy"), m.get("relearn_forget_efficacy"))
        lr = trial.params.get("lr", trial.params.get("lr_forget"))
        lr_cell = f"{lr:.2g}" if isinstance(lr, float) else "-"
        print(f"| {variant} | {trial.trial_id} | {lr_cell} | {cell(m.get('utility'))} | "
              + " | ".join(cell(m.get(c)) for c in columns) + f" | {verdict(m, oracle_share)} |")
    print(f"| oracle (retain-only) | - | - | {cell(oracle.get('oracle_utility'))} | "
          + " | ".join(cell(oracle.get(f"oracle_{c}")) for c in columns) + " | reference |")
    print(f"\nstudy model's forget-language token mass {cell(oracle.get('study_model_token_mass'))}, the oracle's "
          f"{cell(oracle.get('oracle_token_mass'))}; trials: {len(record.trials)}")


if __name__ == "__main__":
    main()
