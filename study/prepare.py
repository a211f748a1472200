"""Everything checked and resolved before Ray starts: the model, the data, the languages, the tokenizer, the
retain-only oracle (trained without the forget language the data are in).

A study that would fail in its trials (a bad data line, a forget language the tokenizer cannot represent, a
language that cannot be identified) fails here instead, with the file and line named.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from study.config import ConfigError, StudyConfig
from study.tracking.store import sqlite_path
from study.tracking.uri import resolve_tracking_uri
from trainables.data import DataError, DataPaths, StudyData, load_study_data
from trainables.language.identification import RomanizedCues, detect_language
from trainables.language.scripts import dominant_script
from trainables.methods.gates.sae_gates import gate_lines
from trainables.methods.registry import get_variant, study_knobs
from trainables.metrics.degenerate import DegenerateRule
from trainables.model.decoder_layers import ModelSize
from trainables.model.shapes import ensure_shape, is_shape, shape_named
from trainables.settings import EmbeddedSpec, MmieEvalConfig, SAEConfig
from trainables.trial.setup import TrainSettings, TrialSetup

# torch and transformers are imported by the checks that need them (building the embedded model, loading the
# tokenizer), after the cheaper ones: a bad data file or config value is reported without loading them.


def tracking_uri(cfg: StudyConfig) -> str:
    return resolve_tracking_uri(cfg.tracking_uri)


def storage_path(cfg: StudyConfig) -> str:
    return cfg.storage_path or str(Path.cwd() / "ray_results")


def experiment_name(cfg: StudyConfig, parent_run_id: str) -> str:
    return f"{cfg.study}-{parent_run_id[:8]}"


def experiment_path(cfg: StudyConfig, parent_run_id: str) -> str:
    """Ray's folder for the study (a local path or a URI such as s3://...): its trials' checkpoints and the state a
    resume starts from."""
    return f"{storage_path(cfg).rstrip('/')}/{experiment_name(cfg, parent_run_id)}"


def embedded_spec(cfg: StudyConfig) -> EmbeddedSpec:
    e = cfg.embedded
    files: tuple[str, ...] = ()
    if e.train_on_data and cfg.data is not None:
        d = cfg.data
        files = tuple(str(Path(p).resolve()) for p in (d.forget, d.retain, d.mixed, *d.xlang) if p)
        # The build names each pretraining set after its file (trainables.embedded.builder._corpus): two files of
        # one name would silently become one set.
        stems: dict[str, str] = {}
        for f in files:
            if Path(f).stem in stems and stems[Path(f).stem] != f:
                raise ConfigError(f"embedded.train_on_data: {stems[Path(f).stem]} and {f} have the same file name; the "
                                 f"embedded build names each pretraining set after its file: rename one")
            stems[Path(f).stem] = f
    return EmbeddedSpec(**e.model_dump(exclude={"train_on_data", "forget", "retain"}), data_files=files)


def resolved_data_paths(cfg: StudyConfig) -> DataPaths | None:
    """The study's data files as absolute paths (trials run in their own working directories), or None for the
    embedded default's generated corpus."""
    if cfg.data is None:
        return None
    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else None

    d = cfg.data
    return DataPaths(forget=absolute(d.forget), retain=absolute(d.retain), mixed=absolute(d.mixed),
                     xlang=tuple(absolute(p) for p in d.xlang), utility_eval=absolute(d.utility_eval),
                     adversarial=absolute(d.adversarial))


def model_shape(cfg: StudyConfig) -> ModelSize:
    """The study model's depth and width, from its config alone (no weights are loaded or built)."""
    if cfg.model == "embedded":
        return ModelSize(num_layers=cfg.embedded.num_layers, hidden_size=cfg.embedded.hidden_size)
    if is_shape(cfg.model):
        s = shape_named(cfg.model)
        return ModelSize(num_layers=s.num_layers, hidden_size=s.hidden_size)
    config_file = Path(cfg.model) / "config.json"
    try:
        if config_file.is_file():
            return ModelSize.of_config(json.loads(config_file.read_text()))
        from transformers import AutoConfig

        return ModelSize.of_config(AutoConfig.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"model {cfg.model}: cannot read its config (num_hidden_layers, hidden_size): {e}") from None


class RayUnreachable(RuntimeError):
    """The Ray cluster at --address / RAY_ADDRESS does not answer; raised before the parent run is created."""


