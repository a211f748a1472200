"""SAE gates on the embedded default: the SAE, DSG's features, the gates' cost and the static gate against DSG.

    .venv/bin/python bench/bench_gates.py [--sae-steps 2000] [--d-sae 1024] [--k 32] [--n-features 20]
    .venv/bin/python bench/bench_gates.py --sae-steps 20 --d-sae 64 --k 8 --n-features 4 --repeats 2 \
        --train-lines 200 --heldout-lines 16      # runs? (seconds; its figures mean little)

Prints: SAE training time, FVE, L0 and dead share on held-out activations (trained into a fresh cache), and the
second call's cache hit and time; the selected features' activation rates on held-out forget and retain tokens;
the gated forward pass's cost relative to the bare model (median of repeats, an eval batch of 16 held-out lines x
32 tokens, one thread as in a 1-CPU trial; target <= 1.3x); DSG's firing rate on held-out retain and forget lines;
then forget_efficacy (1 - forget-token-mass ratio) and utility (retain perplexity ratio), with the collateral
utilities beside them, for the static gate and DSG (the paper's clamp of every selected feature, and `dsg_act`, the
earlier clamp of the active ones only) at several base_alpha, all on the 128 held-out lines of each
set, and for each DSG point whether some static point reaches its efficacy at equal or better utility.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from trainables.data import StudyData, load_study_data
from trainables.embedded import ensure_embedded
from trainables.language.scripts import dominant_script
from trainables.language.vocabulary import forget_token_mask
from trainables.methods.gates.sae import (
    SAEConfig,
    activation_rates,
    collect_activations,
    load_or_train_sae,
    per_sequence,
    select_features,
)
from trainables.methods.gates.sae_gates import DynamicGate, StaticGate, attach_gate, calibrate_threshold
from trainables.metrics.core import forget_token_mass, geometric_mean, perplexity_from, token_nll
from trainables.model.batching import encode
from trainables.model.loading import load_model, load_tokenizer

LAYER = 0
FIT = 1024  # training lines per set for selection; the next FIT retain lines calibrate tau (as build_gate does)
STATIC_ALPHAS = (0.35, 1.0, 2.0, 4.0, 8.0, 20.0)  # below 1 attenuates (mmie.py), above 1 inverts, everywhere
DSG_ALPHAS = (1.0, 2.0, 4.0, 8.0, 20.0)


def forward(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits


def measure(model, batches, mask, gate=None) -> dict[str, float]:
    """Forget-token mass on forget, perplexity of every other set, and the gate's firing rate per set."""
    out = {}
    for name, batch in batches.items():
        if gate is None:
            logits = forward(model, batch)
        else:
            gate.reset()
            with attach_gate(model, gate):
                logits = forward(model, batch)
            out[f"fire_{name}"] = gate.firing_rate
        if name == "forget":
            out["mass"] = forget_token_mass(logits, batch["labels"], mask)
        else:
            out[f"ppl_{name}"] = perplexity_from(*token_nll(logits, batch["labels"]))
    return out


def scores(m: dict, base: dict) -> dict[str, float]:
    ratio = {k[4:]: base[k] / m[k] for k in m if k.startswith("ppl_")}
    return {
        "forget_efficacy": 1.0 - m["mass"] / base["mass"],
        "utility": ratio["retain"],
        "mixed_utility": ratio.get("mixed", float("nan")),
        "xlang_utility": geometric_mean([v for k, v in ratio.items() if k.startswith("xlang_")]),
        "fire_retain": m.get("fire_retain", 0.0),
        "fire_forget": m.get("fire_forget", 0.0),
    }


