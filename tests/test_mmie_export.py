"""Exports that mmie.py's own parser accepts and that mean what was tuned.

The parser is built from mmie.py's flag table (tests/mmie_flags.py) with prefix matching off. Every registered
variant on every adapter is exported, its command parsed, and the parsed values compared with the trial's; a
search space restricted to what mmie.py expresses (search.mmie_expressible) yields only exact exports.
"""

import shlex

import optuna
import pytest
from mmie_flags import ParseError, mmie_parser

from study.config import load_config
from study.results import mmie_command as mmie
from study.results.export import MMIE_UPDATES_PER_STEP, mmie_command, mmie_problems
from study.results.front import StudyRecord, TrialRecord
from study.space import SearchSpace
from trainables.methods.registry import ADAPTERS, GATES, VARIANTS, get_variant
from trainables.model.decoder_layers import ModelSize

STEPS = 40
CONFIG = {"model": "/models/qwen", "data.forget": "hi.jsonl", "data.retain": "en.jsonl", "data.mixed": "mix.jsonl",
          "data.adversarial": "adv.jsonl", "data.xlang": "['ur.jsonl', 'bn.jsonl']", "train.batch_size": "16", "train.max_len": "256",
          "train.lr_schedule": "warmup_cosine", "train.warmup_ratio": "0.1", "train.max_grad_norm": "1.0"}

# The embedded default's study: two decoder layers (a real model's depth is read from its config.json).
EMBEDDED = {"model": "embedded", "data": "None", "embedded.forget": "hi", "embedded.retain": "en",
            "embedded.num_layers": "2", **{k: v for k, v in CONFIG.items() if k.startswith("train.")}}


def _record(config=CONFIG) -> StudyRecord:
    return StudyRecord(study="s", tracking_uri="sqlite:///x.db", parent_run_id="p", objectives=["forget_efficacy",
                       "utility"], steps=STEPS, seed=5, config=dict(config))


