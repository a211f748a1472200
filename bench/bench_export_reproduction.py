"""Does an exported front member reproduce, outside the study, what the study measured?

Runs a small study on the embedded default (real Ray, Optuna, MLflow), exports every member of its front (the first
`--members` with that flag; `study.results.export.export_config`) and, from each export's files alone:
- checks the export's contract: line i of each data/<set>.jsonl is the study's training line i of that set;
- re-runs config.json's kwargs through the mmie.py entry point (`trainables.adaptive_unlearning.run_config`) on the
  study's files named in config.json's `study_data` (the entry point splits them as the study did) and compares the
  re-run's final `mmie/` figures and own metrics with the trial's logged values. The sampling noise of the
  generated figures is measured on the re-run model itself: the same evaluation under other generation seeds;
- prints each export's remaining differences from mmie.py (`mmie_differences`);
- prints how far mmie.py's `es_forget`, `ppl_retain` and verdict move (issue 22, items 2 and 3) for the first
  `--compare` members, reusing the study: the trial restored from its last checkpoint is measured again on
  mmie.py's lines (the exported files' heads: it must give the logged figures) and on the study's held-out lines
  read as mmie.py's files (base model too); the same trial is trained again with `train.padding: mmie` (each set
  padded to its longest line, pads counted) and measured on mmie.py's lines. No setting selects the lines of the
  `mmie/` figures: a study measures them on the exported files' heads, always.

    flock /tmp/heavy.lock .venv/bin/python bench/bench_export_reproduction.py     # about 10 minutes on 2 cores (9 at --steps 60)
    .venv/bin/python bench/bench_export_reproduction.py --differences    # seconds: no study, no training

`--differences` runs no study: it exports a `ga` trial at its defaults from the default study's logged config
(the embedded default, built) and prints what differs from mmie.py, with the sizes the export measures.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

# utility is not compared: the study measures it on its general utility set, which the entry points do not take.
FIGURES = ("forget_efficacy", "retain_utility_raw", "es_forget", "mmie/es_forget", "mmie/ppl_retain",
           "mmie/token_kl_retain", "mmie/mia_auc")


def _contract(export: Path, config: dict, study) -> str:
    """'ok' when every written file holds exactly its set's training lines in the study's order."""
    from trainables.data import read_jsonl

    bad = [name for name, rel in config["data"].items() if read_jsonl(export / rel) != study.sets[name].train]
    return "ok" if not bad else f"MISMATCH in {', '.join(bad)}"


# The figures compared between paddings and between lines: mmie.py's, its base model's, and our forget_efficacy.
MOVED = ("mmie/es_forget", "mmie/ppl_retain", "mmie/base/es_forget", "mmie/base/ppl_retain", "forget_efficacy")
STUDY, RESTORED, HELDOUT, MMIE_PADDING = ("study: masked, mmie.py's lines", "restored: masked, mmie.py's lines",
                                          "restored: masked, held-out lines", "trained: mmie padding, mmie.py's lines")


def heldout_as_files(data):
    """The study's held-out lines of each set in place of its training lines: what mmie.py would read from files
    holding them (`trainables.metrics.mmie.mmie_lines` reads each set's `train`)."""
    from trainables.data import StudyData

    return StudyData(sets={name: replace(s, train=list(s.heldout)) for name, s in data.sets.items()})


def compare(setup, trial, checkpoint: Path | None) -> dict[str, dict]:
    """One trial's mmie.py figures as the study logged them (masked padding, mmie.py's lines), restored from its last
    checkpoint on the same lines and on the held-out lines, and trained again with mmie.py's padding."""
    from trainables.metrics.mmie import verdict_label
    from trainables.unlearner import Unlearner

    def trained(padding: str):
        u = Unlearner(replace(setup, train=replace(setup.train, padding=padding)), hparams)
        while u.step < u.steps and not u.train_step()["diverged"]:
            pass
        return u

    hparams = {k: v for k, v in trial.params.items() if k != "trial_id"}
    if checkpoint is not None:
        masked = Unlearner(setup, hparams)
        masked.restore(checkpoint)
    else:  # no checkpoint kept: the same run again (seeded as the trial was)
        masked = trained("masked")
    rows = {STUDY: dict(trial.metrics),
            RESTORED: masked.evaluate_mmie(final=True) | masked.evaluate_step(),
            HELDOUT: masked.evaluate_mmie(final=True, lines=heldout_as_files(masked.data))}
    mmie = trained("mmie")
    rows[MMIE_PADDING] = mmie.evaluate_mmie(final=True) | mmie.evaluate_step()
    for row in rows.values():
        row["verdict"] = verdict_label(row)
    return rows


def _moved(a: dict, b: dict) -> str:
    shifts = " ".join(f"{m} {b.get(m, float('nan')) - a.get(m, float('nan')):+.4f}" for m in MOVED
                      if m in a and m in b)
    same = "verdict same" if a["verdict"] == b["verdict"] else f"verdict {a['verdict']} -> {b['verdict']}"
    return f"{shifts}; {same}"


def print_comparison(label: str, rows: dict[str, dict]) -> None:
    print(f"\npadding and lines, {label}:")
    print(f"  {'measured':<40}" + "".join(f"{m:>21}" for m in MOVED) + "  verdict")
    for name, row in rows.items():
        print(f"  {name:<40}" + "".join(f"{row[m]:>21.4f}" if m in row else f"{'-':>21}" for m in MOVED)
              + f"  {row['verdict']}")
    print(f"  mmie padding - masked: {_moved(rows[STUDY], rows[MMIE_PADDING])}")
    print(f"  held-out - mmie.py's lines: {_moved(rows[RESTORED], rows[HELDOUT])}")


def print_default_differences() -> None:
    from study.config import load_config
    from study.results.export import export_config
    from study.results.front import StudyRecord, TrialRecord
    from study.tracking.parent_run import _flatten
    from trainables.methods.registry import ADAPTERS, get_variant

    cfg = load_config()
    record = StudyRecord(study=cfg.study, tracking_uri="", parent_run_id="-", objectives=cfg.search.objectives,
                         steps=cfg.train.steps, seed=cfg.train.seed, config=_flatten(cfg.model_dump(mode="json")))
    knobs = get_variant("ga").knobs() + ADAPTERS.get("lora").knobs
    trial = TrialRecord(run_id="-", trial_id="ga-defaults", status="completed", pareto=True, pareto_rank=0,
                        params={"variant": "ga", "adapter": "lora", **{k.name: k.default for k in knobs}}, metrics={})
    config = export_config(record, trial, Path(tempfile.mkdtemp(prefix="export-diff-")))
    print(f"default study, ga at its defaults: mmie_exact {config['mmie_exact']}")
    for d in config["mmie_differences"]:
        print(f"  - {d}")
    print(config["mmie_command"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--members", type=int, default=None, help="re-run only the first N front members "
                        "(default: every member)")
    parser.add_argument("--noise-seeds", type=int, default=3)
    parser.add_argument("--compare", type=int, default=None,
                        help="members whose padding and lines are compared (default: every re-run member)")
    parser.add_argument("--mmie-items", type=int, default=None, dest="mmie_items",
                        help="cap mmie.py's lines per set (mmie_eval.final_items and teacher_forced_items; "
                             "default: the study config's)")
    parser.add_argument("--differences", action="store_true", help="only print a default export's differences")
    args = parser.parse_args()
    if args.differences:
        print_default_differences()
        return

    from study.config import load_config
    from study.prepare import experiment_path, prepare_study
    from study.results.audit import last_checkpoint
    from study.results.export import export_config
    from study.results.front import front_table, load_study
    from study.results.trained_lines import study_data, study_inputs
    from study.runner import run_study
    from trainables.adaptive_unlearning import run_config
    from trainables.data import read_jsonl
    from trainables.model.loading import load_model, load_tokenizer

    torch.set_num_threads(1)  # as each trial ran
    work = Path(tempfile.mkdtemp(prefix="export-repro-"))
    uri = f"sqlite:///{work}/mlflow.db"
    items = {} if args.mmie_items is None else {"mmie_eval.final_items": args.mmie_items,
                                                 "mmie_eval.teacher_forced_items": args.mmie_items}
    cfg = load_config(overrides={
        **items, "study": "repro", "tracking_uri": uri, "storage_path": str(work / "ray"),
        "variants": ["ga", "forget_reweight", "dualoptim", "mmie_npo"], "search.num_samples": args.trials,
        "search.max_concurrent": 2, "scheduler.type": "fifo", "train.steps": args.steps,
        "train.eval_every": args.steps, "train.checkpoint_every": args.steps,
        # Not compared here, and they cost most of a small study: the retain-only oracle and the relearning attack.
        "robustness.oracle": False, "robustness.relearn": False,
    })
    run_study(cfg, log=lambda *a: None)
    record = load_study(uri, "repro")
    rows = front_table(record)[: args.members]
    print(f"study: {len(record.trials)} trials, {len(front_table(record))} on the front; re-running {len(rows)}")
    inputs = study_inputs(record)
    study = study_data(record, inputs)
    setup = prepare_study(cfg, log=lambda *a: None)  # what every trial ran with
    # The re-runs measure mmie.py's figures with the study's counts of lines and at its final evaluation.
    measured_as_study = dict(mmie_eval=setup.mmie_eval)
    comparisons = []

    first_noise: dict[str, list[float]] = {}
    table = [f"{'trial':<28}{'figure':<22}{'study':>10}{'re-run':>10}{'|diff|':>10}{'noise sd':>10}"]
    for row in rows:
        trial = next(t for t in record.trials if t.trial_id == row["trial_id"])
        export = work / "export" / trial.trial_id
        export_config(record, trial, export)
        config = json.loads((export / "config.json").read_text())  # from here on, only the export's files
        print(f"{trial.variant} {trial.trial_id}: lines contract {_contract(export, config, study)}; "
              f"mmie_exact {config['mmie_exact']}; {len(config['mmie_differences'])} difference(s):")
        for d in config["mmie_differences"]:
            print(f"    - {d}")
        forget, retain = (read_jsonl(config["study_data"][s]) for s in ("forget", "retain"))
        model = load_model(str(inputs.model), False, "float32", "cpu")
        tok = load_tokenizer(str(inputs.model), False)
        unlearner, _ = run_config(model, tok, forget, retain, "cpu", adapter=config["adapter"], **config["kwargs"])
        unlearner.setup = replace(unlearner.setup, **measured_as_study,
                                  train=replace(unlearner.setup.train, final_es_prompts=cfg.train.final_es_prompts))
        final = unlearner.evaluate_step() | unlearner.evaluate_full(cfg.train.final_es_prompts)
        noise: dict[str, list[float]] = {}
        trained_setup = unlearner.setup
        # The same model under other generation seeds (the generated figures derive their sampling seed from the
        # trial's seed); on the first member only.
        for k in range(args.noise_seeds if row is rows[0] else 0):
            seed = trained_setup.train.seed + 1 + k
            unlearner.setup = replace(trained_setup, train=replace(trained_setup.train, seed=seed))
            again = unlearner.evaluate_full(cfg.train.final_es_prompts)
            for name in FIGURES:
                if name in again:
                    noise.setdefault(name, []).append(again[name])
        unlearner.setup = trained_setup
        if noise:
            first_noise = noise
        for name in FIGURES:
            if name not in trial.metrics or name not in final:
                continue
            sd = statistics.stdev(first_noise[name]) if len(first_noise.get(name, [])) > 1 else float("nan")
            diff = abs(trial.metrics[name] - final[name])
            table.append(f"{trial.variant + ' ' + trial.trial_id[-6:]:<28}{name:<22}{trial.metrics[name]:>10.4f}"
                         f"{final[name]:>10.4f}{diff:>10.4f}{sd:>10.4f}")
        if len(comparisons) < (len(rows) if args.compare is None else args.compare):
            try:
                checkpoint = last_checkpoint(Path(experiment_path(cfg, record.parent_run_id)), trial.trial_id)
            except FileNotFoundError:
                checkpoint = None
            comparisons.append((f"{trial.variant} {trial.trial_id}", compare(setup, trial, checkpoint)))
    print("\n".join(table))
    for label, compared in comparisons:
        print_comparison(label, compared)
    print(f"(study and exports under {work})")


if __name__ == "__main__":
    main()
