"""A real architecture's shape (random weights, `model: shape:qwen2.5-0.5b`): throughput and memory, and the whole
study end to end. Prints figures; nothing is asserted.

    .venv/bin/python bench/bench_real_shape.py throughput [--shape qwen2.5-0.5b] [--steps 6] [--batch 4] [--len 32]
    .venv/bin/python bench/bench_real_shape.py smoke      [--shape qwen2.5-0.5b]     # the smoke study, 2 trials
    .venv/bin/python bench/bench_real_shape.py throughput --device cuda --batch 16 --len 256   # bench/gpu_check.sh
    .venv/bin/python bench/bench_real_shape.py throughput --shape bench-tiny --steps 1 --rounds 1   # runs? (seconds)

throughput: the trainable's training step (`Unlearner.train_step`, variant ga: a forget update then a retain
update, LoRA on q/k/v/o) against a plain torch loop over the same model, the same batches (the trainable's own,
built beforehand), the same two updates and optimiser, in alternating rounds in one process, so the machine's
noise hits both alike. Also per-step evaluation's share of a step and the trial process's memory (PSS).

smoke: a study of 2 trials x 3 steps at that shape on small data files written from the embedded corpus (LoRA on
q/k/v/o and LoReFT at deep layers, the static gate and DSG on an SAE at the model's width, checkpoints, a worker
killed mid-trial and restored, export of the knee), then what ran where.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parent.parent
# A shape only this script knows, in this process (so throughput only; a study's workers would not know it): it
# checks that the benchmark runs, in seconds, without building a real shape's 1.4 GB model. Its figures mean nothing.
TINY = "bench-tiny"


def register_tiny_shape() -> None:
    from trainables.model.shapes import SHAPES, ArchitectureShape

    SHAPES.setdefault(TINY, ArchitectureShape(
        hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=96, tie_word_embeddings=True,
        rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=512, hub_vocab_size=151936))


def pss_mib() -> float:
    return psutil.Process().memory_full_info().pss / 2**20


def plain_loop(model, params, batches, lr: float) -> float:
    """The same updates as the trainable's ga step, written as the plainest torch loop: seconds per step."""
    from trainables.metrics.core import token_nll

    opt = torch.optim.AdamW(params, lr=lr)
    model.train()
    started = time.perf_counter()
    for forget, retain in batches:
        for sign, batch in ((-1.0, forget), (1.0, retain)):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
            total, count = token_nll(logits, batch["labels"])
            loss = sign * (total.sum() / count.sum()) if sign > 0 else sign * (total / count.clamp_min(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
    return (time.perf_counter() - started) / len(batches)


def throughput(args) -> None:
    torch.set_num_threads(args.threads)
    from trainables.trial.setup import TrainSettings, TrialSetup
    from trainables.unlearner import Unlearner

    device = args.device
    setup = TrialSetup(model=f"shape:{args.shape}", train=TrainSettings(batch_size=args.batch, max_len=args.len, steps=10_000),
                       eval_batch=8, eval_max_len=args.len, device=device)
    path = setup.model_path()  # builds the random-weight model once (cached)
    before = pss_mib()
    # Retain by NLL (gradient difference), so both sides make the same two updates; the default KL retain step
    # adds one no-grad forward pass of the frozen model on the retain batch.
    hp = {"variant": "ga", "lr": 1e-4, "target_modules": "q_proj,k_proj,v_proj,o_proj", "retain_objective": "nll"}
    t0 = time.perf_counter()
    u = Unlearner(setup, hp)
    init_s = time.perf_counter() - t0
    params = u.adapter.parameters()
    print(f"{args.shape} at {path}: {sum(p.numel() for p in u.model.parameters()) / 1e6:.0f} M parameters, "
          f"{sum(p.numel() for p in params) / 1e6:.2f} M trained (LoRA q/k/v/o r=8); batch {args.batch} x <= "
          f"{args.len} tokens; {args.threads} thread(s); device {device}; trial set-up {init_s:.1f} s")

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    u.train_step()  # warm-up (allocations, autocast caches)
    sync()
    ours, plain, evals = [], [], []

    def trainable_round():
        sync()
        t = time.perf_counter()
        for _ in range(args.steps):
            if u.train_step()["diverged"]:  # a diverged step stops after its first update: not a comparison
                raise SystemExit("the trainable's step diverged (non-finite loss or gradient)")
        sync()
        ours.append((time.perf_counter() - t) / args.steps)

    def plain_round():
        # The next steps' batches exactly as the trainable draws them, built before the plain loop's clock starts.
        step0 = u.step
        batches = []
        for i in range(args.steps):
            u.step = step0 + i
            batches.append((u._batch("forget", 0), u._batch("retain", 1)))
        u.step = step0
        plain.append(plain_loop(u.model, params, batches, 1e-4))
        sync()

    for r in range(args.rounds):
        # ABBA order, so a slow spell of the shared machine does not always fall on the same side.
        for run in ((trainable_round, plain_round) if r % 2 == 0 else (plain_round, trainable_round)):
            run()
        t = time.perf_counter()
        u.evaluate_step()
        sync()
        evals.append(time.perf_counter() - t)
    o, p, e = statistics.median(ours), statistics.median(plain), statistics.median(evals)
    print(f"seconds per step (median of {args.rounds} rounds of {args.steps} steps, alternating): trainable {o:.3f} "
          f"{[round(x, 2) for x in ours]}, plain loop {p:.3f} {[round(x, 2) for x in plain]}; trainable "
          f"throughput = {p / o:.2f}x the plain loop's (target >= 0.9)")
    print(f"per-step evaluation (forget mass + retain perplexity, {2 * setup.eval_batch} lines x <= "
          f"{setup.eval_max_len}): {e:.3f} s = {e / (o + e):.0%} of a step with its evaluation")
    print(f"trial process PSS: {pss_mib():.0f} MiB (before the trial {before:.0f} MiB; the worker keeps the loaded "
          f"model and each trial trains on its own copy)")
    if device.startswith("cuda"):
        print(f"CUDA peak allocated: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def smoke_data(folder: Path, lines: int) -> dict:
    """Small JSONL files from the embedded corpus (so the SAE and the gates train on little text)."""
    from trainables.data import read_jsonl, write_jsonl
    from trainables.embedded import ensure_embedded

    data = ensure_embedded().root / "data"
    out = {}
    for name in ("hi", "en", "hi_en", "ur", "bn"):
        write_jsonl(folder / f"{name}.jsonl", read_jsonl(str(data / f"{name}.jsonl"))[:lines])
        out[name] = str(folder / f"{name}.jsonl")
    return {"forget": out["hi"], "retain": out["en"], "mixed": out["hi_en"], "xlang": [out["ur"], out["bn"]]}


def smoke(args) -> None:
    from study.config import parse_config
    from study.prepare import model_shape
    from study.results.export import export_config, pick
    from study.results.front import load_study
    from study.runner import run_study

    work = Path(tempfile.mkdtemp(prefix="real-shape-"))
    os.chdir(work)
    cfg = parse_config({
        "study": "real-shape", "model": f"shape:{args.shape}", "data": smoke_data(work, args.lines),
        "variants": args.variants, "adapters": ["lora", "loreft"],
        "search": {"searcher": "random", "num_samples": 2, "max_concurrent": 2, "seed": args.seed, "space": {
            "target_modules": {"value": "q_proj,k_proj,v_proj,o_proj"},
            "layers": {"choices": ["16", "23", "12,18,23"]}, "sae_layer": {"searched": True}}},
        "scheduler": {"type": "fifo"},
        "train": {"steps": 3, "batch_size": 2, "max_len": 16, "eval_every": 3, "checkpoint_every": 1,
                  "es_prompts": 2, "final_es_prompts": 2},
        "sae": {"d_sae": 1024, "steps": 50},
        "resources": {"max_failures": 2},
    }, source="bench_real_shape smoke")
    shape = model_shape(cfg)
    started = time.perf_counter()
    # Held-out sets and evaluation batches sized for a CPU at this shape; a worker dies at step 2 and restores.
    rows = run_study(cfg, log=lambda *a: print(*a, flush=True), heldout=16, eval_batch=4, eval_max_len=16,
                     max_new_tokens=4, crash_at_step=2)
    wall = time.perf_counter() - started
    record = load_study(f"sqlite:///{work / 'mlflow.db'}", "real-shape")
    exported = export_config(record, pick(record, "knee"), str(work / "exported"))
    print(f"smoke study at {args.shape} ({shape.num_layers} layers, width {shape.hidden_size}): {wall:.0f} s, "
          f"working dir {work}")
    for r in rows:
        where = {k: r.get(k) for k in ("variant", "adapter", "layers", "sae_layer", "target_modules") if r.get(k)}
        print(f"  trial {r['trial']}: {r['status']}, step {r.get('step')}, {where}")
    for t in record.trials:
        print(f"  {t.trial_id}: restores {t.metrics.get('restores')}, gate_sae_fve {t.metrics.get('gate_sae_fve')}")
    print(f"exported knee: {json.dumps(exported)[:400]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["throughput", "smoke"])
    ap.add_argument("--shape", default="qwen2.5-0.5b")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--len", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lines", type=int, default=80, help="smoke: lines per data file")
    ap.add_argument("--seed", type=int, default=0, help="smoke: search seed")
    ap.add_argument("--variants", nargs="+", default=["ga+sae_gate", "ga+dsg"], help="smoke: the study's variants")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.shape == TINY:
        if args.part != "throughput":
            ap.error(f"--shape {TINY} is known to this process only: throughput, not a study")
        register_tiny_shape()
    throughput(args) if args.part == "throughput" else smoke(args)


if __name__ == "__main__":
    main()