def cost(model, batch, gate, repeats: int) -> float:
    def median_time(fn):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    bare = median_time(lambda: forward(model, batch))
    with attach_gate(model, gate):
        gated = median_time(lambda: forward(model, batch))
    return gated / bare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sae-steps", type=int, default=SAEConfig.steps)
    ap.add_argument("--d-sae", type=int, default=None)
    ap.add_argument("--k", type=int, default=SAEConfig.k)
    ap.add_argument("--n-features", type=int, default=20)
    ap.add_argument("--trigger-percentile", type=float, default=95.0)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--train-lines", type=int, default=None, help="at most this many training lines per set "
                    "(SAE, selection, calibration; default all)")
    ap.add_argument("--heldout-lines", type=int, default=None, help="at most this many held-out lines per set "
                    "(default all 128)")
    args = ap.parse_args()

    embedded = ensure_embedded()
    path = str(embedded.model_dir)
    tok, model = load_tokenizer(path), load_model(path)
    data = load_study_data(embedded.data_paths())
    data = StudyData({name: replace(s, train=s.train[:args.train_lines], heldout=s.heldout[:args.heldout_lines])
                      for name, s in data.sets.items()})
    fit = min(FIT, len(data.retain.train) // 2)
    config = SAEConfig(d_sae=args.d_sae, k=args.k, steps=args.sae_steps)

    with tempfile.TemporaryDirectory(prefix="sae-bench-") as root:  # a fresh cache: the first call trains
        t = time.perf_counter()
        sae, report, hit = load_or_train_sae(path, tok, data, LAYER, config, root, model=model)
        first = time.perf_counter() - t
        t = time.perf_counter()
        _, _, hit2 = load_or_train_sae(path, tok, data, LAYER, config, root, model=model)
        second = time.perf_counter() - t
    print(f"SAE layer {LAYER}: d_sae {sae.d_sae}, BatchTopK k {report['batch_k']} "
          f"(JumpReLU theta {report['theta']:.3f}), "
          f"{config.steps} steps of {config.batch_tokens} tokens "
          f"on {report['train_tokens']} tokens ({report['collect_seconds']:.1f}s collecting activations)")
    print(f"  first call: cache hit {hit}, {first:.1f}s; held-out ({report['heldout_tokens']} tokens): "
          f"FVE {report['fve']:.3f}, L0 {report['l0']:.1f}, dead {report['dead_share']:.1%}")
    print(f"  second call: cache hit {hit2}, {second:.2f}s")

    def acts(lines):
        return collect_activations(model, tok, lines, LAYER, config.max_len)

    features = select_features(sae, acts(data.forget.train[:fit])[0], acts(data.retain.train[:fit])[0],
                               90, args.n_features)
    calib = per_sequence(*acts(data.retain.train[fit : 2 * fit]))
    held_f, held_r = acts(data.forget.heldout)[0], acts(data.retain.heldout)[0]
    print(f"\n{len(features)} features (ratio in the top 10%, then by forget importance): any active on "
          f"{activation_rates(sae, features, held_f):.1%} of held-out forget tokens vs "
          f"{activation_rates(sae, features, held_r):.1%} of retain tokens")

    special = tok.all_special_ids
    thresholds = {p: calibrate_threshold(sae, features, calib, p) for p in (90.0, 95.0, args.trigger_percentile)}

    def dsg(alpha, p=args.trigger_percentile, active_only=False):
        return DynamicGate(sae, LAYER, features, alpha, thresholds[p], special, active_only=active_only)

    torch.set_num_threads(1)
    eval_batch = encode(tok, data.forget.heldout[:8] + data.retain.heldout[:8], 32)
    static_cost = cost(model, eval_batch, StaticGate(sae, LAYER, features, 1.0), args.repeats)
    dsg_cost = cost(model, eval_batch, dsg(4.0), args.repeats)
    print(f"\ngated forward / bare forward (16 lines x {eval_batch['input_ids'].shape[1]} tokens, median of "
          f"{args.repeats}, 1 thread; target <= 1.3x): static {static_cost:.2f}x, DSG {dsg_cost:.2f}x")
    torch.set_num_threads(2)

    batches = {s.name: encode(tok, s.heldout, 32) for s in data.sets.values()}
    script = dominant_script(data.forget.train[:3000])[0]
    mask = forget_token_mask(tok, model.get_input_embeddings().weight.shape[0],
                             {n: s.train[:3000] for n, s in data.sets.items()}, script)
    base = measure(model, batches, mask)
    for p in (90.0, 95.0):
        m = measure(model, batches, mask, dsg(4.0, p))
        print(f"DSG firing at trigger percentile {p:g} (tau {thresholds[p]:.3f}): held-out retain "
              f"{m['fire_retain']:.1%}, forget {m['fire_forget']:.1%}, mixed {m['fire_mixed']:.1%}, "
              + ", ".join(f"{k[5:]} {v:.1%}" for k, v in m.items() if k.startswith("fire_xlang")))

    rows = [("static", a, scores(measure(model, batches, mask, StaticGate(sae, LAYER, features, a)), base))
            for a in STATIC_ALPHAS]
    rows += [("dsg", a, scores(measure(model, batches, mask, dsg(a)), base)) for a in DSG_ALPHAS]
    # the earlier form: only the selected features active at a token are clamped (the paper clamps all of them)
    rows += [("dsg_act", a, scores(measure(model, batches, mask, dsg(a, active_only=True)), base)) for a in DSG_ALPHAS]
    print(f"\n{len(data.forget.heldout)} held-out lines per set, {len(features)} features, DSG trigger percentile "
          f"{args.trigger_percentile:g}; utilities are ppl_bare / ppl_gated")
    print(f"{'gate':7} {'alpha':>6} {'forget_eff':>10} {'utility':>8} {'mixed_u':>8} {'xlang_u':>8} "
          f"{'fire_ret':>8} {'fire_fgt':>8}  verdict")
    statics = [r[2] for r in rows if r[0] == "static"]
    for kind, alpha, s in rows:
        verdict = ""
        if kind.startswith("dsg"):
            rivals = [o["forget_efficacy"] for o in statics if o["utility"] >= s["utility"]]
            best = max(rivals, default=None)
            verdict = ("no static point at this utility or better" if best is None else
                       f"{'beats' if s['forget_efficacy'] > best else 'does not beat'} the best static point at "
                       f"equal or better utility (forget_eff {best:.3f})")
        print(f"{kind:7} {alpha:6.2f} {s['forget_efficacy']:10.3f} {s['utility']:8.3f} {s['mixed_utility']:8.3f} "
              f"{s['xlang_utility']:8.3f} {s['fire_retain']:8.1%} {s['fire_forget']:8.1%}  {verdict}")


if __name__ == "__main__":
    main()
