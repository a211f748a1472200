"""mmie.py's figures of the bare embedded default (or any model folder), measured as mmie.py measures them: its
prompts (whole lines through the chat template), its line counts (200/150/120), its sampling, its LID voters.

    .venv/bin/python bench/measure_base_mmie.py [--model PATH] [--items N]

Prints the base model's `mmie/base/` figures, the share of empty replies among them, and a few replies per set, so
that a reader sees what mmie.py's ES is measured on. Asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a model folder (default: the embedded default, built if needed)")
    ap.add_argument("--items", type=int, help="cap each set's lines (default: mmie.py's counts)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from trainables.data import load_study_data
    from trainables.embedded import ensure_embedded
    from trainables.language.lid_ensemble import ensemble_for
    from trainables.metrics import mmie as mm
    from trainables.model.loading import load_model, load_tokenizer

    embedded = ensure_embedded()
    path = args.model or str(embedded.model_dir)
    model, tok = load_model(path), load_tokenizer(path)
    data = load_study_data(embedded.data_paths(), seed=0, heldout=128)
    cfg = mm.MmieEvalConfig(final_items=args.items)
    started = time.perf_counter()
    base = mm.measure(model, tok, data, target="hi", script="DEVANAGARI", cfg=cfg, seed=args.seed,
                      lid=ensemble_for(), edited=nullcontext)
    print(f"{path}: chat template {'yes' if tok.chat_template else 'no'}; measured in "
          f"{time.perf_counter() - started:.0f} s")
    for key in sorted(base):
        print(f"  {key:40s} {base[key]:.4f}")
    for name in ("forget", "mixed", "xlang_ur", "adversarial"):
        lines = data.sets[name].train if name in data.sets else []
        for line, reply in zip(lines[:2], mm.generate(model, tok, lines[:2], 32, args.seed)):
            print(f"  {name}: {line[:60]!r} -> {reply[:80]!r}")


if __name__ == "__main__":
    main()
