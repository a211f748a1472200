"""Pick one trial of a finished study and export it as something to run outside the study.

A study ends with a Pareto front, not a winner: `pick` chooses one trial by a stated rule (the front's knee, or the
most forgetting above a utility floor), and `export_config` writes what reproduces it: `config.json`, whose
`kwargs` go unchanged to the mmie.py entry point it names (trainables.adaptive_unlearning); `data/`, the lines the
trial trained on (study.results.trained_lines); and `mmie_command.sh`, the mmie.py command line that trains on them
as the study did, with every difference that remains named and sized (`mmie_differences`). JSON only: people and
other tools read the file, and loading it runs no code.
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
from study.results import trained_lines as lines
from study.results.front import StudyRecord, TrialRecord, metric_points, ranked_trials
from study.tracking.parent_run import redact_uri
from trainables.data import UTILITY_SET, DataPaths
from trainables.embedded import EmbeddedModel, EmbeddedSpec
from trainables.methods.registry import get_variant
from trainables.metrics.mmie import ACCEPTANCE_GATES, gates_verdict
from trainables.model.decoder_layers import ModelSize
from trainables.model.shapes import is_shape, shape_named
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
    _check_variant(record, variant)
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


def _check_variant(record: StudyRecord, variant: str | None) -> None:
    """A variant that no trial of the study ran and that is not registered does not exist (a misspelling): say so,
    rather than that the study has no trial of it."""
    if variant is None or variant in {t.variant for t in record.trials}:
        return
    import trainables.methods.variants  # noqa: F401  (registers every variant)

    try:
        get_variant(variant)
    except KeyError as e:
        ran = ", ".join(sorted({t.variant for t in record.trials})) or "none"
        raise ValueError(f"--variant {variant!r}: no such variant ({e.args[0]}); this study's trials ran: {ran}") \
            from None


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


def describe_pick(how: str, min_utility: float | None = None, variant: str | None = None) -> str:
    """What a pick rule chose, in words (written into the export): for mmie-gates, exactly which of mmie.py's
    gates the study checked and which it did not."""
    floor = f", utility >= {min_utility:g}" if min_utility is not None else ""
    among = f" among {variant} trials" if variant else ""
    if how == "knee":
        return f"the knee of the front{among}{floor}"
    if how == "max-forget":
        return f"the highest forget_efficacy{among}{floor}"
    checked, unchecked = mmie.gates_checked(ACCEPTANCE_GATES)
    return (f"the highest forget_efficacy{among}{floor} among trials passing mmie.py's gates {', '.join(checked)} "
            f"as the study measured them (mmie/gates_feasible: mmie.py's fallback rule, without statsmodels, at the "
            f"study's mmie_eval gate ratios); not checked: {', '.join(unchecked)}, which mmie.py's PROCEED also needs")


def export_config(record: StudyRecord, trial: TrialRecord, out_dir: str | Path, force: bool = False,
                  picked_by: str | None = None) -> dict:
    """Write `out_dir/config.json`, `out_dir/mmie_command.sh` and the lines the trial trained on
    (`out_dir/data/`, study.results.trained_lines) for this trial; return the JSON's dict.

    An existing file is replaced only with `force`, and then as a new file: a link in `out_dir` is replaced, never
    followed to overwrite what it points at."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    inputs = lines.study_inputs(record)
    data = lines.study_data(record, inputs)
    def there(names):
        return [name for name in names if (out / name).is_symlink() or (out / name).exists()]

    existing = there(["config.json", "mmie_command.sh"])
    written = there(f"{lines.FOLDER}/{f}" for f in lines.written_files(data))
    if (existing or written) and not force:
        also = f" (and {len(written)} files under {lines.FOLDER}/)" if existing and written else ""
        raise ValueError(f"--out {out}: {', '.join(existing or written)} already there; give --force to replace"
                         + also)
    args, kwargs = entry_arguments(record, trial)
    out.mkdir(parents=True, exist_ok=True)
    written_paths = lines.write_trained_lines(data, out / lines.FOLDER)
    differences = mmie_problems(record, trial) + tokenization_differences(record, inputs, data)
    config: dict[str, Any] = {
        "entry_point": _entry(trial),
        "args": args,
        "kwargs": kwargs,
        "adapter": trial.adapter,
        "metrics": {m: trial.metrics[m] for m in (*record.objectives, *REPORTED_METRICS) if m in trial.metrics},
        "provenance": _provenance(record, trial),
        "mmie_command": mmie_command(record, trial, written_paths, inputs.model),
        "mmie_exact": not differences,
        "mmie_differences": differences,
        # What mmie.py reads (the training lines, line i = the study's data.<set>.train[i]) and what the study read
        # (config.json's kwargs take these files' lines: the entry points split them as the study did; `utility`,
        # when the study had one, is what run_config's utility_eval takes to measure utility as the study did).
        "data": {name: str(Path(path).relative_to(out.resolve())) for name, path in _roles(written_paths).items()},
        "study_data": inputs.data.roles(),
    }
    if picked_by:
        config["picked_by"] = picked_by
    config["note"] = " ".join(_notes(record, trial, differences, picked_by))
    _write_new(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n", 0o644)
    _write_new(out / "mmie_command.sh", _script(config), 0o755)
    return config


def _roles(paths: DataPaths) -> dict[str, str]:
    return {name: path for name, path in paths.roles().items() if name != UTILITY_SET}


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


def mmie_command(record: StudyRecord, trial: TrialRecord, data: DataPaths | None = None,
                 model: str | None = None) -> str:
    """The trial as an mmie.py command line (quoted for a POSIX shell): only flags mmie.py's parser has, spelled in
    full, each piece's as the registry declares it (`study.results.mmie_command`); `mmie_problems` says where it is
    not exact. `data` and `model`: the files to point at (an export's written training lines); the study's own
    paths when not given."""
    variant = get_variant(trial.variant)
    study_model, study_paths = _mmie_inputs(record)
    model, data = model or study_model, data or study_paths
    flags = ["--model", model, "--forget", data.forget, "--retain", data.retain,
             "--mixed", data.mixed or MIXED_PLACEHOLDER]
    if data.xlang:
        flags += ["--xlang", *data.xlang]
    adversarial = data.adversarial if data is not study_paths else _adversarial(record, data)
    if adversarial:
        flags += ["--adversarial", adversarial]
    flags += ["--seeds", str(record.seed)]
    steps = mmie.steps_flag(variant, trial.params) if variant.trains else None
    if steps:
        # mmie.py's step counter counts forget and retain updates alike (even: forget, odd: retain).
        flags += [steps, str(MMIE_UPDATES_PER_STEP * record.steps)]
    layers = num_layers(record)
    pieces = mmie.piece_flags(variant, trial.params, layers)
    flags += pieces + mmie.layer_flags(layers, pieces)
    flags += _run_flags(record)
    return shlex.join(["python", "mmie.py", *flags])


def _run_flags(record: StudyRecord) -> list[str]:
    """Precision, device, language-ID voters and reports: what the study ran and measured."""
    flags = [] if _quantization(record) == "int8" else ["--no_quantization"]
    if _on_cpu(record):
        flags += ["--device", "cpu"]
    flags += [flag for flag, on in _voter_flags(record).items() if on]
    return flags + ["--report_token_kl"]  # without it mmie.py reports no token KL


def _quantization(record: StudyRecord) -> str:
    return record.config.get("quantization", "none")  # a study from before the setting: not 8-bit


def _on_cpu(record: StudyRecord) -> bool:
    try:
        return float(record.config.get("resources.gpus_per_trial", "0")) == 0
    except ValueError:
        return True


# The study's language-ID settings (trainables.settings.MmieEvalConfig) and the mmie.py flags they stand for.
VOTER_SETTINGS = {"--use_xlmr": "mmie_eval.use_xlmr", "--use_fasttext": "mmie_eval.use_fasttext"}


def _voter_flags(record: StudyRecord) -> dict[str, bool]:
    """mmie.py's optional voters (CLD3 by --use_xlmr, fastText by --use_fasttext) as the study predicted with them;
    a study that logged no such setting voted with all five: both."""
    return {flag: str(record.config.get(key, "True")).lower() == "true" for flag, key in VOTER_SETTINGS.items()}


def num_layers(record: StudyRecord) -> int | None:
    """The study model's decoder layers, from its logged config or the model's config.json (None: not readable
    here, e.g. a hub model outside the local cache)."""
    model = record.config.get("model", "embedded")
    if model == "embedded":
        return int(record.config.get("embedded.num_layers", EmbeddedSpec.num_layers))
    if is_shape(model):
        return shape_named(model).num_layers
    config_file = Path(model) / "config.json"
    if not config_file.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
        except (ValueError, OSError):
            return None
        if not isinstance(cached, str):
            return None
        config_file = Path(cached)
    try:
        return ModelSize.of_config(json.loads(config_file.read_text())).num_layers
    except (OSError, ValueError, KeyError, TypeError):
        return None


def mmie_problems(record: StudyRecord, trial: TrialRecord) -> list[str]:
    """Everything in which mmie_command's run differs from the trial, each with its size where it is known (empty:
    it runs exactly the trial)."""
    variant = get_variant(trial.variant)
    out = mmie.problems(variant, trial.params)
    settings = {k.removeprefix("train."): v for k, v in record.config.items() if k.startswith("train.")}
    if variant.trains:
        out += mmie.training_differences(settings)
        out += mmie.step_differences(settings, record.steps)
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
    if num_layers(record) is None:
        out.append("the model's depth could not be read here: the command keeps mmie.py's layer defaults "
                   f"(--min_layer {mmie.MMIE_MIN_LAYER}, --select_top_k {mmie.MMIE_TOP_K}, --probe_layers "
                   f"{' '.join(map(str, mmie.MMIE_PROBE_LAYERS))}); check they fit the model")
    return out


def tokenization_differences(record: StudyRecord, inputs, data) -> list[str]:
    """How the study's training rows differ from mmie.py's for these lines, measured with the model's tokenizer:
    a BOS token the study puts before every line that mmie.py's tokenizer call does not, and lines longer than
    max_len, whose beginning the study keeps and whose end mmie.py keeps (left truncation)."""
    from trainables.model.batching import pad_rows
    from trainables.model.loading import load_tokenizer

    from study.prepare import check_model

    try:
        # A hub name neither cached nor reachable fails here in seconds; transformers would retry for about a minute.
        check_model(inputs.model)
        tok = load_tokenizer(inputs.model, record.config.get("trust_remote_code", "False") == "True")
    except (OSError, ValueError) as e:  # ConfigError is a ValueError
        reason = str(e).split(";")[0].splitlines()[0][:200] if str(e) else type(e).__name__
        return [f"tokenization (BOS, truncation) not measured: the tokenizer does not load here ({reason})"]
    max_len = int(record.config.get("train.max_len", mmie.MMIE_TRAINING["max_len"]))
    texts = data.forget.train + data.retain.train
    prefix = len(pad_rows(tok, [[]], max_len)["input_ids"][0])  # what the study puts before every line
    ours = [prefix + len(tok.encode(t, add_special_tokens=False)) for t in texts]
    theirs = [len(row) for row in tok(texts)["input_ids"]]  # mmie.py's call: the tokenizer's own special tokens
    out = []
    extra = sum(ours) - sum(theirs)
    if extra:
        out.append(f"special tokens: the study's training rows hold {extra / len(texts):+.3g} token(s) per line "
                   f"against mmie.py's tokenizer call ({prefix} BOS token(s) before every line here)")
    long = sum(max(a, b) > max_len for a, b in zip(ours, theirs))
    if long:
        out.append(f"truncation: {long} of {len(texts)} forget and retain training lines are longer than {max_len} "
                   "tokens; the study keeps their beginning, mmie.py (left truncation) their end")
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


def _notes(record: StudyRecord, trial: TrialRecord, differences: list[str], picked_by: str | None) -> list[str]:
    variant = get_variant(trial.variant)
    notes = []
    if picked_by:
        notes.append(f"Picked: {picked_by}.")
    if trial.status == TrialStatus.DIVERGED:
        notes.append(
            f"This trial diverged at step {reached_step(trial)} of {record.steps}: its metrics were measured there, "
            f"and config.json's kwargs stop the run there (stop_at_step) on the {record.steps}-step schedule. "
            "mmie.py has no such flag: mmie_command would train all the steps, past the divergence, and is not "
            "this trial's run."
        )
    notes.append(
        f"{lines.FOLDER}/ holds the lines the trial trained on, per set, in the study's order: line i of "
        f"{lines.FOLDER}/forget.jsonl is the study's forget training line i (its seeded split less held-out and "
        "attack lines). mmie.py trains on every line of them and measures on their heads (forget[:200], "
        "retain[:200], mixed[:150], cross-lingual [:120], adversarial[:150]), the lines the study's mmie/ figures "
        "are measured on. config.json's kwargs take the study's own files (study_data), which the entry points "
        "split as the study did."
    )
    if differences:
        notes.append("mmie_command is the nearest mmie.py run, not this trial; what differs: " + "; ".join(differences)
                     + f". config.json's kwargs run the trial itself through "
                     f"trainables.adaptive_unlearning.{_entry(trial)}.")
    runs_as = _runs_as(record, trial)
    if runs_as:
        notes.append("What the command really runs: " + "; ".join(runs_as) + ".")
    notes.append(_voters_note(record))
    notes.append(
        "mmie.py's verdict: with statsmodels installed (it is in mmie.py's requirements) its gates take the FDR path, "
        "under which G2 never passes and every arm's decision is STOP whatever it measures; without statsmodels it "
        "applies its fallback ratios, which the study's mmie/ gates follow."
    )
    if _on_cpu(record):
        notes.append(_cpu_note(trial))
    if variant.gate:
        notes.append(
            f"The {variant.gate} gate acts at evaluation and is not trained: the entry point returns the trained "
            f"adapter without it; trainables.methods.gates.sae_gates.build_gate({variant.gate!r}, kwargs, model, "
            "tok, data, model_path) and attach_gate reproduce it. sae_layer has no mmie.py flag: mmie.py hooks its "
            "gate on every layer its selection chooses (--force_layers L --select_top_k 1 puts it on layer L)."
        )
    if not variant.trains:
        notes.append("A gate-only trial trains nothing: run the command with --lora_steps 0 --reft_steps 0 and "
                     "--ckpt_dir an empty folder, so both of mmie.py's arms are its base model (through its gate).")
    if _uses_embedded(record):
        notes.append("The model and data paths are this machine's (the embedded default's cache folder, and the "
                     f"lines written under {lines.FOLDER}/): edit them if the export moves.")
    notes.append("The command assumes the one-line fix of mmie.py's training crash (gradient_accumulation_steps, "
                 "docs/mmie.md).")
    return notes


def _runs_as(record: StudyRecord, trial: TrialRecord) -> list[str]:
    """What mmie.py does with the exported flags where they are not the trial's own form."""
    variant = get_variant(trial.variant)
    out = []
    if variant.trains:
        if "lr" in trial.params and (lr := mmie.lr_runs_as(trial.params["lr"])):
            out.append(lr)
        flags = mmie.piece_flags(variant, trial.params)
        if "--forget_obj" not in flags:
            out.append(f"no --forget_obj: mmie.py's {trial.adapter} arm trains its default objective, plain GA "
                       f"(-NLL), not the study's {variant.objective}")
        steps = mmie.steps_flag(variant, trial.params)
        if steps is None:
            out.append(f"mmie.py has no {trial.adapter} arm: both its arms (lora, reft) train at their default 500 "
                       "steps with the exported objective, sampler and optimiser flags")
        else:
            other = "--reft_steps" if steps == "--lora_steps" else "--lora_steps"
            out.append(f"mmie.py also trains its other arm ({other} 500 by default) with the exported objective, "
                       f"sampler, optimiser and rank (its flags are shared); add {other} 0 to keep to the exported "
                       "arm (<= 0 loads that arm's checkpoint from --ckpt_dir instead of training it)")
    return out


def _voters_note(record: StudyRecord) -> str:
    flags = _voter_flags(record)
    logged = any(key in record.config for key in VOTER_SETTINGS.values())
    voters = "script, cue words, langid" + (", CLD3" if flags["--use_xlmr"] else "") + \
             (", fastText" if flags["--use_fasttext"] else "")
    text = (f"Language ID: the study predicted mmie.py's ES with the voters {voters}"
            + ("" if logged else " (its record has no voter setting: it voted with all five, so both --use_xlmr and "
                                 "--use_fasttext are emitted)") + ".")
    if flags["--use_xlmr"]:
        text += " --use_xlmr turns on mmie.py's CLD3 voter (the module pycld3)."
    if flags["--use_fasttext"]:
        text += (" fastText votes only when the environment variable FASTTEXT_LID_PATH names fastText's lid.176.bin "
                 "(export FASTTEXT_LID_PATH=/path/to/lid.176.bin before the command); without it fastText abstains "
                 "and mmie.py votes with one voter fewer than the study.")
    return text


def _cpu_note(trial: TrialRecord) -> str:
    return (
        "A CPU study: the command runs with --device cpu. On CPU mmie.py as published crashes after training, at its "
        "first MIA or token-KL call (_autocast_ctx returns torch.nullcontext(), which torch does not have): apply the "
        "one-line fix contextlib.nullcontext() (docs/mmie.md), or add --no_mia and drop --report_token_kl (then no "
        "MIA and no token KL). Cost on CPU: mmie.py's defaults (--train_sae_steps 5000, the other arm's 500 steps) "
        "run for hours; its LoRA arm's 200 steps took about 7 minutes on 2 cores (issue 22). Keep it to the "
        "exported arm with --reft_steps 0 (a LoRA export) or --lora_steps 0 (a ReFT export)."
    )


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
    out = ["#!/usr/bin/env bash"]
    out += _comment(f"unlearn-study export of study {p['study']!r}, trial {p['trial_id']} ({p['trial_status']}): "
                    f"MLflow run {p['run_id']}, parent run {p['parent_run_id']}, tracking URI {p['tracking_uri']}; "
                    f"code {p['code_version']}, package {p['package_version']}; exported {p['exported_at']}.")
    if "note" in config:
        out += _comment(config["note"])
    if "--use_fasttext" in shlex.split(config["mmie_command"]):
        out += _comment("fastText needs FASTTEXT_LID_PATH naming lid.176.bin: export FASTTEXT_LID_PATH=/path/to/"
                        "lid.176.bin before running this (without it fastText abstains).")
    return "\n".join([*out, config["mmie_command"], ""])
