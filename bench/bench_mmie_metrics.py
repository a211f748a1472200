"""What mmie.py's measurements cost a default trial, and how often its LID ensemble disagrees with lingua.

    .venv/bin/python bench/bench_mmie_metrics.py                 # both parts, about 5 minutes on 2 cores
    .venv/bin/python bench/bench_mmie_metrics.py --part lid      # the disagreement only
    .venv/bin/python bench/bench_mmie_metrics.py --steps 2 --per-set 2 --lines 8 --es-prompts 2   # runs? (seconds)

Prints figures only; nothing here is asserted.
- cost: the default trial's loop (ga, the default steps, full evaluations every eval_every steps and at the end,
  one thread) with the mmie measurements on and off, run alternately in one process so that the machine's load
  bursts hit both alike; the base model's measurements (once per worker process) are timed on their own.
- lid: on every held-out line of the embedded corpus (and the adversarial prompts), and on continuations the base
  model samples the way mmie.py does, the share of texts whose ensemble label differs from lingua's (restricted to
  the study's languages, as the study's own ES uses it; lingua's "no language" counts as 'und').
"""

from __future__ import annotations

import argparse
import time
from collections import Counter


def cost(steps: int, repeats: int, es_prompts: int | None = None) -> None:
    from dataclasses import replace

    from bench_robustness import default_trial  # a default trial's work, as the robustness benchmark times it

    from trainables.metrics import mmie as mmie_metrics
    from trainables.trial.setup import TrainSettings, TrialSetup
    from trainables.unlearner import Unlearner

    languages = (("forget", "hi"), ("retain", "en"), ("mixed", "hi"), ("xlang_ur", "ur"), ("xlang_pa", "pa"),
                 ("xlang_bn", "bn"), ("adversarial", "en"))
    base = TrialSetup(train=TrainSettings(steps=steps), languages=languages)
    if es_prompts is not None:
        base = replace(base, train=replace(base.train, es_prompts=es_prompts, final_es_prompts=es_prompts),
                       mmie_eval=replace(base.mmie_eval, items=es_prompts, final_items=es_prompts))
    hp = {"variant": "ga", "lr": 1e-3, "rank": 8, "target_modules": "q_proj,v_proj"}
    on = base
    on_all = replace(base, mmie_eval=replace(base.mmie_eval, checkpoint_sets="all"))
    off = replace(base, mmie_eval=replace(base.mmie_eval, enabled=False))

    warm = Unlearner(on, hp)
    t0 = time.perf_counter()
    warm.evaluate_mmie(final=True)  # the base model's measurements, cached for the process, and the LID models
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm.evaluate_mmie(final=False)
    checkpoint = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm.evaluate_mmie(final=True)
    final = time.perf_counter() - t0
    print(f"mmie measurements: first call {first:.1f} s (base model included), a checkpoint "
          f"({on.mmie_eval.items} prompts per set) {checkpoint:.1f} s, the end ({on.mmie_eval.final_items}) {final:.1f} s")

    def trial(setup) -> float:
        u = Unlearner(setup, hp)
        t0 = time.perf_counter()
        default_trial(u, setup)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"off": [], "on": [], "on_all": []}
    for _ in range(repeats):
        for name, setup in (("off", off), ("on", on), ("on_all", on_all)):
            times[name].append(trial(setup))
    t_off, t_on, t_all = min(times["off"]), min(times["on"]), min(times["on_all"])
    print(f"default trial ({steps} steps, eval every {base.train.eval_every}): {t_off:.1f} s without the mmie measurements; "
          f"{t_on:.1f} s with them (default, ES of the forget set at checkpoints): x{t_on / t_off:.2f}; "
          f"{t_all:.1f} s with every set at checkpoints: x{t_all / t_off:.2f} (best of {repeats}; the base model's "
          "once per worker process on top)")
    del mmie_metrics


def lid(per_set: int, lines: int | None = None) -> None:
    from trainables.data import load_study_data
    from trainables.embedded import ensure_embedded
    from trainables.language.identification import LanguageIdentifier
    from trainables.language.lid_ensemble import UND, default_ensemble
    from trainables.metrics.mmie import es_prompt_sets, generate
    from trainables.model.loading import load_model, load_tokenizer

    em = ensure_embedded(log=lambda *a: None)
    data = load_study_data(em.data_paths(), seed=0, heldout=128)
    ensemble = default_ensemble()
    lingua = LanguageIdentifier(("hi", "en", "ur", "pa", "bn"))
    print(f"LID ensemble voters present: {', '.join(ensemble.present)}; missing: {', '.join(ensemble.missing) or 'none'}")

    def compare(label: str, texts: list[str]) -> tuple[int, int]:
        ours = [c or UND for c in lingua.label(texts)]
        theirs = [ensemble.infer(t) for t in texts]
        pairs = Counter((a, b) for a, b in zip(ours, theirs) if a != b)
        differ = sum(pairs.values())
        top = ", ".join(f"lingua {a} / ensemble {b}: {n}" for (a, b), n in pairs.most_common(3))
        print(f"  {label:28} {differ:4d} of {len(texts):4d} differ ({differ / len(texts):.1%}){'; ' + top if top else ''}")
        return differ, len(texts)

    totals = Counter()
    print("held-out lines:")
    for name, s in data.sets.items():
        texts = (s.heldout + (s.train if name == "adversarial" else []))[:lines]
        d, n = compare(name, texts)
        totals.update(held_differ=d, held_n=n)
    tok = load_tokenizer(str(em.model_dir))
    model = load_model(str(em.model_dir))
    print(f"continuations of the base model (mmie.py's sampling, {per_set} prompts per set, 64 new tokens):")
    for i, (name, prompts) in enumerate(es_prompt_sets(data, base=True, cap=per_set).items()):
        gens = generate(model, tok, prompts, 64, seed=i)
        d, n = compare(name, gens)
        totals.update(gen_differ=d, gen_n=n)
    print(f"overall: held-out lines {totals['held_differ']}/{totals['held_n']} "
          f"({totals['held_differ'] / totals['held_n']:.1%}), continuations {totals['gen_differ']}/{totals['gen_n']} "
          f"({totals['gen_differ'] / totals['gen_n']:.1%})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["cost", "lid", "both"], default="both")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--per-set", type=int, default=32, dest="per_set")
    ap.add_argument("--lines", type=int, default=None, help="lid: at most this many texts per set (default all)")
    ap.add_argument("--es-prompts", type=int, default=None,
                    help="cost: ES and mmie prompts per set (default: the trial setup's)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.part in ("lid", "both"):
        lid(args.per_set, args.lines)
    if args.part in ("cost", "both"):
        cost(args.steps, args.repeats, args.es_prompts)


if __name__ == "__main__":
    main()