def _off_default(knob):
    """A value other than the default where the knob allows one, so a dropped flag shows."""
    knob = knob.for_model(ModelSize(num_layers=2, hidden_size=128))  # layer knobs: the embedded model's layers
    if knob.choices is not None:
        return knob.choices[-1] if knob.choices[-1] != knob.default else knob.choices[0]
    return round((knob.low + knob.high) / 2, 6) if not knob.integer else int((knob.low + knob.high) // 2)


def _trial(variant_name: str, adapter: str | None, values=_off_default) -> TrialRecord:
    variant = get_variant(variant_name)
    params = {"variant": variant_name}
    knobs = variant.knobs()
    if variant.trains and variant.adapter is None:
        params["adapter"] = adapter
        knobs += ADAPTERS.get(adapter).knobs
    params |= {k.name: values(k) for k in knobs}
    return TrialRecord(run_id="r", trial_id="t", status="completed", params=params, metrics={}, pareto=True,
                       pareto_rank=0)


def _parse(command: str):
    argv = shlex.split(command)
    assert argv[:2] == ["python", "mmie.py"]
    return mmie_parser().parse_args(argv[2:])


CASES = [(v, a) for v in sorted(VARIANTS) for a in (ADAPTERS.names() if VARIANTS[v].trains and not VARIANTS[v].adapter
                                                    else [None])]
CASES += [(f"ga+{g}", "lora") for g in GATES.names()]


@pytest.mark.parametrize("variant,adapter", CASES)
def test_every_variant_exports_to_a_command_the_parser_accepts(variant, adapter):
    trial = _trial(variant, adapter)
    args = _parse(mmie_command(_record(), trial))  # raises ParseError on an unknown, abbreviated or ill-typed flag
    p = trial.params
    assert (args.model, args.forget, args.retain, args.mixed) == ("/models/qwen", "hi.jsonl", "en.jsonl", "mix.jsonl")
    assert args.xlang == ["ur.jsonl", "bn.jsonl"] and args.seeds == [5] and args.adversarial == "adv.jsonl"
    v = get_variant(variant)
    if v.trains and mmie.steps_flag(v, p):
        steps = args.lora_steps if mmie.steps_flag(v, p) == "--lora_steps" else args.reft_steps
        assert steps == MMIE_UPDATES_PER_STEP * STEPS
    if "lr" in p and abs(p["lr"] - 2e-4) > 1e-12:
        assert args.dual_optimizer and args.lr_forget == args.lr_retain == pytest.approx(p["lr"])
    if "lr_forget" in p:
        assert args.dual_optimizer and (args.lr_forget, args.lr_retain) == pytest.approx((p["lr_forget"], p["lr_retain"]))
    if v.objective in ("ga", "mmie_npo"):
        assert args.forget_obj == {"ga": "ga", "mmie_npo": "npo"}[v.objective]
    if "forget_reweight" in v.weightings:
        assert args.forget_reweight
    if "use_curriculum" in v.weightings:
        assert args.use_curriculum and args.curriculum_stages == pytest.approx([p["curriculum_s1"], p["curriculum_s2"]])
    if adapter in ("lora", "reft"):
        assert args.rank == int(p["rank"])
    if adapter == "reft":
        layers = [int(i) for i in str(p["layers"]).split(",")]
        assert args.force_layers == layers and args.select_top_k >= len(layers)
        assert args.reft_gated == (p["reft_gated"] == "on") and args.reft_negative == (p["reft_negative"] == "on")
    if v.gate == "sae_gate":
        assert args.sae_gate and args.sae_gate_alpha == pytest.approx(p["sae_gate_alpha"])
        assert args.sae_gate_topk == int(p["n_features"]) and args.sae_feature_picker == "activation"
    # What every export carries: full precision (no study trained 8-bit), the study's voters (all five without a
    # voter setting), token KL reported, the CPU the study ran on.
    assert args.no_quantization and args.use_xlmr and args.use_fasttext and args.report_token_kl
    assert args.device == "cpu"


def test_what_mmie_cannot_express_is_named_and_what_it_can_is_exact():
    record = _record()
    default = lambda k: k.default  # noqa: E731
    # mmie.py's own default arm: its pieces are exact; what remains is the training step (padding, batch order),
    # each named with its size where the settings give it. The warm-up is mmie.py's (lr·u/w from 0), so not listed.
    assert mmie.problems(get_variant("ga"), _trial("ga", "lora", default).params) == []
    assert mmie.problems(get_variant("dualoptim"), _trial("dualoptim", "reft", default).params) == []
    remaining = mmie_problems(_record(EMBEDDED), _trial("ga", "lora", default))
    assert [d.split(":")[0] for d in remaining] == ["padding", "batches"]
    padded = _record(EMBEDDED | {"train.padding": "mmie"})  # a study that trained with mmie.py's padding
    assert [d.split(":")[0] for d in mmie_problems(padded, _trial("ga", "lora", default))] == ["batches"]
    notes = " ".join(mmie_problems(record, _trial("loreun", "lora", default)))
    assert "loreun" in notes and "--forget_reweight" in notes
    # lr 2e-4 is hard-coded in mmie.py's single AdamW; the command reaches another only through --dual_optimizer
    lr_note = [n for n in mmie_problems(record, _trial("ga", "lora")) if n.startswith("adamw")]
    assert lr_note and "two AdamW states" in lr_note[0] and "no flag" not in lr_note[0]
    assert "docs/mmie.md" in lr_note[0] and "dualoptim" in lr_note[0]  # where its size is, and what avoids it
    assert any("retain_freq" in n for n in mmie_problems(record, _trial("dualoptim", "lora")))
    assert any("target_modules" in n for n in mmie_problems(record, _trial("ga", "lora")))
    assert any("loreft" in n for n in mmie_problems(record, _trial("ga", "loreft", default)))
    nll = _trial("ga", "lora", default)
    nll.params["retain_objective"] = "nll"
    assert any("KL" in n for n in mmie_problems(record, nll))
    small = _record(CONFIG | {"train.batch_size": "32"})
    assert any("batch_size" in n for n in mmie_problems(small, _trial("ga", "lora", default)))


def test_mmie_expressible_space_samples_only_exact_exports():
    cfg = load_config(None, {"variants": sorted(VARIANTS), "adapters": ADAPTERS.names(),
                             "retain_objectives": ["kl", "nll"], "search.mmie_expressible": True})
    space = SearchSpace(cfg)
    assert "loreun" not in space.variants and "sine_bounded" not in space.variants and "npo" not in space.variants
    assert "forget_reweight" in space.variants and space.adapters == ["lora", "reft"] and space.retains == ["kl"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        constants = space(trial)
        params = trial.params | constants
        study.tell(trial, 0.0)
        record_trial = TrialRecord(run_id="r", trial_id="t", status="completed", params=params, metrics={},
                                   pareto=True, pareto_rank=0)
        variant = get_variant(params["variant"])
        assert mmie.problems(variant, params) == [], params
        _parse(mmie_command(_record(), record_trial))
        seen.add(params["variant"])
    assert len(seen) >= 4


def test_mmie_expressible_with_nothing_expressible_is_a_config_error():
    with pytest.raises(ValueError, match="mmie_expressible"):
        load_config(None, {"variants": ["loreun"], "search.mmie_expressible": True})


def test_an_abbreviated_flag_is_rejected_by_the_parser_model():
    # The parser model must fail where argparse's prefix matching would silently accept (--bound).
    with pytest.raises(ParseError):
        mmie_parser().parse_args(["--model", "m", "--forget", "f", "--retain", "r", "--mixed", "x", "--bound", "3"])


# ---- issue 22: the command runs where and how the study ran ---------------------------------------------------



def test_precision_follows_the_study_and_8bit_is_refused_without_cuda():
    from study.config import ConfigError
    from study.prepare import check_quantization

    ga = _trial("ga", "lora")
    assert _parse(mmie_command(_record(), ga)).no_quantization  # mmie.py loads 8-bit on CUDA unless told not to
    int8 = _record(CONFIG | {"quantization": "int8", "resources.gpus_per_trial": "1"})
    args = _parse(mmie_command(int8, ga))
    assert not args.no_quantization and args.device == "cuda"  # mmie.py's default: 8-bit, on CUDA
    with pytest.raises(ValueError, match="quantization: int8 loads the model 8-bit through bitsandbytes, which runs "
                                         "on CUDA only: set resources.gpus_per_trial"):
        load_config(None, {"quantization": "int8"})
    with pytest.raises(ValueError, match="8-bit weights cannot be trained"):
        load_config(None, {"quantization": "int8", "resources.gpus_per_trial": 1, "robustness.relearn_params": "all"})
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the 8-bit study is not refused here")
    cfg = load_config(None, {"quantization": "int8", "resources.gpus_per_trial": 1})
    with pytest.raises(ConfigError, match="quantization: int8 .* this machine has no CUDA"):
        check_quantization(cfg, address=None)
    check_quantization(cfg, address="10.0.0.1:6379")  # a cluster's workers may have CUDA


def test_8bit_loading_is_refused_on_a_cpu_device():
    from trainables.model.loading import load_model

    with pytest.raises(ValueError, match="CUDA only"):
        load_model("/nonexistent", quantization="int8", device="cpu")
    with pytest.raises(ValueError, match="quantization 'int4'"):
        load_model("/nonexistent", quantization="int4")


def test_language_id_voters_follow_the_studys_setting():
    ga = _trial("ga", "lora")
    three = _record(CONFIG | {"mmie_eval.use_xlmr": "False", "mmie_eval.use_fasttext": "False"})
    args = _parse(mmie_command(three, ga))
    assert not args.use_xlmr and not args.use_fasttext
    cld3 = _parse(mmie_command(_record(CONFIG | {"mmie_eval.use_xlmr": "True", "mmie_eval.use_fasttext": "False"}), ga))
    assert cld3.use_xlmr and not cld3.use_fasttext


def test_layer_flags_fit_a_two_layer_model_and_negative_reft_layers_resolve():
    default = lambda k: k.default  # noqa: E731
    embedded = _record(EMBEDDED)
    args = _parse(mmie_command(embedded, _trial("ga", "lora", default)))
    # mmie.py's --min_layer 2 leaves no layer of 2; its probe layers 8 16 24 do not exist
    assert (args.min_layer, args.select_top_k, args.probe_layers) == (1, 1, [1])
    reft = _trial("ga", "reft", default)
    reft.params["layers"] = "-1"  # the study reads -1 as the last layer; mmie.py would drop it
    args = _parse(mmie_command(embedded, reft))
    assert args.force_layers == [1] and args.min_layer == 1 and args.select_top_k == 1
    reft.params["layers"] = "0,-1"
    assert _parse(mmie_command(embedded, reft)).force_layers == [0, 1]
    deep = _record(EMBEDDED | {"embedded.num_layers": "28"})
    args = _parse(mmie_command(deep, _trial("ga", "lora", default)))
    assert (args.min_layer, args.select_top_k, args.probe_layers) == (2, 3, [8, 16, 24])  # its defaults fit
    assert any("depth could not be read" in p for p in mmie_problems(_record(), _trial("ga", "lora", default)))


def test_device_follows_the_study():
    ga = _trial("ga", "lora")
    assert _parse(mmie_command(_record(CONFIG | {"resources.gpus_per_trial": "0.5"}), ga)).device == "cuda"
    assert _parse(mmie_command(_record(CONFIG | {"resources.gpus_per_trial": "0"}), ga)).device == "cpu"


def test_mmie_gates_pick_names_the_gates_it_checked():
    from study.results.export import describe_pick

    text = describe_pick("mmie-gates", 0.5)
    assert "G1_ES50, G1S_ES50_sem, G2_PPL10, G3_MIX30, G3S_MIX30_sem" in text and "utility >= 0.5" in text
    assert "not checked: G4_NoRedistrib, G5_NoXLeak, G6_MIA0, G7_AdvES" in text
