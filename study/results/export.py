"""Pick one trial of a finished study and export it as something to run outside the study.

A study ends with a Pareto front, not a winner: `pick` chooses one trial by a stated rule (the front's knee, or the
most forgetting above a utility floor), and `export_config` writes what reproduces it: `config.json`, whose
`kwargs` go unchanged to the mmie.py entry point it names (trainables.adaptive_unlearning), and `mmie_command.sh`,
the nearest mmie.py command line. JSON only: people and other tools read the file, and loading it runs no code.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from study.eligibility import FrontRule
from study.pareto import apply_floor, build_front
from study.results import mmie_command as mmie
from study.results.front import StudyRecord, TrialRecord, metric_points, ranked_trials
from study.tracking.parent_run import redact_uri
from trainables.data import DataPaths
from trainables.embedded import EmbeddedModel
from trainables.methods.registry import get_variant
from trainables.metrics.mmie import gates_verdict
from trainables.trial.status import TrialStatus

PICKS = ("knee", "max-forget", "mmie-gates")
# The adapters mmie.py has an entry point for; a trial on any other adapter (sine_lora) runs through run_config.
ENTRY_POINTS = {"lora": "train_lora_adaptive", "loreft": "train_reft_adaptive"}
# Stands for the embedded default's cache folder, which depends on the machine (and the study's `embedded:`).
EMBEDDED_DIR = "EMBEDDED_DIR"
# mmie.py's --lora_steps/--reft_steps count both updates of a step (a forget update, then a retain update).
MMIE_UPDATES_PER_STEP = 2
MIXED_PLACEHOLDER = "MIXED_FILE"
REPORTED_METRICS = ("es_forget", "xlang_utility", "mixed_utility")


# ---- choosing a trial ------------------------------------------------------------------------------------------


def pick(record: StudyRecord, how: str = "knee", min_utility: float | None = None,
         variant: str | None = None, include_diverged: bool = False) -> TrialRecord:
    """One trial of the front's candidates (completed, finite objectives, not degenerate), optionally only of
    `variant`; diverged trials only when asked for (`include_diverged`); degenerate ones never.

    "knee": the knee of their front (`study.pareto.knee`: never a trial that did not unlearn). "max-forget": the highest forget_efficacy among
    those with utility >= `min_utility` (required). "mmie-gates": the highest forget_efficacy among those that pass
    mmie.py's acceptance gates (`mmie/gates_feasible`). With "knee" and "mmie-gates", `min_utility` drops trials
    below it first.
    """
    _check_pick(how, min_utility)
    trials = ranked_trials(record, rule=_export_rule(record, include_diverged))
    if variant is not None:
        trials = [t for t in trials if t.variant == variant]
    if not trials:
        raise ValueError(_nothing_ranked(record, variant))
    if min_utility is not None:
        utility = metric_points(trials, ["utility"])
        keep = apply_floor(utility, 0, min_utility)
        if not keep.any():
            raise ValueError(f"no finished trial of study {record.study!r}{_of(variant)} has utility >= "
                             f"{min_utility} (--min-utility); the best has {np.nanmax(utility):.4g}")
        trials = [t for t, ok in zip(trials, keep) if ok]
    if how == "knee":
        front = build_front(trials, record.objectives, value=lambda t, name: t.metrics[name])
        if front.knee_item is None:
            raise ValueError(f"study {record.study!r}{_of(variant)}: {front.knee.why([t.trial_id for t in trials])}; "
                             "--pick max-forget --min-utility U picks by forgetting alone")
        return front.knee_item
    if how == "mmie-gates":
        trials = [t for t in trials if gates_verdict(t.metrics) == "feasible"]
        if not trials:
            raise ValueError(f"no finished trial of study {record.study!r}{_of(variant)} passes mmie.py's acceptance "
                             "gates (tag mmie_gates); `unlearn-study front` shows each front member's")
    return max(trials, key=lambda t: (t.metrics.get("forget_efficacy", float("-inf")), t.metrics["utility"]))


def _export_rule(record: StudyRecord, include_diverged: bool) -> FrontRule:
    return FrontRule(tuple(record.objectives), record.utility_floor, include_diverged, include_degenerate=False)


def _check_pick(how: str, min_utility: float | None) -> None:
    if how not in PICKS:
        raise ValueError(f"unknown pick {how!r}; choose one of: {', '.join(PICKS)}")
    if how == "max-forget" and min_utility is None:
        raise ValueError("--min-utility is required with max-forget (the utility floor, in (0, 1])")
    if min_utility is not None and not 0 < min_utility <= 1:  # also rejects NaN
        raise ValueError(f"--min-utility must be in (0, 1] (utility is ppl_0/ppl_t), got {min_utility}")


def _of(variant: str | None) -> str:
    return f" of variant {variant!r}" if variant else ""


def _nothing_ranked(record: StudyRecord, variant: str | None) -> str:
    message = (f"study {record.study!r} (parent run {record.parent_run_id}) has no completed, non-degenerate trial"
               f"{_of(variant)} with final {', '.join(record.objectives)}")
    if variant:
        found = sorted({t.variant for t in ranked_trials(record, rule=_export_rule(record, False))})
        message += f"; variants with such trials: {', '.join(found) or 'none'}"
    return message


# ---- exporting it ----------------------------------------------------------------------------------------------


def export_config(record: StudyRecord, trial: TrialRecord, out_dir: str | Path, force: bool = False) -> dict:
    """Write `out_dir/config.json` and `out_dir/mmie_command.sh` for this trial; return the JSON's dict.

    An existing file is replaced only with `force`, and then as a new file: a link in `out_dir` is replaced, never
    followed to overwrite what it points at."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    existing = [name for name in ("config.json", "mmie_command.sh") if (out / name).is_symlink() or (out / name).exists()]
    if existing and not force:
        raise ValueError(f"--out {out}: {', '.join(existing)} already there; give --force to replace")
    args, kwargs = entry_arguments(record, trial)
    config: dict[str, Any] = {
        "entry_point": _entry(trial),
        "args": args,
        "kwargs": kwargs,
        "adapter": trial.adapter,
        "metrics": {m: trial.metrics[m] for m in (*record.objectives, *REPORTED_METRICS) if m in trial.metrics},
        "provenance": _provenance(record, trial),
        "mmie_command": mmie_command(record, trial),
        "mmie_exact": not mmie_problems(record, trial),
    }
    notes = _notes(record, trial)
    if notes:
        config["note"] = " ".join(notes)
    out.mkdir(parents=True, exist_ok=True)
    _write_new(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n", 0o644)
    _write_new(out / "mmie_command.sh", _script(config), 0o755)
    return config


def _write_new(path: Path, text: str, mode: int) -> None:
    """Write a fresh file and move it onto `path`: a link there is replaced, its target left alone."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def entry_arguments(record: StudyRecord, trial: TrialRecord) -> tuple[dict, dict]:
    """(args, kwargs) for the entry point: kwargs are named parameters of run_config or knobs of the trial's
    variant and adapter, so none is swallowed unused by **knobs; only LoReFT's `layers` is positional."""
    variant = get_variant(trial.variant)
    kwargs = {
        "variant": variant.name,
        "steps": record.steps,
        "bs": int(_param(record, "train.batch_size")),
        "max_len": int(_param(record, "train.max_len")),
        "seed": record.seed,
        # train_*_adaptive default to use_curriculum=True, which would add the curriculum to every variant.
        "use_curriculum": "curriculum" in variant.weightings,
        "max_grad_norm": float(_param(record, "train.max_grad_norm")),
        # A study from before the schedule existed trained at a constant learning rate.
        "lr_schedule": record.config.get("train.lr_schedule", "constant"),
        "warmup_ratio": float(record.config.get("train.warmup_ratio", 0.0)),
        **({"retain_objective": variant.retain_objective_of(trial.params)} if variant.trains else {}),
        **trial.knobs(),
    }
    if trial.status == TrialStatus.DIVERGED:  # measured after the step it diverged at: the run stops there, on the same schedule
        kwargs["stop_at_step"] = reached_step(trial)
    if trial.adapter != "loreft":
        return {}, kwargs
    return {"layers": _layers(kwargs.pop("layers"))}, kwargs


def reached_step(trial: TrialRecord) -> int:
    """The step a trial's final metrics were measured at (for a diverged trial, the step it diverged at)."""
    if "step" not in trial.metrics:
        raise ValueError(f"trial {trial.trial_id} logged no step: its run cannot be reproduced")
    return int(trial.metrics["step"])


def _layers(value) -> list[int] | str:
    # The knob's choices are strings ("all", "0", "0,1"; "0" came back from MLflow as 0); train_reft_adaptive
    # takes "all" or a list of layer indices.
    return value if value == "all" else [int(i) for i in str(value).split(",")]


def _param(record: StudyRecord, key: str) -> str:
    try:
        return record.config[key]
    except KeyError:
        raise ValueError(f"parent run {record.parent_run_id} of study {record.study!r} lacks param {key!r}") from None


def mmie_command(record: StudyRecord, trial: TrialRecord) -> str:
    """The trial as an mmie.py command line (quoted for a POSIX shell): only flags mmie.py's parser has, spelled in
    full, each piece's as the registry declares it (`study.results.mmie_command`); `mmie_problems` says where it is not exact."""
    variant = get_variant(trial.variant)
    model, data = _mmie_inputs(record)
    flags = ["--model", model, "--forget", data.forget, "--retain", data.retain,
             "--mixed", data.mixed or MIXED_PLACEHOLDER]
    if data.xlang:
        flags += ["--xlang", *data.xlang]
    adversarial = _adversarial(record, data)
    if adversarial:
        flags += ["--adversarial", adversarial]
    flags += ["--seeds", str(record.seed)]
    steps = mmie.steps_flag(variant, trial.params) if variant.trains else None
    if steps:
        # mmie.py's step counter counts forget and retain updates alike (even: forget, odd: retain).
        flags += [steps, str(MMIE_UPDATES_PER_STEP * record.steps)]
    flags += mmie.piece_flags(variant, trial.params)
    return shlex.join(["python", "mmie.py", *flags])


def mmie_problems(record: StudyRecord, trial: TrialRecord) -> list[str]:
    """Everything in which mmie_command's run differs from the trial (empty: it runs exactly the trial)."""
    variant = get_variant(trial.variant)
    out = mmie.problems(variant, trial.params)
    if variant.trains:
        settings = {k.removeprefix("train."): v for k, v in record.config.items() if k.startswith("train.")}
        out += mmie.training_differences(settings)
        if mmie.steps_flag(variant, trial.params) is None:
            out.append(f"mmie.py has no {trial.adapter} adapter: the command has no step count for it")
    else:
        out.append("mmie.py has no gate-only arm: its lora and reft arms train (--lora_steps/--reft_steps, default "
                   "500) and are evaluated through the gate")
    _, data = _mmie_inputs(record)
    if not data.mixed:
        out.append(f"mmie.py requires --mixed and the study had no mixed set: replace {MIXED_PLACEHOLDER}")
    if not _adversarial(record, data):
        out.append("mmie.py requires an adversarial file (--adversarial, default adversarial.jsonl) and the study "
                   "had none: give one")
    return out


def _adversarial(record: StudyRecord, data: DataPaths) -> str | None:
    value = record.config.get("data.adversarial", "None")
    return getattr(data, "adversarial", None) if value == "None" else value


def _uses_embedded(record: StudyRecord) -> bool:
    return _param(record, "model") == "embedded" or "data.forget" not in record.config


def _mmie_inputs(record: StudyRecord) -> tuple[str, DataPaths]:
    """The model and data paths the study ran on; the embedded default's as paths under EMBEDDED_DIR."""
    embedded = EmbeddedModel(root=Path(EMBEDDED_DIR))
    model = _param(record, "model")
    model = str(embedded.model_dir) if model == "embedded" else model
    if "data.forget" not in record.config:  # data: None, the embedded default's generated corpus
        return model, embedded.data_paths(_param(record, "embedded.forget"), _param(record, "embedded.retain"))
    mixed = record.config.get("data.mixed", "None")
    adversarial = record.config.get("data.adversarial", "None")
    return model, DataPaths(
        forget=record.config["data.forget"],
        retain=_param(record, "data.retain"),
        mixed=None if mixed == "None" else mixed,
        adversarial=None if adversarial == "None" else adversarial,
        xlang=tuple(ast.literal_eval(record.config.get("data.xlang", "[]"))),  # logged as a Python list's str()
    )


def _notes(record: StudyRecord, trial: TrialRecord) -> list[str]:
    notes = []
    if trial.status == TrialStatus.DIVERGED:
        notes.append(
            f"This trial diverged at step {reached_step(trial)} of {record.steps}: its metrics were measured there, "
            f"and config.json's kwargs stop the run there (stop_at_step) on the {record.steps}-step schedule. "
            "mmie.py has no such flag: mmie_command would train all the steps, past the divergence, and is not "
            "this trial's run."
        )
    problems = mmie_problems(record, trial)
    if problems:
        notes.append("mmie_command is the nearest mmie.py run, not this trial: " + "; ".join(problems) + ". "
                     f"config.json's kwargs run the trial itself through trainables.adaptive_unlearning.{_entry(trial)}.")
    gate = get_variant(trial.variant).gate
    if gate:
        notes.append(
            f"The {gate} gate acts at evaluation and is not trained: the entry point returns the trained adapter "
            f"without it; trainables.methods.gates.sae_gates.build_gate({gate!r}, kwargs, model, tok, data, model_path) and "
            "attach_gate reproduce it."
        )
    if _uses_embedded(record):
        notes.append(
            f"{EMBEDDED_DIR} stands for the embedded default's cache folder, the path `unlearn-study build-default` "
            "prints (give it the study's config if the study set `embedded:`): its model/ and data/ hold the model "
            "and the data files the study used."
        )
    return notes


def _entry(trial: TrialRecord) -> str:
    return ENTRY_POINTS.get(trial.adapter, "run_config")


def _provenance(record: StudyRecord, trial: TrialRecord) -> dict:
    return {
        "study": record.study,
        "parent_run_id": record.parent_run_id,
        "run_id": trial.run_id,
        "trial_id": trial.trial_id,
        "trial_status": str(trial.status),
        "tracking_uri": redact_uri(record.tracking_uri),
        "package_version": record.config.get("package_version"),
        "code_version": record.config.get("code_version"),
        "seed": record.seed,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _comment(text: str) -> list[str]:
    # textwrap turns every newline into a space, so no logged name can end the comment and inject a command.
    return textwrap.wrap(text, 110, initial_indent="# ", subsequent_indent="# ", break_long_words=False,
                         break_on_hyphens=False)


def _script(config: dict) -> str:
    p = config["provenance"]
    lines = ["#!/usr/bin/env bash"]
    lines += _comment(f"unlearn-study export of study {p['study']!r}, trial {p['trial_id']} ({p['trial_status']}): "
                      f"MLflow run {p['run_id']}, parent run {p['parent_run_id']}, tracking URI {p['tracking_uri']}; "
                      f"code {p['code_version']}, package {p['package_version']}; exported {p['exported_at']}.")
    if "note" in config:
        lines += _comment(config["note"])
    return "\n".join([*lines, config["mmie_command"], ""])
