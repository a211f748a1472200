"""Everything checked and resolved before Ray starts: the model, the data, the languages, the tokenizer.

A study that would fail in its trials (a bad data line, a forget language the tokenizer cannot represent, a
language that cannot be identified) fails here instead, with the file and line named.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from trainables.data import DataError, DataPaths, load_study_data
from trainables.decoder_layers import ModelShape
from trainables.embedded import EmbeddedSpec, ensure_embedded
from trainables.language_id import detect_language
from trainables.modeling import load_tokenizer
from trainables.sae import SAEConfig
from trainables.setup import TrialSetup
from trainables.shapes import ensure_shape, is_shape, shape_named
from trainables.unicode_scripts import dominant_script
from trainables.vocabulary import check_forget_language_in_vocabulary

from .config import ConfigError, StudyConfig


def tracking_uri(cfg: StudyConfig) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else mlflow.db in the working directory (made absolute:
    trials run in their own working directories and would each get their own database)."""
    uri = cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def storage_path(cfg: StudyConfig) -> str:
    return cfg.storage_path or str(Path.cwd() / "ray_results")


def embedded_spec(cfg: StudyConfig) -> EmbeddedSpec:
    e = cfg.embedded
    files: tuple[str, ...] = ()
    if e.train_on_data and cfg.data is not None:
        d = cfg.data
        files = tuple(str(Path(p).resolve()) for p in (d.forget, d.retain, d.mixed, *d.xlang) if p)
    return EmbeddedSpec(
        seed=e.seed,
        lines_per_language=e.lines_per_language,
        pretrain_steps=e.pretrain_steps,
        hidden_size=e.hidden_size,
        num_layers=e.num_layers,
        data_files=files,
    )


def model_shape(cfg: StudyConfig) -> ModelShape:
    """The study model's depth and width, from its config alone (no weights are loaded or built)."""
    if cfg.model == "embedded":
        return ModelShape(num_layers=cfg.embedded.num_layers, hidden_size=cfg.embedded.hidden_size)
    if is_shape(cfg.model):
        s = shape_named(cfg.model)
        return ModelShape(num_layers=s.num_layers, hidden_size=s.hidden_size)
    config_file = Path(cfg.model) / "config.json"
    try:
        if config_file.is_file():
            return ModelShape.of_config(json.loads(config_file.read_text()))
        from transformers import AutoConfig

        return ModelShape.of_config(AutoConfig.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"model {cfg.model}: cannot read its config (num_hidden_layers, hidden_size): {e}") from None


def prepare_study(cfg: StudyConfig, log=print) -> TrialSetup:
    from .space import check_model_knobs

    shape = model_shape(cfg)
    check_model_knobs(cfg, shape, cfg.model)  # a layer the model does not have fails before anything is built
    spec = embedded_spec(cfg)
    if cfg.data is not None:
        d = cfg.data
        paths = DataPaths(
            forget=str(Path(d.forget).resolve()),
            retain=str(Path(d.retain).resolve()),
            mixed=str(Path(d.mixed).resolve()) if d.mixed else None,
            xlang=tuple(str(Path(p).resolve()) for p in d.xlang),
        )
        data = load_study_data(paths, seed=cfg.train.seed)  # validates every line before anything is built
    setup = TrialSetup(
        model=cfg.model,
        embedded=spec,
        shape_tokenizer=str(Path(cfg.shape.tokenizer).resolve()) if cfg.shape.tokenizer else "",
        shape_seed=cfg.shape.seed,
        model_shape=shape,
        trust_remote_code=cfg.trust_remote_code,
        dtype=cfg.dtype,
        device="cuda" if cfg.resources.gpus_per_trial > 0 else "cpu",
        data=paths if cfg.data is not None else None,
        embedded_forget=cfg.embedded.forget,
        embedded_retain=cfg.embedded.retain,
        steps=cfg.train.steps,
        batch_size=cfg.train.batch_size,
        max_len=cfg.train.max_len,
        lr_schedule=cfg.train.lr_schedule,
        warmup_ratio=cfg.train.warmup_ratio,
        eval_every=cfg.train.eval_every,
        checkpoint_every=cfg.train.checkpoint_every,
        es_prompts=cfg.train.es_prompts,
        final_es_prompts=cfg.train.final_es_prompts,
        sae=SAEConfig(**cfg.sae.model_dump(exclude={"pretrained"})),
        sae_pretrained=str(Path(cfg.sae.pretrained).resolve()) if cfg.sae.pretrained else "",
        max_grad_norm=cfg.train.max_grad_norm,
        max_adapter_norm=cfg.train.max_adapter_norm,
        seed=cfg.train.seed,
        cpus_per_trial=cfg.resources.cpus_per_trial,
    )
    if cfg.model == "embedded" or (is_shape(cfg.model) and not (cfg.shape.tokenizer and cfg.data)):
        ensure_embedded(spec, log=log)  # a shape model takes its tokenizer (and data) from it unless given
    if is_shape(cfg.model):
        ensure_shape(cfg.model, setup.shape_tokenizer or str(ensure_embedded(spec).model_dir), setup.shape_seed,
                     log=log)
    paths = setup.data_paths()
    data = load_study_data(paths, seed=setup.seed, heldout=setup.heldout)

    languages = {}
    for name, s in data.sets.items():
        code = cfg.languages.get(name) or detect_language(s.train)
        if code is None:
            raise DataError(f"{name} file {s.path}: no language could be identified in it")
        languages[name] = code
    if languages["forget"] == languages["retain"]:
        raise DataError(
            f"forget file {paths.forget} and retain file {paths.retain} are both in language "
            f"{languages['forget']!r}: nothing would tell forgetting from damage"
        )
    script, share = dominant_script(data.forget.train)
    if script is None:
        raise DataError(f"forget file {paths.forget}: has no letters of any script")
    retain_script, _ = dominant_script(data.retain.train)
    if retain_script == script:
        raise DataError(
            f"forget file {paths.forget}: its script {script} is also the retain set's script; the forget-language "
            "token mass cannot separate them (forget and retain must be written in different scripts)"
        )
    tok = load_tokenizer(setup.model_path(), cfg.trust_remote_code)
    coverage = check_forget_language_in_vocabulary(tok, data.forget.train[:2000], script, paths.forget)
    log(f"forget language {languages['forget']} (script {script}, {share:.0%} of letters; "
        f"{coverage:.0%} of its tokens are whole {script} tokens); retain {languages['retain']}")
    return replace(setup, languages=tuple(sorted(languages.items())), forget_script=script)