def ray_address(cfg: StudyConfig) -> str | None:
    return cfg.address or os.environ.get("RAY_ADDRESS") or None


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens there: ray.init would retry for minutes, printing only
    its connection lines. `auto` (Ray finds a cluster started on this machine) is left to Ray."""
    if address in (None, "", "auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnreachable(f"Ray address {address!r}: expected host:port (or ray://host:port, or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise RayUnreachable(
            f"Ray cluster at {address} does not answer ({e.strerror or e}) within {timeout:g} s: start it "
            "(`ray up cluster.yaml`, `ray start --head`) or fix --address / RAY_ADDRESS. Nothing was started."
        ) from None


def check_model(model: str, timeout: float = 5.0) -> None:
    """A local model folder must exist; a hub model must be in the local cache or the hub must answer (else
    transformers retries for about a minute and ends in a long traceback)."""
    if model == "embedded" or is_shape(model) or Path(model).expanduser().is_dir():
        return
    if model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model:
        raise ConfigError(f"model {model!r}: no such folder (a local model is a folder with config.json; a hub "
                          "model is named org/name)")
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(f"model {model!r}: not in the local Hugging Face cache, and HF_HUB_OFFLINE is set")
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # the hub is reached through a proxy: no direct connection to try
    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    try:
        socket.create_connection((host, endpoint.port or 443), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"model {model!r}: not in the local Hugging Face cache, and the hub ({host}) does not "
                          f"answer ({e.strerror or e}) within {timeout:g} s; download it where there is a network "
                          "(huggingface-cli download) or give a local folder") from None


def check_resources(cfg: StudyConfig, address: str | None) -> None:
    """A local study asking for GPUs on a machine with none would leave every trial PENDING forever."""
    if cfg.resources.gpus_per_trial > 0 and address is None:
        if not _driver_present() or not _torch_sees_a_gpu():
            raise ConfigError(f"resources.gpus_per_trial: {cfg.resources.gpus_per_trial:g}, but this machine has "
                              "no GPU and no --address was given; set it to 0 or run on a cluster with GPUs")


# Files an NVIDIA (CUDA) or AMD (ROCm, which torch.cuda also drives) GPU driver makes: without any of them torch sees
# no GPU, and the error needs no torch import (about 2.5 s of an error that should print at once).
GPU_DRIVER_FILES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def _driver_present() -> bool:
    return any(os.path.exists(p) for p in GPU_DRIVER_FILES)


def _torch_sees_a_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def check_quantization(cfg: StudyConfig, address: str | None) -> None:
    """An 8-bit study on this machine needs CUDA and bitsandbytes here; on a cluster its workers need them."""
    if cfg.quantization != "int8" or address is not None:
        return
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise ConfigError("quantization: int8 loads the model 8-bit through bitsandbytes, which runs on CUDA only, "
                          "and this machine has no CUDA (and no --address was given); use quantization: none, or "
                          "run on a cluster with GPUs")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("quantization: int8 needs the package bitsandbytes (pip install bitsandbytes)")


class FolderNotWritable(RuntimeError):
    """A folder a study writes in cannot be written; raised before anything is built and before MLflow or Ray
    start, which would each fail with a traceback of their own (MLflow after minutes of retries)."""


def check_writable(folder: str | Path, holds: str, fix: str) -> None:
    """This process can create files in `folder`, or, while it does not exist, in the nearest folder above it that
    does (MLflow and Ray make the rest). It creates a nameless file there, gone when closed: trying is what tells,
    since a folder's mode says nothing of a read-only mount and root writes in a folder of mode 0555 anyway."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file, not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        what = f"write in {folder} ({e.strerror})" if existing == folder else \
            f"create {folder} ({existing}: {e.strerror})"
        raise FolderNotWritable(f"cannot {what}, where {holds}: {fix}") from None


def check_store_writable(uri: str, fix: str = "run from a folder you can write, or give --tracking-uri") -> None:
    """A local MLflow store (sqlite:///) can be written: its folder (SQLite writes its journal beside it, MLflow
    its artifacts under mlruns/) and the database file when it exists (opened for writing, nothing written)."""
    path = sqlite_path(uri)
    if path is None:
        return
    check_writable(path.parent, f"the study keeps its MLflow store ({path.name})", fix)
    try:
        with open(path, "r+b"):
            pass
    except FileNotFoundError:
        pass
    except OSError as e:
        raise FolderNotWritable(f"cannot write to the MLflow store {path.absolute()} ({e.strerror}): {fix}") from None


def local_folder(path: str) -> Path | None:
    """A storage path as a local folder, or None for a remote one (s3://, gs://, ...)."""
    if path.startswith("file://"):
        return Path(urlsplit(path).path)
    return None if "://" in path else Path(path)


