"""The study config: a YAML file (and mmie.py-style command-line overrides), validated before anything runs.

Unknown keys, wrong types and values that make no sense (an unknown variant or knob, an empty or log-through-zero
range) are errors that name the key, and the YAML line where the file has one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from trainables.methods.registry import DEFAULT_ADAPTER, DEFAULT_RETAIN_OBJECTIVE
from trainables.metrics.attack_grid import SweepSettings, parse_attack
from trainables.metrics.degenerate import DegenerateRule
from trainables.settings import EMBEDDED_ROLES, EmbeddedSpec, MmieEvalConfig, RobustnessSettings, SAEConfig
from trainables.trial.setup import TrainSettings, TrialSetup

# The default study's budget per trial (mmie.py's is TrainSettings.steps).
DEFAULT_STUDY_STEPS = 60
# A study that gives no `search.space` narrows the learning rates to where the embedded default trades forgetting for
# fluency in 60 steps: below ~2.5e-4 no variant forgets, above ~8e-4 every trial that forgets answers in byte
# fragments of five scripts (degenerate); docs/benchmarks.md, "The default study". `space: {}` searches every knob
# over its registered range.
DEFAULT_SEARCH_SPACE = {"lr": {"low": 2.5e-4, "high": 8e-4, "log": True},
                        "lr_forget": {"low": 2.5e-4, "high": 8e-4, "log": True},
                        "lr_retain": {"low": 1e-4, "high": 1e-3, "log": True}}

# A section's defaults are its trainables-side settings object's (trainables.trial.setup, trainables.settings), which
# the driver builds from the validated section: a default is stated once, there; tests/test_config.py checks that
# none is repeated. None of these modules imports torch, nor does the registry's, so a config is validated (and a
# bad one reported) without loading it (tests/test_cli_imports.py).


class ConfigError(ValueError):
    """A study config is invalid; the message names the key (and the file and line)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    forget: str
    retain: str
    mixed: str | None = None
    xlang: list[str] = Field(default_factory=list)
    # A general utility set (JSONL), never trained on: utility is measured on it instead of held-out retain lines.
    utility_eval: str | None = None
    adversarial: str | None = None  # prompts that try to extract the forget language (mmie.py's --adversarial)


class EmbeddedConfig(_Strict):
    """The tiny model the project builds itself (used when model: embedded; trainables.settings.EmbeddedSpec)."""

    seed: int = EmbeddedSpec.seed
    lines_per_language: int = Field(EmbeddedSpec.lines_per_language, ge=50)
    pretrain_steps: int = Field(EmbeddedSpec.pretrain_steps, ge=1)
    hidden_size: int = Field(EmbeddedSpec.hidden_size, ge=16)
    num_layers: int = Field(EmbeddedSpec.num_layers, ge=1)
    # Pretrain it on the study's own data files instead of the generated corpus (a laptop smoke test).
    train_on_data: StrictBool = False
    # Which generated languages to forget and retain when no data files are given.
    forget: Literal["hi", "en", "ur", "pa", "bn"] = EMBEDDED_ROLES["forget"]
    retain: Literal["hi", "en", "ur", "pa", "bn"] = EMBEDDED_ROLES["retain"]


class ShapeConfig(_Strict):
    """A real architecture's shape with random weights (used when model: shape:NAME, trainables/model/shapes.py)."""

    # A tokenizer folder or a tokenizer.json file; the embedded build's tokenizer if absent. The model's vocabulary
    # is this tokenizer's.
    tokenizer: str | None = None
    seed: int = TrialSetup.shape_seed  # of the random weights

    @field_validator("tokenizer")
    @classmethod
    def _exists(cls, value):
        if value is not None and not Path(value).exists():
            raise ValueError(f"{value}: no such tokenizer folder or file")
        return value


