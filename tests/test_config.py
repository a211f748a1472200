"""Study configs: defaults are valid; every bad key or value is an error naming the key and the YAML line."""

from pathlib import Path

import pytest
import yaml

from study.config import ConfigError, load_config
from study.space import define_by_run


def write(tmp_path, text):
    p = tmp_path / "study.yaml"
    p.write_text(text)
    return p


def test_defaults_are_valid():
    cfg = load_config()
    assert cfg.model == "embedded" and cfg.variants[:2] == ["ga", "npo"] and "adaptive" in cfg.variants
    # collateral damage is a default objective: a two-objective front rewards forgetting by wrecking the neighbours
    assert cfg.search.objectives == ["forget_efficacy", "utility", "xlang_utility"]
    default_yaml = Path(__file__).resolve().parent.parent / "studies" / "default.yaml"
    assert load_config(default_yaml).search.objectives == cfg.search.objectives
    assert not cfg.front.include_diverged and not cfg.front.include_degenerate and not cfg.es_romanized


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train:\n  stepz: 10\n", "line 2: train.stepz: Extra inputs are not permitted"),
        ("train:\n  steps: 0\n", "line 2: train.steps: Input should be greater than or equal to 1"),
        ("variants: [ga, nope]\n", "line 1: variants[1]: unknown variant 'nope'"),
        ("adapters: [lora, dora]\n", "adapters[1]: unknown adapter 'dora'"),
        ("variants: [ga]\nsearch:\n  space:\n    bound: {low: 1, high: 2}\n", "line 4: search.space.bound: unknown knob 'bound'"),
        ("scheduler:\n  grace_period: 100\n", "scheduler.grace_period: must be below train.steps (60)"),
        ("search:\n  objectives: [forget_efficacy, utility]\nscheduler:\n  weights: {xlang_utility: 1}\n",
         "scheduler.weights.xlang_utility: xlang_utility is not one of"),
        ("degenerate:\n  max_no_language: 1.5\n", "line 2: degenerate.max_no_language: Input should be less than or equal to 1"),
        ("degenerate:\n  min_entropy: -1\n", "degenerate.min_entropy: Input should be greater than or equal to 0"),
        ("front:\n  include_degenrate: true\n", "front.include_degenrate: Extra inputs are not permitted"),
        ("search:\n  objectives: [utility]\n", "two or three different objectives"),
        ("search:\n  space:\n    lr: {low: 0.1, high: 0.01}\n", "line 3: search.space.lr: empty range: low 0.1 is not below high 0.01"),
        ("search:\n  space:\n    lr: {low: 0, high: 0.01, log: true}\n", "a log range must be positive"),
        ("search:\n  space:\n    lr: {choices: []}\n", "choices is empty"),
        ("search:\n  objectives: [forget_efficacy, speed]\n", "search.objectives[1]"),
        ("embedded:\n  forget: en\n", "embedded.forget: forget and retain must be different languages"),
        # issue 26: booleans are strict in every section, the SAE's k fits its width, ASHA's weights count
        ('front:\n  include_degenerate: "no"\n', "line 2: front.include_degenerate: Input should be a valid boolean"),
        ("front:\n  include_diverged: 1\n", "line 2: front.include_diverged: Input should be a valid boolean"),
        ('mmie_eval:\n  enabled: "yes"\n', "line 2: mmie_eval.enabled: Input should be a valid boolean"),
        ("sae:\n  d_sae: 16\n  k: 64\n", "line 3: sae.k: 64 active features per token, above sae.d_sae (16)"),
        ("scheduler:\n  type: asha\n  weights: {utility: -1}\n",
         "line 3: scheduler.weights.utility: Input should be greater than or equal to 0"),
        ("scheduler:\n  type: asha\n  weights: {utility: 0, forget_efficacy: 0}\n",
         "line 3: scheduler.weights: every weight is 0"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert expected in str(e.value), str(e.value)
    assert str(tmp_path / "study.yaml") in str(e.value)


def test_not_a_mapping_and_not_yaml(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_are_validated_too():
    assert load_config(overrides={"search.num_samples": 3}).search.num_samples == 3
    with pytest.raises(ConfigError, match="search.num_samples"):
        load_config(overrides={"search.num_samples": 0})


class FakeTrial:
    """Records what the space asks for; answers with the first choice or the low end (no sampler needed)."""

    def __init__(self, variant):
        self.variant = variant
        self.asked = {}

    def suggest_categorical(self, name, choices):
        self.asked[name] = ("categorical", tuple(choices))
        return self.variant if name == "variant" else choices[0]

    def suggest_float(self, name, low, high, log=False):
        self.asked[name] = ("float", low, high, log)
        return low

    def suggest_int(self, name, low, high, log=False):
        self.asked[name] = ("int", low, high, log)
        return low


def test_space_is_conditional_and_overridable(tmp_path):
    cfg = load_config(write(tmp_path, "variants: [ga, npo]\n"
                                      "search:\n  space:\n    lr: {low: 0.001, high: 0.002}\n    rank: {value: 4}\n"))
    space = define_by_run(cfg)
    ga, npo = FakeTrial("ga"), FakeTrial("npo")
    constants_ga = space(ga)
    space(npo)
    assert "beta" not in ga.asked and npo.asked["beta"] == ("float", 0.01, 1.0, True)
    assert ga.asked["lr"] == ("float", 0.001, 0.002, True)  # log scale kept from the knob
    assert constants_ga["rank"] == 4 and constants_ga["target_modules"] == "q_proj,k_proj,v_proj,o_proj"
    assert ga.asked["variant"] == ("categorical", ("ga", "npo"))


def test_a_knob_searched_differently_by_two_pieces_is_refused_before_ray(tmp_path):
    """LoRA's rank and LoReFT's have different choices: with both adapters and rank searched, Optuna would stop
    the study at the first trial that samples the second ("CategoricalDistribution does not support dynamic value
    space"). One range for both passes; so do two adapters where rank stays fixed."""
    from study.space import check_one_distribution_per_knob

    both = "variants: [ga]\nadapters: [lora, loreft]\nsearch:\n  space:\n    rank: {searched: true}\n"
    with pytest.raises(ConfigError, match=r"search\.space\.rank: ga on lora searches it over choices \[2, 4, 8, 16\] "
                                          r"and ga on loreft over choices \[1, 2, 4, 8\]"):
        check_one_distribution_per_knob(load_config(write(tmp_path, both)))
    one_range = both.replace("{searched: true}", "{choices: [2, 4]}")
    check_one_distribution_per_knob(load_config(write(tmp_path, one_range)))
    check_one_distribution_per_knob(load_config(write(tmp_path, "variants: [ga]\nadapters: [lora, loreft]\n")))
    check_one_distribution_per_knob(load_config())  # the default study


def test_shipped_study_configs_are_valid():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "studies").glob("*.yaml"))
    assert configs
    for path in configs:
        assert path.read_text().startswith("#"), f"{path} should open with the command that runs it"
        load_config(path)