def check_writable_folders(cfg: StudyConfig, uri: str) -> None:
    """What `run` writes in, checked before anything is built: the local MLflow store's folder, Ray's storage path
    (./ray_results unless storage_path says) and the folder of an Optuna storage file."""
    check_store_writable(uri)
    ray_folder = local_folder(storage_path(cfg))
    if ray_folder is not None:
        fix = ("set storage_path to a folder you can write" if cfg.storage_path else
               "run from a folder you can write, or set storage_path in the config")
        check_writable(ray_folder, "Ray keeps the study's state and checkpoints", fix)
    storage = cfg.search.optuna_storage
    if storage is not None and storage != "mlflow":
        check_writable(Path(storage).expanduser().parent, "Optuna keeps the searcher's study",
                       "set search.optuna_storage to a file in a folder you can write")


def check_optuna_storage(cfg: StudyConfig) -> None:
    storage = cfg.search.optuna_storage
    if storage is not None and storage != "mlflow" and not Path(storage).expanduser().resolve().parent.is_dir():
        raise ConfigError(f"search.optuna_storage: {storage}: its folder does not exist")


def check_model_knobs(cfg: StudyConfig, shape: ModelSize, model: str) -> None:
    """A configured value or choice of a model-dependent knob (a layer) must exist on the study's model."""
    for knob in study_knobs(cfg.variants, cfg.adapters):
        override = cfg.search.space.get(knob.name)
        if knob.model_choices is None or override is None:
            continue
        where = f"search.space.{knob.name}"
        if override.searched is not None:
            continue
        if override.choices is None and override.value is None:
            raise ConfigError(f"{where}: give choices or a value ({knob.model_choices}), not a numeric range")
        for value in override.choices if override.choices is not None else [override.value]:
            try:
                knob.model_choices.check(value, shape)
            except ValueError as e:
                raise ConfigError(f"{where}: {e} (model {model})") from None


def prepare_study(cfg: StudyConfig, log=print, address: str | None = None) -> TrialSetup:
    """The TrialSetup every trial shares, once every check has passed; the checks run in order, cheapest first:
    the study's own data files are read and checked before any model is built (on a fresh machine the embedded
    model's build takes minutes), the generated corpus once the embedded model that comes with it is built."""
    shape = _check_before_building(cfg, address)
    setup = _trial_setup(cfg, shape)
    data = _read_data(setup, setup.data, log) if setup.data else None
    checked = _check_data(cfg, data, setup.data) if data is not None else None
    _build_models(cfg, setup, log)
    paths = setup.data_paths()
    if data is None:
        data = _read_data(setup, paths, log)
        checked = _check_data(cfg, data, paths)
    languages, script, share = checked
    coverage = _check_tokenizer(cfg, setup, data, script, paths)
    log(f"forget language {languages['forget']} (script {script}, {share:.0%} of letters; "
        f"{coverage:.0%} of its tokens are whole {script} tokens); retain {languages['retain']}")
    setup = replace(setup, languages=tuple(sorted(languages.items())), forget_script=script)
    from study.oracle import choose_oracle  # imports torch, which the checks above have loaded

    choose_oracle(cfg, setup, log)  # an oracle trained without another language is refused here
    return setup


def _check_before_building(cfg: StudyConfig, address: str | None) -> ModelSize:
    """What fails without building or reading anything large: the model is there, its layers fit the configured
    layer knobs, the resources and the Optuna storage exist. Returns the model's shape."""
    check_model(cfg.model)
    shape = model_shape(cfg)
    check_model_knobs(cfg, shape, cfg.model)  # a layer the model does not have fails before anything is built
    check_quantization(cfg, address)
    check_resources(cfg, address)
    check_optuna_storage(cfg)
    return shape


def _trial_setup(cfg: StudyConfig, shape: ModelSize) -> TrialSetup:
    """Each config section that trials read is passed whole, as the trainables-side settings object that states
    its defaults (trainables.trial.setup)."""
    return TrialSetup(
        model=cfg.model,
        embedded=embedded_spec(cfg),
        shape_tokenizer=str(Path(cfg.shape.tokenizer).resolve()) if cfg.shape.tokenizer else "",
        shape_seed=cfg.shape.seed,
        model_shape=shape,
        trust_remote_code=cfg.trust_remote_code,
        dtype=cfg.dtype,
        quantization=cfg.quantization,
        device="cuda" if cfg.resources.gpus_per_trial > 0 else "cpu",
        data=resolved_data_paths(cfg),
        embedded_forget=cfg.embedded.forget,
        embedded_retain=cfg.embedded.retain,
        train=TrainSettings(**cfg.train.model_dump()),
        sae=SAEConfig(**cfg.sae.model_dump(exclude={"pretrained"})),
        sae_pretrained=str(Path(cfg.sae.pretrained).resolve()) if cfg.sae.pretrained else "",
        mmie_eval=MmieEvalConfig(**cfg.mmie_eval.model_dump(exclude={"constrain_search"})),
        degenerate=DegenerateRule(**cfg.degenerate.model_dump()),
        es_romanized=cfg.es_romanized,
        cpus_per_trial=cfg.resources.cpus_per_trial,
    )