class KnobRange(_Strict):
    """Overrides a knob's search range: a fixed value, a numeric range, choices, or `searched: true|false` (search
    the knob over its default range, which for a layer knob is every layer of the study's model; or fix it at its
    default)."""

    value: Any = None
    low: float | None = None
    high: float | None = None
    log: StrictBool | None = None
    choices: list[Any] | None = None
    searched: StrictBool | None = None

    @model_validator(mode="after")
    def _one_form(self):
        forms = [self.value is not None, self.low is not None or self.high is not None, self.choices is not None,
                 self.searched is not None]
        if sum(forms) != 1:
            raise ValueError("give exactly one of: value, low/high, choices, searched")
        if forms[1]:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if not self.low < self.high:
                raise ValueError(f"empty range: low {self.low} is not below high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"a log range must be positive, got low {self.low}")
        if forms[2] and not self.choices:
            raise ValueError("choices is empty")
        return self


Objective = Literal["forget_efficacy", "utility", "xlang_utility", "relearn_forget_efficacy"]


class SearchConfig(_Strict):
    searcher: Literal["optuna", "random"] = "optuna"
    # Optuna's multi-objective sampler (searcher: optuna): TPE, NSGA-II, or the Gaussian-process sampler (GPSampler:
    # multi-objective and constrained since Optuna 4.5; it models the knobs every trial shares and samples a
    # variant's own knobs at random, as Optuna does for a define-by-run space).
    sampler: Literal["tpe", "nsga2", "gp"] = "tpe"
    num_samples: int = Field(16, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    seed: int = 0
    # Collateral damage is an objective by default: a two-objective front rewards forgetting Hindi by wrecking
    # Urdu, Punjabi and Bengali (docs/benchmarks.md, "The two-objective default front").
    objectives: list[Objective] = ["forget_efficacy", "utility", "xlang_utility"]
    # Where Optuna's study lives: an sqlite file, so optuna-dashboard can open it; `mlflow`: on the study's MLflow
    # tracking server (mlflow.optuna.MlflowStorage, experiment `<study>-optuna`), one store on a cluster; in memory
    # if absent.
    optuna_storage: str | None = None
    # Unless given: DEFAULT_SEARCH_SPACE's ranges of the study's knobs (StudyConfig._default_search_space).
    space: dict[str, KnobRange] = Field(default_factory=dict)
    # Only what mmie.py runs by its flags: variants whose every piece it expresses, knobs it hard-codes fixed.
    mmie_expressible: StrictBool = False

    @model_validator(mode="after")
    def _objectives(self):
        if len(set(self.objectives)) != len(self.objectives) or not 2 <= len(self.objectives) <= 3:
            raise ValueError(f"objectives: two or three different objectives, got {self.objectives}")
        return self


class SchedulerConfig(_Strict):
    """Early stopping with steps as the resource: none (fifo), ASHA on a weighted sum of the objectives, or the
    multi-objective ASHA (non-dominated sorting at each rung)."""

    type: Literal["fifo", "asha", "moasha"] = "moasha"
    # Unless given: 30 (half the default study's 60 steps: one rung, so about half the trials run the whole budget
    # and the front has members), or half of train.steps when that is less (StudyConfig._short_study_grace).
    grace_period: int = Field(30, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    # moasha only: stop a trial as soon as a full evaluation flags its output degenerate (unless front.
    # include_degenerate ranks such trials): it can no longer reach the front, and its high forget figures would win
    # its rungs over trials that can (study/schedulers.py).
    stop_degenerate: StrictBool = True
    # moasha only: judge a running trial again at the highest rung it passed once more trials are recorded there,
    # and stop it when it has fallen out of the rung's top 1/eta (the first trials at a rung pass on few records).
    rejudge: StrictBool = False
    # asha only: weight per objective of the scalarisation (equal weights if empty; at least one above 0).
    weights: dict[Objective, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """The trials' training schedule (trainables.trial.setup.TrainSettings: mmie.py's by default). The default study
    is a demonstration that finishes in minutes on a laptop: 60 steps, evaluated every 20, 48 prompts at the end
    (studies/full.yaml has mmie.py's 100 steps and the full evaluations)."""

    steps: int = Field(DEFAULT_STUDY_STEPS, ge=1)
    batch_size: int = Field(TrainSettings.batch_size, ge=1)
    max_len: int = Field(TrainSettings.max_len, ge=8)
    lr_schedule: Literal["warmup_cosine", "constant"] = TrainSettings.lr_schedule
    warmup_ratio: float = Field(TrainSettings.warmup_ratio, ge=0, lt=1)
    eval_every: int = Field(20, ge=1)
    checkpoint_every: int = Field(20, ge=1)
    es_prompts: int = Field(TrainSettings.es_prompts, ge=1)
    final_es_prompts: int = Field(48, ge=1)
    max_grad_norm: float = Field(TrainSettings.max_grad_norm, ge=0)
    max_adapter_norm: float = Field(TrainSettings.max_adapter_norm, gt=0)
    seed: int = TrainSettings.seed
    # masked: padding out of every loss; mmie: mmie.py's whole-set padding, pads counted (TrainSettings.padding)
    padding: Literal["masked", "mmie"] = TrainSettings.padding


class SAESettings(_Strict):
    """The SAE a gate variant reads (sae_gate, dsg, <variant>+dsg): trained once per model, layer and these settings,
    then cached; or a pretrained SAE in SAELens's folder format, for the layer it was trained on."""

    # Defaults are the SAE trainer's own (trainables.settings.SAEConfig), which these settings are passed to.
    d_sae: int | None = Field(SAEConfig.d_sae, ge=1)  # None: 8 x the model's hidden size
    k: int = Field(SAEConfig.k, ge=1)  # mean active features per token (BatchTopK)
    steps: int = Field(SAEConfig.steps, ge=1)
    lr: float = Field(SAEConfig.lr, gt=0)
    pretrained: str | None = None  # fix sae_layer (search.space) to the layer it was trained on

    @field_validator("pretrained")
    @classmethod
    def _exists(cls, value):
        if value is not None and not (Path(value) / "cfg.json").is_file():
            raise ValueError(f"{value}: not a SAELens SAE folder (no cfg.json)")
        return value


class DegenerateConfig(_Strict):
    """When a trial's forget continuations are degenerate (trainables.metrics.degenerate: any threshold crossed; null
    switches one off). Degenerate trials are kept off the front (unless front.include_degenerate) and never exported."""

    max_no_language: float | None = Field(DegenerateRule.max_no_language, ge=0, le=1)
    max_nll_ratio: float | None = Field(DegenerateRule.max_nll_ratio, gt=0)
    min_distinct: float | None = Field(DegenerateRule.min_distinct, ge=0, le=1)
    min_entropy: float | None = Field(DegenerateRule.min_entropy, ge=0)


class FrontConfig(_Strict):
    """Which finished trials the Pareto front ranks besides completed, healthy ones."""

    include_diverged: StrictBool = False  # a trial that diverged at step k ran k steps, not the study's budget
    include_degenerate: StrictBool = False  # output that is not language is not forgetting


# The sweep's settings in the `robustness:` section, under SweepSettings's own names.
SWEEP_FIELDS = {"attacks", "attack_steps", "attack_eval_every", "attack_es_prompts"}


class RobustnessConfig(_Strict):
    """Does the forgetting survive an attack (trainables.metrics.robustness)? A retain-only oracle measured on the parent run,
    a relearning attack after each completed trial, and two optional checks."""

    # The "retrain from scratch" reference: None = built and measured for the embedded model (without the language
    # the forget data are in: study.oracle.choose_oracle), none for another; false = none; true = the embedded
    # model's; or the folder of a retain-only model with the study model's tokenizer.
    oracle: StrictBool | str | None = None
    relearn: StrictBool = RobustnessSettings.relearn
    relearn_steps: int = Field(RobustnessSettings.relearn_steps, ge=1)
    relearn_lr: float = Field(RobustnessSettings.relearn_lr, gt=0)
    # all: the attacker trains every parameter
    relearn_params: Literal["adapter", "all"] = RobustnessSettings.relearn_params
    relearn_batch_size: int = Field(RobustnessSettings.relearn_batch_size, ge=1)
    relearn_eval_every: int = Field(RobustnessSettings.relearn_eval_every, ge=1)  # forget_efficacy along the attack
    relearn_es_prompts: int = Field(RobustnessSettings.relearn_es_prompts, ge=1)  # ES at the attack's end
    relearn_at: Literal["end", "eval"] = "end"  # eval: also after every eval_every steps
    # mmie.py's --actpert_audit: noise at the edit layers, the change in ES
    actpert_audit: StrictBool = RobustnessSettings.actpert_audit
    actpert_amp: float = Field(RobustnessSettings.actpert_amp, gt=0)
    int8_check: StrictBool = RobustnessSettings.int8_check  # forgetting after torch's int8 dynamic quantisation (CPU, float32 models)
    # The attacker sweep (trainables.metrics.attack_sweep): the worst case over `attacks`, on the front (the knee
    # first, at most `audit_top` members) at the end of the study when `audit` is on; `unlearn-study audit` runs it
    # on a finished study.
    attacks: tuple[str, ...] = Field(SweepSettings.attacks, min_length=1)
    attack_steps: int = Field(SweepSettings.attack_steps, ge=1)
    attack_eval_every: int = Field(SweepSettings.attack_eval_every, ge=1)
    attack_es_prompts: int = Field(SweepSettings.attack_es_prompts, ge=1)
    audit: StrictBool = False
    audit_top: int | None = Field(None, ge=1)

    @field_validator("attacks")
    @classmethod
    def _attacks(cls, value):
        for text in value:
            parse_attack(text)
        return value

    def sweep_settings(self) -> SweepSettings:
        return SweepSettings(**self.model_dump(include=SWEEP_FIELDS))

    @field_validator("oracle")
    @classmethod
    def _oracle_folder(cls, value):
        if isinstance(value, str) and not (Path(value) / "config.json").is_file():
            raise ValueError(f"{value}: not a model folder (no config.json)")
        return value


class MmieEvalSettings(_Strict):
    """mmie.py's measurements (`mmie/...` metrics, trainables.metrics.mmie) and its acceptance gates, which the
    searcher is told as constraints. Item counts may be smaller than mmie.py's (200 prompts per set); its
    definitions (sampling, prompts, ES) are not settings."""

    enabled: StrictBool = MmieEvalConfig.enabled
    items: int = Field(MmieEvalConfig.items, ge=1)  # forget prompts at evaluation checkpoints
    # at the end of a trial, and for the base model: None is mmie.py's counts; a number caps each set. The default
    # study caps them (mmie/items_exact 0; studies/full.yaml measures mmie.py's counts): the embedded default answers
    # every prompt with up to 64 sampled tokens, most of a trial's evaluation time at mmie.py's 860 prompts.
    final_items: int | None = Field(48, ge=1)
    # ES sets at checkpoints: forget only (generation is most of the cost) or all; the end measures every set.
    checkpoint_sets: Literal["forget", "all"] = MmieEvalConfig.checkpoint_sets
    max_new_tokens: int = Field(MmieEvalConfig.max_new_tokens, ge=1)
    # None: mmie.py's (ppl 200, token KL 120, MIA 120)
    teacher_forced_items: int | None = Field(64, ge=1)
    min_k: float = Field(MmieEvalConfig.min_k, gt=0, le=1)
    # mmie.py's --use_xlmr (CLD3 votes) and --use_fasttext (fastText votes, with FASTTEXT_LID_PATH): the exported
    # command's flags, and the voters the study predicts with
    use_xlmr: StrictBool = MmieEvalConfig.use_xlmr
    use_fasttext: StrictBool = MmieEvalConfig.use_fasttext
    gate_es_forget_ratio: float = Field(MmieEvalConfig.gate_es_forget_ratio, ge=0)
    gate_es_mixed_ratio: float = Field(MmieEvalConfig.gate_es_mixed_ratio, ge=0)
    gate_ppl_ratio: float = Field(MmieEvalConfig.gate_ppl_ratio, gt=0)
    # Tell Optuna the gates as constraints (TPE and NSGA-II; Optuna's random sampler takes none).
    constrain_search: StrictBool = True


class ResourcesConfig(_Strict):
    cpus_per_trial: int = Field(TrialSetup.cpus_per_trial, ge=1)
    # A fraction (0.5: two trials share a GPU) or a whole number of GPUs per trial; above 0, trials run on CUDA.
    gpus_per_trial: float = Field(0, ge=0)
    max_failures: int = Field(2, ge=0)

    @field_validator("gpus_per_trial")
    @classmethod
    def _ray_gpu_amount(cls, value):
        # Ray schedules a fraction of one GPU or whole GPUs, never 1.5.
        if value > 1 and not float(value).is_integer():
            raise ValueError(f"{value}: a fraction below 1 or a whole number of GPUs")
        return value


class LadderConfig(_Strict):
    """A ladder: one study per (rung, seed), every rung on the same budget (`unlearn-study ladder`)."""

    rungs: list[str]
    seeds: list[int] = [0, 1, 2]
    # --quick: fewer trials and steps, for a first look.
    quick_num_samples: int = Field(4, ge=1)
    quick_steps: int = Field(40, ge=2)


# A study name becomes an MLflow experiment and a folder under Ray's storage path: no separators, no "..".
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,149}")
# Tracking URIs MLflow can open: a local path, sqlite or another database, a server, a folder of files.
TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "databricks", "postgresql", "mysql", "mssql")


def check_knob_override(knob, override: KnobRange) -> None:
    """An override of `search.space` against the registered knob it overrides: its type (integer, float, one of
    given strings), its scale (a log knob searches positive values only) and its choices (a knob with choices
    takes a value or choices of the same type, never a float range). Raises ValueError naming what is wrong."""
    if override.searched is not None or knob.model_choices is not None:
        return  # its own range; or choices that depend on the model, checked against it in study/prepare.py
    def check_value(v, what: str):
        if knob.choices is not None:
            kinds = {type(c) for c in knob.choices}
            if str in kinds:
                if v not in knob.choices:
                    raise ValueError(f"{what} {v!r}: not one of {list(knob.choices)}")
                return
            if isinstance(v, bool) or not isinstance(v, int) and not (isinstance(v, float) and float in kinds):
                raise ValueError(f"{what} {v!r}: must be {'a number' if float in kinds else 'an integer'} like "
                                 f"{list(knob.choices)}")
            if v <= 0 and all(c > 0 for c in knob.choices):
                raise ValueError(f"{what} {v!r}: must be positive, like {list(knob.choices)}")
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{what} {v!r}: must be a number (range [{knob.low:g}, {knob.high:g}])")
        if knob.integer and v != int(v):
            raise ValueError(f"{what} {v!r}: must be an integer")
        if knob.log and v <= 0:
            raise ValueError(f"{what} {v!r}: must be positive (a log-scale knob)")
        if knob.low >= 0 and v < 0:
            raise ValueError(f"{what} {v!r}: must not be negative")

    if override.value is not None:
        check_value(override.value, "value")
    elif override.choices is not None:
        for v in override.choices:
            check_value(v, "choice")
    else:
        if knob.choices is not None:
            raise ValueError(f"a low/high range on a knob with choices {list(knob.choices)}: give choices or value")
        log = knob.log if override.log is None else override.log
        if log and override.low <= 0:
            raise ValueError(f"a log range must be positive, got low {override.low:g}"
                             + ("" if override.log else " (the knob is log-scale; log: false for a linear range)"))
        for bound in (override.low, override.high):
            check_value(bound, "bound")


class StudyConfig(_Strict):
    study: str = "default"
    model: str = TrialSetup.model
    trust_remote_code: StrictBool = TrialSetup.trust_remote_code
    dtype: Literal["float32", "bfloat16", "float16"] = TrialSetup.dtype
    # int8: mmie.py's default on CUDA (bitsandbytes 8-bit weights; LoRA through prepare_model_for_kbit_training).
    quantization: Literal["none", "int8"] = TrialSetup.quantization
    embedded: EmbeddedConfig = EmbeddedConfig()
    shape: ShapeConfig = ShapeConfig()
    data: DataConfig | None = None
    # ISO 639-1 codes per data set ("forget", "retain", "mixed", "xlang_<file stem>", the stem in the letters MLflow
    # takes: see trainables.data.xlang_set_name); found from the data if absent.
    languages: dict[str, str] = Field(default_factory=dict)
    # GA and five of the ladder's steps (docs/methods.md), adaptive among them; studies/full.yaml adds curriculum,
    # the SAE-gated variants (their SAE is trained once, minutes) and the sine-bounded adapter.
    variants: list[str] = ["ga", "npo", "bounded", "loreun", "dualoptim", "adaptive"]
    adapters: list[str] = [DEFAULT_ADAPTER]
    # The retain step of every training variant that does not name its own: kl (mmie.py's) and/or nll.
    retain_objectives: list[str] = [DEFAULT_RETAIN_OBJECTIVE]
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    # The Pareto front ignores trials below this utility (export's --min-utility does the same per pick).
    utility_floor: float | None = Field(None, gt=0, le=1)
    front: FrontConfig = FrontConfig()
    degenerate: DegenerateConfig = DegenerateConfig()
    # mmie.py's --es_romanized: romanised forget-language text (cue words) counts as the forget language in ES.
    es_romanized: StrictBool = TrialSetup.es_romanized
    train: TrainConfig = TrainConfig()
    sae: SAESettings = SAESettings()
    mmie_eval: MmieEvalSettings = MmieEvalSettings()
    resources: ResourcesConfig = ResourcesConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    tracking_uri: str | None = None
    address: str | None = None
    storage_path: str | None = None
    ladder: LadderConfig | None = None

    def front_rule(self):
        """The rule this study's front ranks trials by (its objectives, utility floor and `front:` settings)."""
        from study.eligibility import FrontRule

        return FrontRule(tuple(self.search.objectives), self.utility_floor, self.front.include_diverged,
                         self.front.include_degenerate)

    @model_validator(mode="before")
    @classmethod
    def _short_study_grace(cls, data):
        """The scheduler's default grace period is half the default study's steps: a shorter study's default is
        half of its own steps (at least 1), so that `--steps 20` runs with the default scheduler."""
        if not isinstance(data, dict):
            return data
        scheduler, train = data.get("scheduler", {}), data.get("train", {})
        steps = train.get("steps") if isinstance(train, dict) else None
        if (isinstance(scheduler, dict) and "grace_period" not in scheduler and isinstance(steps, int)
                and not isinstance(steps, bool) and steps >= 2):
            default = SchedulerConfig.model_fields["grace_period"].default
            data = {**data, "scheduler": {**scheduler, "grace_period": min(default, max(1, steps // 2))}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _default_search_space(cls, data):
        """Without a `search.space`, the study searches DEFAULT_SEARCH_SPACE's ranges of the knobs its variants and
        adapters have (a study of GA alone has no lr_forget to narrow)."""
        if not isinstance(data, dict):
            return data
        search = data.get("search", {})
        if not isinstance(search, dict) or "space" in search:
            return data
        # Registers every variant: in a fresh process (the CLI's first config) nothing has yet, and every name would
        # read as unknown below, leaving the study on every knob's whole registered range.
        import trainables.methods.variants  # noqa: F401
        from trainables.methods.registry import study_knobs

        try:
            names = {k.name for k in study_knobs(data.get("variants", cls.model_fields["variants"].default),
                                                 data.get("adapters", cls.model_fields["adapters"].default))}
        except Exception:  # an unknown variant or adapter: the field checks name it
            return data
        space = {name: dict(r) for name, r in DEFAULT_SEARCH_SPACE.items() if name in names}
        return {**data, "search": {**search, "space": space}}

    @field_validator("study")
    @classmethod
    def _safe_name(cls, value):
        if not STUDY_NAME.fullmatch(value) or ".." in value:
            raise ValueError(f"study name {value!r}: use letters, digits, '_', '-', '+' and '.' (no '/', '..', "
                             "spaces or control characters), starting with a letter or digit, at most 150 characters")
        return value

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_scheme(cls, value):
        if value is None:
            return value
        scheme = value.split("://", 1)[0].split("+", 1)[0].lower() if "://" in value else None
        if scheme is not None and scheme not in TRACKING_SCHEMES:
            raise ValueError(f"tracking URI {value.split('@')[-1]!r}: scheme {scheme!r} is not one MLflow stores "
                             f"runs in ({', '.join(TRACKING_SCHEMES)}, or a local path)")
        return value

    @model_validator(mode="after")
    def _registered(self):
        """Every name the config uses is registered, and every value fits what it names: each step raises naming
        the key it blames."""
        import trainables.methods.variants  # noqa: F401  (registers every piece and variant)

        self._check_pieces()
        self._check_mmie_expressible()
        self._check_search_space()
        self._check_model_shape()
        self._check_languages()
        self._check_scheduler()
        self._check_sae()
        self._check_embedded()
        return self

    def _check_pieces(self) -> None:
        from trainables.methods.registry import ADAPTERS, RETAIN_OBJECTIVES, get_variant

        if not self.variants:
            raise ValueError("variants: at least one variant")
        for loc, names in ((("variants",), self.variants), (("ladder", "rungs"), self.ladder.rungs if self.ladder else [])):
            for i, name in enumerate(names):
                try:
                    get_variant(name)
                except KeyError as e:
                    raise _KeyedError((*loc, i), e.args[0]) from None
        for i, name in enumerate(self.adapters):
            if name not in ADAPTERS:
                raise _KeyedError(("adapters", i), f"unknown adapter {name!r}; known: {', '.join(ADAPTERS.names())}")
        for i, name in enumerate(self.retain_objectives):
            if name not in RETAIN_OBJECTIVES:
                raise _KeyedError(("retain_objectives", i), f"unknown retain objective {name!r}; known: "
                                  f"{', '.join(RETAIN_OBJECTIVES.names())}")
        if not self.retain_objectives:
            raise _KeyedError(("retain_objectives",), "at least one retain objective")

    def _check_mmie_expressible(self) -> None:
        """`search.mmie_expressible` leaves at least one variant, adapter and retain objective mmie.py runs."""
        if not self.search.mmie_expressible:
            return
        from study.results import mmie_command as mmie
        from trainables.methods.registry import ADAPTERS, RETAIN_OBJECTIVES

        for key, left in (("variants", mmie.expressible_variants(self.variants)),
                          ("adapters", mmie.expressible(ADAPTERS, self.adapters)),
                          ("retain_objectives", mmie.expressible(RETAIN_OBJECTIVES, self.retain_objectives))):
            if not left:
                raise _KeyedError(("search", "mmie_expressible"), f"none of the {key} is one mmie.py runs by its flags")

    def _check_search_space(self) -> None:
        """Each `search.space` override names a knob of the study's variants and adapters and fits it."""
        from trainables.methods.registry import study_knobs

        knobs = study_knobs(self.variants, self.adapters)
        names = sorted({k.name for k in knobs})
        for name in self.search.space:
            if name not in names:
                raise _KeyedError(("search", "space", name), f"unknown knob {name!r} for these variants; known: {names}")
        for knob in knobs:  # a name shared by several pieces (base_alpha) is checked against each
            if knob.name in self.search.space:
                try:
                    check_knob_override(knob, self.search.space[knob.name])
                except ValueError as e:
                    raise _KeyedError(("search", "space", knob.name), str(e)) from None

    def _check_model_shape(self) -> None:
        from trainables.model.shapes import is_shape, shape_named

        if is_shape(self.model):
            try:
                shape_named(self.model)
            except KeyError as e:
                raise _KeyedError(("model",), e.args[0]) from None
        elif self.shape.tokenizer is not None:
            raise _KeyedError(("shape", "tokenizer"), f"only for model: shape:NAME (model is {self.model!r})")

    def _check_languages(self) -> None:
        from trainables.language.identification import _language

        for name, code in self.languages.items():
            if name not in ("forget", "retain", "mixed") and not name.startswith("xlang_"):
                raise _KeyedError(("languages", name), f"unknown set {name!r}: forget, retain, mixed or xlang_<name>")
            try:
                _language(code)
            except ValueError as e:
                raise _KeyedError(("languages", name), f"{e} (such as hi, en, ur)") from None

    def _check_scheduler(self) -> None:
        for name in self.scheduler.weights:
            if name not in self.search.objectives:
                raise _KeyedError(("scheduler", "weights", name), f"{name} is not one of search.objectives")
        if self.scheduler.weights and not any(self.scheduler.weights.values()):
            raise _KeyedError(("scheduler", "weights"), "every weight is 0: at least one objective must count")
        if self.scheduler.grace_period >= self.train.steps and self.scheduler.type != "fifo":
            if "grace_period" in self.scheduler.model_fields_set:
                raise _KeyedError(("scheduler", "grace_period"), f"must be below train.steps ({self.train.steps})")
            raise _KeyedError(("train", "steps"), f"{self.train.steps} step leaves the {self.scheduler.type} "
                                                  "scheduler no rung to stop a trial at: give 2 or more, or "
                                                  "scheduler: {type: fifo}")

    def _check_sae(self) -> None:
        if self.sae.d_sae is not None and self.sae.k > self.sae.d_sae:
            raise _KeyedError(("sae", "k"), f"{self.sae.k} active features per token, above sae.d_sae "
                                            f"({self.sae.d_sae}) features: k must be at most d_sae")

    def _check_embedded(self) -> None:
        if self.embedded.forget == self.embedded.retain:
            raise _KeyedError(("embedded", "forget"), "forget and retain must be different languages")
        if self.embedded.train_on_data and self.data is None:
            raise _KeyedError(("embedded", "train_on_data"), "needs data files (data: or --forget/--retain)")

    @model_validator(mode="after")
    def _robustness(self):
        r = self.robustness
        if "relearn_forget_efficacy" in self.search.objectives and not r.relearn:
            raise _KeyedError(("search", "objectives"), "relearn_forget_efficacy needs robustness.relearn: true")
        if r.relearn_at == "eval" and not r.relearn:
            raise _KeyedError(("robustness", "relearn_at"), "needs robustness.relearn: true")
        if r.oracle is True and self.model != "embedded":
            raise _KeyedError(("robustness", "oracle"), "only the embedded model's oracle is built here: give the "
                                                        "folder of a retain-only model with this model's tokenizer")
        if r.int8_check and self.resources.gpus_per_trial > 0:
            raise _KeyedError(("robustness", "int8_check"), "torch's dynamic quantiser runs on CPU only; not "
                                                            "available to trials on a GPU")
        if self.quantization == "int8" and self.resources.gpus_per_trial == 0:
            raise _KeyedError(("quantization",), "int8 loads the model 8-bit through bitsandbytes, which runs on "
                                                 "CUDA only: set resources.gpus_per_trial, or quantization: none")
        if self.quantization == "int8" and r.relearn and r.relearn_params == "all":
            raise _KeyedError(("robustness", "relearn_params"), "all trains every parameter, and 8-bit weights "
                                                                "cannot be trained: use adapter with quantization: int8")
        if r.int8_check and self.dtype != "float32":
            raise _KeyedError(("robustness", "int8_check"), f"quantises float32 weights; the model is {self.dtype}")
        return self


class _KeyedError(ValueError):
    def __init__(self, loc: tuple, msg: str):
        super().__init__(msg)
        self.loc = loc


def _line_of(node, loc: tuple) -> int | None:
    """The 1-based YAML line of the key path `loc`, or of its closest existing parent."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(data: dict, source: str = "<config>", node=None, flags: dict | None = None) -> StudyConfig:
    """Validate a config dict; errors name the key (and the line in `source` when a YAML node is given, or the
    command-line flag in `flags`, dotted key -> flag, when the value came from one)."""
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            inner = err.get("ctx", {}).get("error")
            loc = tuple(err["loc"]) + (inner.loc if isinstance(inner, _KeyedError) else ())
            msg = str(inner) if inner is not None else err["msg"]
            flag = _flag_of(flags or {}, loc)
            line = _line_of(node, loc) if node is not None and flag is None else None
            where = f"command line, {flag}" if flag else (f"{source}, line {line}" if line else source)
            problems.append(f"{where}: {_format_loc(loc) or '(top level)'}: {msg}")
        raise ConfigError("invalid study config:\n  " + "\n  ".join(problems)) from None


def _flag_of(flags: dict, loc: tuple) -> str | None:
    """The flag that set the value at `loc` (or at one of its parents)."""
    for n in range(len(loc), 0, -1):
        dotted = ".".join(str(p) for p in loc[:n] if not isinstance(p, int))
        if dotted in flags:
            return flags[dotted]
    return None


def load_config(path: str | Path | None = None, overrides: dict | None = None,
                flags: dict | None = None) -> StudyConfig:
    """Read a YAML study config (or the defaults), apply overrides (dotted keys; `flags` maps the ones that came
    from the command line to their flag, so that an error names the flag), and validate."""
    data: dict = {}
    node = None
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"study config {path}: not found")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ConfigError(f"study config {path}: not UTF-8 ({e.reason} at byte {e.start})") from None
        if not text.strip() or all(not l.strip() or l.lstrip().startswith("#") for l in text.splitlines()):
            raise ConfigError(f"study config {path}: is empty; give a study config (see studies/), or leave out "
                              "--config to run the default study")
        try:
            node = yaml.compose(text)
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"study config {path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"study config {path}: must be a mapping of keys, got {type(data).__name__}")
        source = str(path)
    for dotted, value in (overrides or {}).items():
        target = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return parse_config(data, source, node, flags)