def test_default_yaml_spells_out_exactly_the_defaults():
    """studies/default.yaml parses to the defaults, and names every setting: as a key, or commented out where the
    default is no value."""
    root = Path(__file__).resolve().parent.parent / "studies" / "default.yaml"
    assert load_config(root) == load_config(None)
    text = root.read_text(encoding="utf-8")
    written = yaml.safe_load(text)

    def check(defaults: dict, node: dict | None, where: str) -> None:
        for key, value in defaults.items():
            if node is not None and key in node:
                if isinstance(value, dict) and isinstance(node[key], dict) and value:
                    check(value, node[key], f"{where}{key}.")
            elif not (where.startswith("search.space.") and value is None):  # a knob range's unused forms
                assert value in (None, {}, []) and f"# {key}:" in text, f"default.yaml lacks {where}{key}"

    check(load_config(None).model_dump(), written, "")


# Settings whose study default differs from the trainables-side default on purpose (the default study's budget).
STUDY_BUDGET = {"train": ("steps", "eval_every", "checkpoint_every", "final_es_prompts"),
                "mmie_eval": ("final_items", "teacher_forced_items")}


def test_the_default_study_is_a_demonstration_budget():
    """The default study's own budget: 60 steps (mmie.py's trainable default is 100), one rung at 30, capped final
    evaluations, six variants without an SAE to train, and learning rates narrowed to the embedded default's
    trade-off region; studies/full.yaml restores mmie.py's budget and the whole ladder."""
    from trainables.trial.setup import TrainSettings

    cfg = load_config()
    assert cfg.train.steps == 60 < TrainSettings.steps
    assert cfg.scheduler.grace_period == 30 and cfg.search.num_samples == 16
    assert not any("dsg" in v for v in cfg.variants) and "adaptive" in cfg.variants
    assert cfg.search.space["lr"].high <= 1e-3 and cfg.mmie_eval.final_items == 48
    # the narrowed ranges apply to the knobs a study has: GA alone has no lr_forget
    assert set(load_config(overrides={"variants": ["ga"]}).search.space) == {"lr"}
    full = load_config(Path(__file__).parent.parent / "studies" / "full.yaml")
    assert full.train.steps == TrainSettings.steps and full.mmie_eval.final_items is None
    assert full.search.space == {} and "dsg" in full.variants