def _read_data(setup: TrialSetup, paths: DataPaths, log) -> StudyData:
    """The study's data, read once (every line validated)."""
    data = load_study_data(paths, seed=setup.train.seed, heldout=setup.heldout)
    renamed = [f"{name} = {Path(s.path).name}" for name, s in data.sets.items()
               if name.startswith("xlang_") and name != f"xlang_{Path(s.path).stem}"]
    if renamed:
        log(f"cross-lingual sets named for MLflow: {', '.join(renamed)}")
    return data


def _build_models(cfg: StudyConfig, setup: TrialSetup, log) -> None:
    """The embedded model (its generated corpus with it) and a shape model, built once and cached."""
    from trainables.embedded import ensure_embedded  # torch

    if cfg.model == "embedded" or (is_shape(cfg.model) and not (cfg.shape.tokenizer and cfg.data)):
        ensure_embedded(setup.embedded, log=log)  # a shape model takes its tokenizer (and data) from it unless given
    if is_shape(cfg.model):
        ensure_shape(cfg.model, setup.shape_tokenizer or str(ensure_embedded(setup.embedded).model_dir),
                     setup.shape_seed, log=log)


def _check_data(cfg: StudyConfig, data: StudyData, paths: DataPaths) -> tuple[dict[str, str], str, float]:
    """What the data alone can get wrong: the sets' languages, the forget set's script, a set too small for a gate.
    Returns each set's language, the forget script and its share of letters."""
    languages = _check_languages(cfg, data, paths)
    script, share = _check_scripts(cfg, data, paths, languages["forget"])
    _check_gate_data(cfg, data)
    return languages, script, share


def _check_languages(cfg: StudyConfig, data: StudyData, paths: DataPaths) -> dict[str, str]:
    """Each set's language (configured under `languages:`, else identified), forget and retain different."""
    for name in cfg.languages:
        if name not in data.sets:
            raise ConfigError(f"languages.{name}: this study has no set {name!r}; its sets: {', '.join(data.sets)}")
    languages = {}
    for name, s in data.sets.items():
        code = cfg.languages.get(name) or detect_language(s.train or s.heldout)
        if code is None:
            raise DataError(f"{name} file {s.path}: no language could be identified in it")
        languages[name] = code
    if languages["forget"] == languages["retain"]:
        raise DataError(
            f"forget file {paths.forget} and retain file {paths.retain} are both in language "
            f"{languages['forget']!r}: nothing would tell forgetting from damage"
        )
    return languages


def _check_scripts(cfg: StudyConfig, data: StudyData, paths: DataPaths, forget_language: str) -> tuple[str, float]:
    """The forget set's script (and its share of letters): present, not the retain set's, and with romanised cue
    words when `es_romanized` asks for them."""
    script, share = dominant_script(data.forget.train)
    if script is None:
        raise DataError(f"forget file {paths.forget}: has no letters of any script")
    retain_script, _ = dominant_script(data.retain.train)
    if retain_script == script:
        raise DataError(
            f"forget file {paths.forget}: its script {script} is also the retain set's script; the forget-language "
            "token mass cannot separate them (forget and retain must be written in different scripts)"
        )
    if cfg.es_romanized:
        try:
            RomanizedCues(forget_language)
        except ValueError as e:
            raise DataError(f"forget file {paths.forget}: {e}") from None
    return script, share


def _check_gate_data(cfg: StudyConfig, data: StudyData) -> None:
    """A set too small for a gate's feature selection or calibration fails here, named."""
    if any(get_variant(v).gate for v in cfg.variants):
        gate_lines(data)


def _check_tokenizer(cfg: StudyConfig, setup: TrialSetup, data: StudyData, script: str, paths: DataPaths) -> float:
    """The tokenizer loads and can represent the forget language; returns the share of its tokens that are whole
    tokens of the forget script."""
    from trainables.language.vocabulary import check_forget_language_in_vocabulary
    from trainables.model.loading import load_tokenizer

    try:
        tok = load_tokenizer(setup.model_path(), cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"model {cfg.model!r}: its tokenizer cannot be loaded ({first})") from None
    return check_forget_language_in_vocabulary(tok, data.forget.train[:2000], script, paths.forget)
