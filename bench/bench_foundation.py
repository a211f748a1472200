"""Foundation benchmark: embedded-model build, per-language quality, step time and per-step evaluation share.

    .venv/bin/python bench/bench_foundation.py            # builds into a fresh temporary cache (~2 min)
    .venv/bin/python bench/bench_foundation.py --cached   # uses the normal cache
    .venv/bin/python bench/bench_foundation.py --cached --steps 2 --es-prompts 2   # runs? (seconds)
    .venv/bin/python bench/bench_foundation.py --spec '{"batch_size": 32}' --oracle --steps 0   # another build's
        # quality and cost, and its retain-only oracle's (--spec: EmbeddedSpec fields; docs/benchmarks.md)

Prints figures only; nothing here is asserted. This machine has bursts of 10-20x slowdown, so each timing is the
median of several repeats, and the evaluation share compares evaluation and step measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cached", action="store_true", help="use the normal cache instead of a fresh one")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--es-prompts", type=int, default=32, help="prompts per set of the full evaluation")
    ap.add_argument("--spec", default="{}", help="JSON: EmbeddedSpec fields to build instead of the default's")
    ap.add_argument("--oracle", action="store_true", help="also build the retain-only oracle (forgetting hi)")
    args = ap.parse_args()
    if not args.cached:
        os.environ["UNLEARN_STUDY_CACHE"] = tempfile.mkdtemp(prefix="unlearn-bench-")
    import torch

    torch.set_num_threads(1)
    from trainables.embedded import ensure_embedded
    from trainables.embedded.builder import ensure_oracle
    from trainables.settings import EmbeddedSpec
    from trainables.trial.setup import TrainSettings, TrialSetup
    from trainables.unlearner import Unlearner

    spec = EmbeddedSpec(**json.loads(args.spec))
    t0 = time.perf_counter()
    em = ensure_embedded(spec, log=lambda *a: None)
    build = time.perf_counter() - t0
    r = em.report
    print(f"spec: batch {spec.batch_size} x {spec.pretrain_steps} steps x {spec.seq_len} tokens, lr {spec.lr}")
    print(f"embedded model: {r['parameters']:,} parameters, vocab {r['vocab_size']}")
    print(f"build (wall, this call): {build:.1f} s  [tokenizer {r['tokenizer_seconds']:.1f} s, "
          f"pretrain {r['pretrain_seconds']:.1f} s, recorded total {r['build_seconds']:.1f} s]")
    print(f"{'set':8} {'perplexity':>10} {'uniform':>8} {'script':>11} {'fidelity':>8}")
    for name, e in r["languages"].items():
        fid = "n/a" if e["script_fidelity"] is None else f"{e['script_fidelity']:.2f}"
        print(f"{name:8} {e['perplexity']:10.2f} {e['uniform_perplexity']:8.0f} {e['script']:>11} {fid:>8}")
    if args.oracle:
        t0 = time.perf_counter()
        oracle = ensure_oracle(spec, "hi", log=lambda *a: None)
        o = oracle.report
        print(f"oracle (without hi) build (wall, this call): {time.perf_counter() - t0:.1f} s  [pretrain "
              f"{o['pretrain_seconds']:.1f} s, recorded total {o['build_seconds']:.1f} s]; English perplexity "
              f"{o['languages']['en']['perplexity']:.2f}")

    for variant in ("ga", "npo") if args.steps else ():
        u = Unlearner(TrialSetup(train=TrainSettings(steps=args.steps), embedded=spec), {"variant": variant, "lr": 1e-3})
        steps, evals, fulls = [], [], []
        for i in range(args.steps):
            t = time.perf_counter()
            u.train_step()
            steps.append(time.perf_counter() - t)
            t = time.perf_counter()
            u.evaluate_step()
            evals.append(time.perf_counter() - t)
            if (i + 1) % 20 == 0 or (i + 1 == args.steps and not fulls):  # at least one, however few steps
                t = time.perf_counter()
                u.evaluate_full(args.es_prompts)
                fulls.append(time.perf_counter() - t)
        s, e = statistics.median(steps), statistics.median(evals)
        print(f"{variant}: step {s * 1000:.1f} ms (batch {u.setup.train.batch_size}x<= {u.setup.train.max_len}, forget+retain "
              f"update), per-step eval {e * 1000:.1f} ms = {e / s:.1%} of a step; "
              f"full eval (collateral ppl + ES, {args.es_prompts} prompts x {len(u.data.sets) - 1} sets) {statistics.median(fulls):.2f} s")


if __name__ == "__main__":
    main()