def _mirrors():
    """(config section, the trainables-side type whose defaults it takes, {config field: settings field}): every
    setting a trial reads, and where its one default lives."""
    from study import config as c
    from trainables.embedded import EmbeddedSpec
    from trainables.methods.gates.sae import SAEConfig
    from trainables.metrics.attack_sweep import SweepSettings
    from trainables.metrics.degenerate import DegenerateRule
    from trainables.metrics.mmie import MmieEvalConfig
    from trainables.metrics.robustness import RobustnessSettings
    from trainables.trial.setup import TrainSettings, TrialSetup

    def same(section, *config_only):
        return {f: f for f in section.model_fields if f not in config_only}

    return [
        # The default study's budget and evaluation counts are the study's own (a demonstration that finishes in
        # minutes), not the trainable's mmie.py defaults: stated once, in study.config.
        (c.TrainConfig, TrainSettings, same(c.TrainConfig, *STUDY_BUDGET["train"])),
        (c.EmbeddedConfig, EmbeddedSpec, same(c.EmbeddedConfig, "train_on_data", "forget", "retain")),
        (c.EmbeddedConfig, TrialSetup, {"forget": "embedded_forget", "retain": "embedded_retain"}),
        (c.ShapeConfig, TrialSetup, {"seed": "shape_seed"}),
        (c.SAESettings, SAEConfig, same(c.SAESettings, "pretrained")),
        (c.MmieEvalSettings, MmieEvalConfig, same(c.MmieEvalSettings, "constrain_search", *STUDY_BUDGET["mmie_eval"])),
        (c.DegenerateConfig, DegenerateRule, same(c.DegenerateConfig)),
        (c.RobustnessConfig, RobustnessSettings, same(c.RobustnessConfig, "oracle", "relearn_at", "audit", "audit_top",
                                                      *c.SWEEP_FIELDS)),
        (c.RobustnessConfig, SweepSettings, {f: f for f in c.SWEEP_FIELDS}),
        (c.ResourcesConfig, TrialSetup, {"cpus_per_trial": "cpus_per_trial"}),
        (c.StudyConfig, TrialSetup, {f: f for f in ("model", "trust_remote_code", "dtype", "es_romanized")}),
    ]


def _default_expression(tree, class_name: str, field: str):
    """The source expression of a config field's default: `x: T = default` or `x: T = Field(default, ...)`."""
    import ast

    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    node = next(n for n in cls.body if isinstance(n, ast.AnnAssign) and n.target.id == field)
    value = node.value
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Field":
        value = value.args[0] if value.args else next(k.value for k in value.keywords if k.arg == "default")
    return value


def test_each_default_is_stated_once():
    """A setting that trials read has its default in the trainables-side settings type only: the config section
    equals it field by field, its source takes the value from there (no literal repeated), the driver's whole-
    section conversion gives the settings type's defaults, and TrialSetup declares none of a section's fields."""
    import ast
    import dataclasses
    import inspect

    import study.config
    from trainables.trial.setup import TrainSettings, TrialSetup

    tree = ast.parse(inspect.getsource(study.config))
    for section, settings, fields in _mirrors():
        fields = dict(fields)
        declared = {f.name: f for f in dataclasses.fields(settings)}
        for name, target in fields.items():
            f = declared[target]
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assert section.model_fields[name].default == default, (section.__name__, name)
            expr = _default_expression(tree, section.__name__, name)
            assert not isinstance(expr, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.UnaryOp)), (
                f"{section.__name__}.{name}: default {ast.unparse(expr)} restates {settings.__name__}.{target}")
        if settings is not TrialSetup:  # a whole section: the driver builds the settings object from it
            assert settings(**section().model_dump(include=set(fields))) == settings()
    setup_fields = {f.name for f in dataclasses.fields(TrialSetup)}
    assert not setup_fields & {f.name for f in dataclasses.fields(TrainSettings)}


