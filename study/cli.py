"""unlearn-study: run a study, list the variants, build the embedded default.

mmie.py's own flags work as overrides of the study config, so a researcher's habits carry over.
Exit status: 0 done, 2 bad input or a service that does not answer (one line on stderr says what and where),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# Torch, Ray, transformers and MLflow take seconds to import: each command imports them where it first needs them,
# after its arguments and its cheap checks, so that `--help` and a bad input answer at once (tests/test_cli_imports.py).
# study.config, the registry's pieces, study.prepare's first checks and study.runner's imports need none of them.

# Config keys the run flags set, so that a bad value is blamed on its flag, not on the YAML.
FLAGS = {"study": "--study", "model": "--model", "data": "--forget/--retain/--mixed/--xlang",
         "search.num_samples": "--num-samples", "train.steps": "--steps", "train.seed": "--seed",
         "tracking_uri": "--tracking-uri", "address": "--address", "variants": "--variants",
         "search.max_concurrent": "--max-concurrent", "search.searcher": "--searcher"}

# mmie.py's acceptance-gate ratios, flags of `run` that override the config's mmie_eval section.
GATE_RATIOS = ("gate_es_forget_ratio", "gate_es_mixed_ratio", "gate_ppl_ratio")


def _overrides(args) -> dict:
    o: dict = {}
    if args.study is not None:
        o["study"] = args.study
    if args.model is not None:
        o["model"] = args.model
    if args.forget or args.retain:
        if not (args.forget and args.retain):
            raise SystemExit("error: --forget and --retain go together")
        o["data"] = {"forget": args.forget, "retain": args.retain, "mixed": args.mixed, "xlang": args.xlang or [],
                     "adversarial": args.adversarial}
    elif args.mixed or args.xlang or args.adversarial:
        raise SystemExit("error: --mixed/--xlang/--adversarial need --forget and --retain")
    for flag, key in (("num_samples", "search.num_samples"), ("steps", "train.steps"), ("seed", "train.seed"),
                      ("tracking_uri", "tracking_uri"), ("address", "address"), ("variants", "variants"),
                      ("max_concurrent", "search.max_concurrent"), ("searcher", "search.searcher"),
                      *((g, f"mmie_eval.{g}") for g in GATE_RATIOS)):
        value = getattr(args, flag)
        if value is not None:
            o[key] = value
    return o


STUDY_HELP = "study name: the MLflow experiment, and the prefix of its folder in ./ray_results"
RUN_ID_HELP = "a parent run of the study (default: the latest finished one with trials)"
TRACKING_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)"


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="study YAML (see studies/)")
    p.add_argument("--study", help=STUDY_HELP + " (default: the config's, else default)")
    p.add_argument("--model", help="'embedded', a hub name (Qwen/Qwen2.5-1.5B-Instruct) or a local path")
    p.add_argument("--forget", help="forget set, JSONL with a 'text' field")
    p.add_argument("--retain", help="retain set, JSONL")
    p.add_argument("--mixed", help="code-mixed set, JSONL")
    p.add_argument("--xlang", nargs="+", help="cross-lingual sets, JSONL")
    p.add_argument("--adversarial", help="adversarial prompts, JSONL (mmie.py's es_adversarial)")
    for gate in GATE_RATIOS:  # their defaults live in MmieEvalConfig alone (trainables.settings)
        p.add_argument(f"--{gate}", type=float, help=f"mmie.py's acceptance gate ratio, a search constraint "
                                                     f"(default: the config's mmie_eval.{gate}, else mmie.py's)")
    p.add_argument("--variants", nargs="+", help="variants to search (see `unlearn-study variants`)")
    p.add_argument("--num-samples", type=int, dest="num_samples", help="number of trials")
    p.add_argument("--max-concurrent", type=int, dest="max_concurrent")
    p.add_argument("--searcher", choices=["optuna", "random"])
    p.add_argument("--steps", type=int, help="unlearning steps per trial")
    p.add_argument("--seed", type=int, help="training seed of every trial")
    p.add_argument("--tracking-uri", dest="tracking_uri", help=TRACKING_HELP)
    p.add_argument("--address", help="Ray cluster address (default: a local Ray, or $RAY_ADDRESS)")
    _add_quiet(p)


QUIET_HELP = "print only the final result and errors (no progress while it runs)"


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _output(args) -> dict:
    """What a command that runs trials prints while it runs: its messages (log) and progress, or, with --quiet,
    neither (errors still go to stderr)."""
    return {"log": (lambda *a: None) if args.quiet else print, "progress": not args.quiet}


def cmd_run(args) -> int:
    from study.config import load_config

    overrides = _overrides(args)
    cfg = load_config(args.config, overrides, flags={key: FLAGS[key] for key in overrides})
    from study.runner import format_table, run_study

    rows = run_study(cfg, **_output(args))
    if args.quiet:
        print(format_table(rows))  # without --quiet the study printed it with its other messages
    return 0


def cmd_resume(args) -> int:
    tracking = _tracking(args)
    from study.runner import format_table, resume_study

    rows = resume_study(args.study, tracking=tracking, path=args.path,
                        trust_remote_code=args.trust_remote_code, **_output(args))
    if args.quiet:
        print(format_table(rows))
    return 0


def _tracking(args) -> str:
    """The tracking URI a read command uses; a local database that does not exist, is empty or cannot be read is
    an error here (MLflow would create or migrate one, or fail deep inside SQLAlchemy)."""
    from study.tracking.store import check_readable_store
    from study.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    check_readable_store(uri)
    return uri


def cmd_front(args) -> int:
    tracking = _tracking(args)
    from study.results.front import format_front, front_csv, front_table, load_study

    record = load_study(tracking, args.study, args.run_id)
    rows = front_table(record)
    if args.format == "json":
        print(json.dumps(rows, indent=1, default=str))
    elif args.format == "csv":
        print(front_csv(rows), end="")
    else:
        from study.results.front import knee_line

        print(f"{record.describe()}: {len(rows)} front members over {', '.join(record.objectives)}")
        print(format_front(rows, record.objectives))
        print(knee_line(record))
    return 0


def cmd_audit(args) -> int:
    from study.results.audit import AUDIT_COLUMNS, audit_finished
    from study.runner import format_table

    rows = audit_finished(_tracking(args), args.study, args.run_id, args.path, args.top, args.attacks,
                          trials=args.trials)
    print(format_table([{c: r.get(c) for c in AUDIT_COLUMNS} for r in rows]))
    return 0


def cmd_export(args) -> int:
    tracking = _tracking(args)
    from study.results.export import describe_pick, export_config, pick
    from study.results.front import load_study

    record = load_study(tracking, args.study, args.run_id)
    print(record.describe())
    trial = pick(record, args.pick, args.min_utility, args.variant, include_diverged=args.include_diverged)
    picked_by = describe_pick(args.pick, args.min_utility, args.variant)
    config = export_config(record, trial, args.out, force=args.force, picked_by=picked_by)
    print(f"exported trial {trial.trial_id} ({trial.variant}), {picked_by}, to {args.out}/config.json "
          "(the lines it trained on under data/)")
    print(config["mmie_command"])
    return 0


def cmd_ladder(args) -> int:
    from study.config import load_config

    cfg = load_config(args.config, {"tracking_uri": args.tracking_uri} if args.tracking_uri else None)
    from study.runner import run_ladder

    path = run_ladder(cfg, quick=args.quick, out_dir=args.out, **_output(args))
    print(path.read_text())
    print(f"report: {path}")
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    uri, existed = _tracking(args), Path(args.out).exists()
    from study.results.ladder_report import write_report

    try:
        path = write_report(uri, args.study, args.out)
    except BaseException:
        if not existed and Path(args.out).is_dir() and not any(Path(args.out).iterdir()):
            Path(args.out).rmdir()  # no empty folder left behind by a study that is not there
        raise
    print(path.read_text())
    print(f"report: {path}")
    return 0


def cmd_variants(args) -> int:
    import trainables.methods.variants  # noqa: F401
    from trainables.methods.registry import (
        ADAPTERS,
        GATE_SEPARATOR,
        GATES,
        OBJECTIVES,
        OPTIMIZERS,
        RETAIN_OBJECTIVES,
        VARIANTS,
        WEIGHTINGS,
    )

    for name in sorted(VARIANTS):
        v = VARIANTS[name]
        print(f"{name}: {v.help}")
        if v.trains:
            pieces = f"objective={v.objective} weighting={'+'.join(v.weightings)} optimizer={v.optimizer}"
        else:
            pieces = "no training"
        pieces += (f" adapter={v.adapter}" if v.adapter else "") + (f" gate={v.gate}" if v.gate else "")
        print(f"    pieces: {pieces}")
        for knob in v.knobs():
            print(f"    {knob.describe()}  {knob.help}")
    # Every registry's pieces, and where a study chooses them.
    for registry, chosen in ((OBJECTIVES, "by the variant"), (WEIGHTINGS, "by the variant"),
                             (OPTIMIZERS, "by the variant"),
                             (RETAIN_OBJECTIVES, ("by the config's retain_objectives: (default kl), unless the "
                                                  "variant names one")),
                             (ADAPTERS, "by the config's adapters: (default lora), unless the variant is one"),
                             (GATES, (f"as <training variant>{GATE_SEPARATOR}<gate>, e.g. adaptive{GATE_SEPARATOR}dsg,"
                                      " or by a gate-only variant"))):
        print(f"{registry.kind}s (chosen {chosen}):")
        for entry in registry:
            print(f"  {entry.name}: {entry.help}")
            for knob in entry.knobs:
                print(f"    {knob.describe()}  {knob.help}")
    return 0


def cmd_build_default(args) -> int:
    from study.config import load_config

    cfg = load_config(args.config)
    from study.prepare import embedded_spec
    from trainables.embedded import ensure_embedded

    em = ensure_embedded(embedded_spec(cfg))
    print(json.dumps({"path": str(em.root), **em.report}, indent=2, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn-study", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a study (default: the embedded default study)")
    _add_run_args(run)
    run.set_defaults(fn=cmd_run)
    resume = sub.add_parser("resume", help="continue a study whose driver died (run from the same directory)")
    resume.add_argument("--study", required=True, help=STUDY_HELP)
    resume.add_argument("--tracking-uri", dest="tracking_uri", help=TRACKING_HELP)
    resume.add_argument("--path", help="the study's Ray folder (printed by run; default: the one under "
                                       "./ray_results). Its saved state is pickled: resume only from folders you trust")
    resume.add_argument("--trust-remote-code", action="store_true", dest="trust_remote_code",
                        help="run the model's own code (off unless given, whatever the study ran with)")
    _add_quiet(resume)
    resume.set_defaults(fn=cmd_resume)
    front = sub.add_parser("front", help="print a study's Pareto front from MLflow")
    front.add_argument("--study", required=True, help=STUDY_HELP)
    front.add_argument("--run-id", dest="run_id", help=RUN_ID_HELP)
    front.add_argument("--tracking-uri", dest="tracking_uri", help=TRACKING_HELP)
    front.add_argument("--format", choices=["table", "csv", "json"], default="table",
                       help="table: compact, 100 columns, the knee starred and why; csv/json: every column")
    front.set_defaults(fn=cmd_front)
    audit = sub.add_parser("audit", help="attack a finished study's front with a grid of attackers, against the "
                                         "oracle (the worst case on each trial's run; see docs/robustness.md)")
    audit.add_argument("--study", required=True, help=STUDY_HELP)
    audit.add_argument("--top", type=int, help="audit at most this many front members, the knee first")
    audit.add_argument("--attacks", nargs="+", help="the grid, e.g. relearn:lr=1e-4,params=all steer "
                                                    "(default: the study config's robustness.attacks)")
    audit.add_argument("--trials", nargs="+", help="audit these trials (ids as `front` prints them) instead of the "
                       "front, e.g. each variant's best (bench/robustness_table.py --audit)")
    audit.add_argument("--path", help="the study's Ray folder, where its checkpoints are (default: under ./ray_results)")
    audit.add_argument("--run-id", dest="run_id", help=RUN_ID_HELP)
    audit.add_argument("--tracking-uri", dest="tracking_uri", help=TRACKING_HELP)
    audit.set_defaults(fn=cmd_audit)
    export = sub.add_parser("export", help="write a front member's config as JSON and an mmie.py command line")
    export.add_argument("--study", required=True, help=STUDY_HELP)
    export.add_argument("--pick", choices=["knee", "max-forget", "mmie-gates"], default="knee",
                        help="mmie-gates: the most forgetting trial that passes mmie.py's acceptance gates")
    export.add_argument("--min-utility", type=float, dest="min_utility",
                        help="with max-forget: the best forget efficacy among trials with at least this utility")
    export.add_argument("--variant", help="pick among this variant's trials only")
    export.add_argument("--include-diverged", action="store_true", dest="include_diverged",
                        help="also pick among diverged trials (exported to stop at the step they diverged at)")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--force", action="store_true", help="replace config.json and mmie_command.sh in --out")
    export.add_argument("--run-id", dest="run_id", help=RUN_ID_HELP)
    export.add_argument("--tracking-uri", dest="tracking_uri", help=TRACKING_HELP)
    export.set_defaults(fn=cmd_export)
    ladder = sub.add_parser("ladder", help="run a ladder study (one study per rung and seed) and its report")
    ladder.add_argument("--config", required=True, help="a study YAML with a `ladder:` section (studies/ladder.yaml)")
    ladder.add_argument("--quick", action="store_true", help="fewer trials and steps, for a first look")
    ladder.add_argument("--out", default="ladder_report")
    ladder.add_argument("--tracking-uri", dest="tracking_uri", help=TRACKING_HELP)
    _add_quiet(ladder)
    ladder.set_defaults(fn=cmd_ladder)
    report = sub.add_parser("report", help="write a ladder's report from MLflow alone (no training)")
    report.add_argument("--study", required=True, help="the ladder's name (its studies are <name>-<rung>-s<seed>)")
    report.add_argument("--out", default="ladder_report")
    report.add_argument("--tracking-uri", dest="tracking_uri", help=TRACKING_HELP)
    report.set_defaults(fn=cmd_report)
    sub.add_parser("variants", help="list every registered variant with its knobs").set_defaults(fn=cmd_variants)
    build = sub.add_parser("build-default", help="build (or show) the embedded default model and its report")
    build.add_argument("--config")
    build.set_defaults(fn=cmd_build_default)
    return parser


# The errors that mean bad input or a service that does not answer (exit 2), by the module that defines each.
INPUT_ERRORS = {"study.config": ("ConfigError",), "trainables.data": ("DataError",),
                "study.tracking.uri": ("TrackingUnreachable",), "study.runner": ("RayStateUnreadable",),
                "study.prepare": ("RayUnreachable", "FolderNotWritable"), "study.tracking.store": ("StoreUnreadable",)}


def _input_errors() -> tuple[type[BaseException], ...]:
    """INPUT_ERRORS, from the modules already imported: an error whose module was never imported was not raised,
    and importing it here would cost the seconds its imports take (study.prepare imports torch)."""
    loaded = (getattr(sys.modules[module], name) for module, names in INPUT_ERRORS.items() if module in sys.modules
              for name in names)
    return (ValueError, FileNotFoundError, *loaded)


def main(argv=None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # MLflow's bar for each artifact it downloads (a study's study.yaml) would stand on stderr above an error line.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.fn(args)
    except Exception as e:
        if not isinstance(e, _input_errors()):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
