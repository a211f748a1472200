"""How far a trial's figures, and the front they make, move between masked padding and mmie.py's (issue 22, item 3).

    .venv/bin/python bench/bench_mmie_padding.py                       # 6 configurations x 2 paddings, default steps
    .venv/bin/python bench/bench_mmie_padding.py --steps 2 --lrs 1e-3 --variants ga   # runs? (seconds)

Each configuration (variant x learning rate, the embedded default, the default schedule, seed 0) trains twice, with
`train.padding: masked` and `mmie` (each set tokenised once, every row padded to the set's longest line, pads
counted in the losses), and is measured the same way afterwards: the study's objectives (forget_efficacy,
utility, xlang_utility) and mmie.py's figures (`mmie/es_forget`, `mmie/ppl_retain`, the verdict). Prints one row
per configuration and padding, the change between the two, and which configurations are on the front (forget
efficacy x utility x xlang utility) under each. Figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import time

import torch

OBJECTIVES = ("forget_efficacy", "utility", "xlang_utility")
SHOWN = (*OBJECTIVES, "mmie/es_forget", "mmie/ppl_retain", "mmie/empty_reply_share")


def run(variant: str, lr: float, padding: str, steps: int, final_items: int | None) -> dict[str, float]:
    from bench_export_substitutes import measure

    return measure({"variant": variant, "lr": lr}, steps, final_items, padding=padding)


def front(rows: dict) -> set:
    """Configurations no other dominates on every objective."""
    def dominates(a, b):
        return all(a[m] >= b[m] for m in OBJECTIVES) and any(a[m] > b[m] for m in OBJECTIVES)
    return {k for k, r in rows.items() if not any(dominates(o, r) for j, o in rows.items() if j != k)}


def main() -> None:
    from trainables.trial.setup import TrainSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="ga,npo,mmie_bounded")
    ap.add_argument("--lrs", default="2e-4,1e-3")
    ap.add_argument("--steps", type=int, default=TrainSettings.steps)
    ap.add_argument("--final-items", type=int, default=None, dest="final_items",
                    help="cap mmie.py's prompt counts (default: its own, 200/150/120)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, dict] = {"masked": {}, "mmie": {}}
    for variant in args.variants.split(","):
        for lr in (float(x) for x in args.lrs.split(",")):
            for padding in ("masked", "mmie"):
                t0 = time.perf_counter()
                r = run(variant, lr, padding, args.steps, args.final_items)
                rows[padding][(variant, lr)] = r
                print(f"{variant:13} lr {lr:<7g} {padding:6} " + " ".join(f"{m} {r.get(m, float('nan')):.3f}"
                      for m in SHOWN) + f" verdict {r['verdict']} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\nchange, mmie - masked:")
    for key in rows["masked"]:
        a, b = rows["masked"][key], rows["mmie"][key]
        moved = " ".join(f"{m} {b.get(m, float('nan')) - a.get(m, float('nan')):+.3f}" for m in SHOWN)
        same = "same verdict" if a["verdict"] == b["verdict"] else f"verdict {a['verdict']} -> {b['verdict']}"
        print(f"{key[0]:13} lr {key[1]:<7g} {moved}; {same}")
    fronts = {p: front(rows[p]) for p in rows}
    print(f"\nfront, masked: {sorted(fronts['masked'])}\nfront, mmie:   {sorted(fronts['mmie'])}")


if __name__ == "__main__":
    main()