def test_sections_reach_trials_whole(tmp_path):
    """study.prepare builds the trials' settings from each section whole: what the config sets arrives, the rest
    is the settings type's default (and the default study's embedded model is the one already cached)."""
    from study.prepare import embedded_spec
    from trainables.embedded import EmbeddedSpec
    from trainables.trial.setup import TrainSettings

    assert embedded_spec(load_config()) == EmbeddedSpec()
    cfg = load_config(write(tmp_path, "embedded:\n  hidden_size: 64\n  seed: 2\n"))
    assert embedded_spec(cfg) == EmbeddedSpec(hidden_size=64, seed=2)
    cfg = load_config(write(tmp_path, "train:\n  steps: 40\n  max_grad_norm: 0.5\n  seed: 3\n"))
    budget = {f: getattr(cfg.train, f) for f in STUDY_BUDGET["train"] if f != "steps"}  # the default study's own
    assert TrainSettings(**cfg.train.model_dump()) == TrainSettings(steps=40, max_grad_norm=0.5, seed=3, **budget)


def _bool_fields(model, prefix=()):
    """The dotted key of every boolean setting of a config model and its sections."""
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        section = field.annotation if isinstance(field.annotation, type) else None
        if section is not None and issubclass(section, BaseModel):
            yield from _bool_fields(section, (*prefix, name))
        elif isinstance(field.default, bool) or "bool" in str(field.annotation).lower():
            yield ".".join((*prefix, name))


@pytest.mark.parametrize("lax", ["no", "yes", 1, 0])
def test_every_boolean_setting_is_strict(lax):
    """One boolean type in every section (as trust_remote_code always was): "no" is not false, 1 is not true."""
    from study.config import StudyConfig

    keys = list(_bool_fields(StudyConfig))
    assert {"trust_remote_code", "front.include_degenerate", "front.include_diverged", "mmie_eval.enabled",
            "robustness.relearn", "embedded.train_on_data"} <= set(keys), keys
    for key in keys:
        with pytest.raises(ConfigError, match=key.replace(".", "\\.")):
            load_config(overrides={key: lax})


def test_a_short_study_scales_the_default_grace_period():
    """The default scheduler's grace period (30 of the default 60 steps) is half of a shorter study's steps;
    one the config gives is kept and checked; a study too short for any rung blames --steps, not <defaults>."""
    assert load_config().scheduler.grace_period == 30
    assert load_config(overrides={"train.steps": 25}).scheduler.grace_period == 12
    assert load_config(overrides={"train.steps": 2}).scheduler.grace_period == 1
    assert load_config(overrides={"train.steps": 25, "scheduler.grace_period": 10}).scheduler.grace_period == 10
    with pytest.raises(ConfigError, match=r"--steps: train\.steps: 1 step leaves the moasha scheduler no rung") as e:
        load_config(overrides={"train.steps": 1}, flags={"train.steps": "--steps"})
    assert "<defaults>" not in str(e.value)


def test_own_data_files_of_one_name_are_refused_for_the_embedded_build(tmp_path):
    """The embedded build names each pretraining set after its file: hi/train.jsonl and en/train.jsonl would be
    one set, the model silently pretrained on one of them."""
    from study.prepare import embedded_spec

    for lang in ("hi", "en"):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "train.jsonl").write_text('{"text": "x"}\n')
    text = (f"embedded: {{train_on_data: true}}\n"
            f"data: {{forget: {tmp_path / 'hi' / 'train.jsonl'}, retain: {tmp_path / 'en' / 'train.jsonl'}}}\n")
    with pytest.raises(ConfigError, match="same file name"):
        embedded_spec(load_config(write(tmp_path, text)))


def test_the_first_config_a_process_reads_narrows_the_learning_rates():
    """In a fresh interpreter nothing has registered the variants yet, as in the CLI's first read: the default study
    must still get DEFAULT_SEARCH_SPACE's learning rates (it once searched every knob's whole range, 1e-5 to 1e-2,
    from the command line while every in-process test saw the narrowed space)."""
    import subprocess
    import sys

    code = ("from study.config import load_config\n"
            "print(sorted(load_config(overrides={'study': 'x'}).search.space))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[0] == "['lr', 'lr_forget', 'lr_retain']"
