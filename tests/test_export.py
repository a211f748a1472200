"""study.results.front and study.results.export on a real local MLflow store built by hand the way a study leaves it (parent run,
child runs with tags, string params and per-step metrics): no Ray, no training.

The trials, objectives (forget_efficacy, utility) final values:
    ga       lora    completed      (0.90, 0.50)  front
    adaptive lora    completed      (0.75, 0.70)  front, the knee
    npo      lora    completed      (0.60, 0.80)  front
    bounded  lora    completed      (0.50, 0.60)  dominated
    ga       loreft  diverged       (0.30, 0.95)  off the front unless the study includes diverged trials
    sine     (own)   completed      (0.20, 0.90)  front (dominated by loreft when diverged trials count)
    ga       lora    stopped_early  (0.99, 0.99)  partial values: must never count
    npo      lora    error          (0.95, 0.99)  must never count
"""

import inspect
import json
import shlex
from datetime import datetime, timezone

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mmie_flags import mmie_parser

from study.pareto import dominates
from study.results.export import export_config, pick
from study.results.front import format_front, front_table, load_study
from trainables import adaptive_unlearning
from trainables.adaptive_unlearning import run_config
from trainables.methods.registry import ADAPTERS, get_variant
from trainables.trial.status import FINAL_STATUSES

PARENT_PARAMS = {
    "study": "s1", "model": "embedded", "data": "None", "embedded.forget": "hi", "embedded.retain": "en",
    "train.steps": "3", "train.batch_size": "4", "train.max_len": "32", "train.seed": "7", "train.max_grad_norm": "1.0",
    "utility_floor": "None", "code_version": "abc123+dirty", "package_version": "0.1.0",
}
LORA = {"adapter": "lora", "rank": "8", "target_modules": "q_proj,v_proj"}
TRIALS = [  # trial id, status, params, final (forget_efficacy, utility)
    ("ga", "completed", {"variant": "ga", "lr": "0.001", **LORA}, (0.9, 0.5)),
    ("adaptive", "completed", {"variant": "adaptive", "bound": "5.0", "temperature": "1.0", "lr_forget": "0.0003",
                               "lr_retain": "0.0001", "retain_freq": "2", **LORA}, (0.75, 0.7)),
    ("npo", "completed", {"variant": "npo", "beta": "0.1", "lr": "0.0002", **LORA}, (0.6, 0.8)),
    ("bounded", "completed", {"variant": "bounded", "bound": "2.5", "lr": "0.0005", **LORA}, (0.5, 0.6)),
    ("loreft", "diverged", {"variant": "ga", "lr": "0.002", "adapter": "loreft", "rank": "4", "layers": "0,1"},
     (0.3, 0.95)),
    ("sine", "completed", {"variant": "sine_bounded", "lr": "0.0004", "rank": "8", "omega": "10.0", "gain": "20.0"},
     (0.2, 0.9)),
    ("stopped", "stopped_early", {"variant": "ga", "lr": "0.003", **LORA}, (0.99, 0.99)),
    ("error", "error", {"variant": "npo", "beta": "0.2", "lr": "0.0001", **LORA}, (0.95, 0.99)),
]
FRONT = ["ga", "adaptive", "npo", "sine"]


def _log_trial(client, exp, parent, start, trial_id, status, params, final):
    run = client.create_run(exp, start_time=start, tags={"mlflow.parentRunId": parent, "trial_id": trial_id,
                                                         "trial_status": status, "pareto": "false",
                                                         "pareto_rank": "none"})
    history = [(0.0, 1.0), (final[0] / 2, 1.1), final]  # the last step's values are the final ones
    metrics = [Metric(name, value, 0, step) for step, (fe, ut) in enumerate(history)
               for name, value in (("forget_efficacy", fe), ("utility", ut), ("step", step + 1))]
    metrics += [Metric("es_forget", 0.1, 0, 2), Metric("xlang_utility", 0.8, 0, 2)]
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory, mlflow_store):
    """(tracking URI, first parent run id, {trial id: run id}); a later second parent run with one trial."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        uri = mlflow_store(tmp_path_factory.mktemp("mlflow"))
        client = MlflowClient(uri)
        exp = client.create_experiment("s1")
        tags = {"role": "study", "objectives": "forget_efficacy,utility", "study_steps": "3", "study_seed": "7"}
        parent = client.create_run(exp, start_time=1_000, tags=tags).info.run_id
        client.log_batch(parent, params=[Param(k, v) for k, v in PARENT_PARAMS.items()])
        runs = {t[0]: _log_trial(client, exp, parent, 1_001 + i, *t) for i, t in enumerate(TRIALS)}
        client.set_tag(runs["npo"], "pareto", "true")
        client.set_tag(runs["npo"], "pareto_rank", "0")
        rerun = client.create_run(exp, start_time=5_000, tags=tags).info.run_id
        client.log_batch(rerun, params=[Param(k, v) for k, v in PARENT_PARAMS.items()])
        _log_trial(client, exp, rerun, 5_001, *TRIALS[0])
        yield uri, parent, runs


@pytest.fixture
def record(store, monkeypatch, embedded):  # the study ran on the embedded default, whose files an export reads
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri, parent, _ = store
    return load_study(uri, "s1", parent_run_id=parent)


def trial(record, trial_id):
    return next(t for t in record.trials if t.trial_id == trial_id)


# ---- reading a study back --------------------------------------------------------------------------------------


def test_load_study_reads_parent_and_trials_with_types(record, store):
    uri, parent, runs = store
    assert (record.study, record.tracking_uri, record.parent_run_id) == ("s1", uri, parent)
    assert (record.objectives, record.steps, record.seed) == (["forget_efficacy", "utility"], 3, 7)
    assert record.config["model"] == "embedded" and record.config["code_version"] == "abc123+dirty"
    assert [t.trial_id for t in record.trials] == [t[0] for t in TRIALS]  # in start order
    npo = trial(record, "npo")
    assert npo.run_id == runs["npo"] and npo.status == "completed"
    assert npo.params == {"variant": "npo", "beta": 0.1, "lr": 0.0002, "adapter": "lora", "rank": 8,
                          "target_modules": "q_proj,v_proj"}
    assert npo.metrics["forget_efficacy"] == 0.6 and npo.metrics["utility"] == 0.8 and npo.metrics["step"] == 3
    assert (npo.pareto, npo.pareto_rank) == (True, 0)
    assert (trial(record, "ga").pareto, trial(record, "ga").pareto_rank) == (False, None)
    assert trial(record, "loreft").params["layers"] == "0,1"
    assert trial(record, "sine").adapter == "sine_lora"  # a variant that is its adapter logs none


def test_load_study_defaults_to_the_latest_parent_run(store):
    uri, parent, _ = store
    latest = load_study(uri, "s1")
    assert latest.parent_run_id != parent and [t.trial_id for t in latest.trials] == ["ga"]


def test_load_study_errors_name_the_study_and_uri(store):
    uri, _, runs = store
    with pytest.raises(ValueError, match=r"no study 'nope'.*" + uri):
        load_study(uri, "nope")
    with pytest.raises(ValueError, match="no parent run 'missing' in study 's1'"):
        load_study(uri, "s1", parent_run_id="missing")
    with pytest.raises(ValueError, match="no parent run"):  # a child run is not a parent run
        load_study(uri, "s1", parent_run_id=runs["ga"])


# ---- the front -------------------------------------------------------------------------------------------------


def brute_force_front(record):
    eligible = [t for t in record.trials if t.status == "completed"]
    point = {t.trial_id: [t.metrics[o] for o in record.objectives] for t in eligible}
    return {a for a in point if not any(dominates(point[b], point[a]) for b in point)}


def test_front_matches_brute_force_and_ignores_unfinished_trials(record):
    rows = front_table(record)
    assert [r["trial_id"] for r in rows] == FRONT  # sorted by forget_efficacy, highest first
    assert {r["trial_id"] for r in rows} == brute_force_front(record)
    assert rows[0] == {"trial_id": "ga", "status": "completed", "variant": "ga", "adapter": "lora",
                       "forget_efficacy": 0.9, "utility": 0.5, "mmie_gates": "unknown", "mmie_verdict": "unknown",
                       "degenerate": False, "diverged": False, "lr": 0.001, "rank": 8, "target_modules": "q_proj,v_proj",
                       "lora_alpha": 16, "knee": False, "knee_distance": 0.3143}
    assert rows[3]["adapter"] == "sine_lora" and "loreft" not in {r["trial_id"] for r in rows}
    assert set(FINAL_STATUSES) == {"completed", "diverged"}  # final values; diverged ones still off by default


def test_front_includes_diverged_trials_only_where_the_study_asks(record):
    record.config["front.include_diverged"] = "True"
    rows = front_table(record)
    assert [r["trial_id"] for r in rows] == ["ga", "adaptive", "npo", "loreft"]
    assert rows[3]["adapter"] == "loreft" and rows[3]["layers"] == "0,1"


def test_front_with_unfinished_trials_and_study_floor(record):
    assert [r["trial_id"] for r in front_table(record, completed_only=False)] == ["stopped"]
    record.config["utility_floor"] = "0.6"  # the study's own floor drops ga (utility 0.5)
    assert [r["trial_id"] for r in front_table(record)] == ["adaptive", "npo", "sine"]


def test_format_front_has_every_column(record):
    text = format_front(front_table(record))
    header, *lines = text.splitlines()
    assert header.split()[:6] == ["trial_id", "status", "variant", "adapter", "forget_efficacy", "utility"]
    assert {"bound", "temperature", "omega", "beta"} <= set(header.split()) and len(lines) == len(FRONT)
    assert format_front([]) == "(no trial on the front)"


# ---- picking a trial -------------------------------------------------------------------------------------------


def test_pick_knee_and_max_forget(record):
    # the knee (study.pareto.knee): gaps to the ideal (0.9, 0.9) as shares of it, adaptive's (0.17, 0.22) the least
    assert pick(record).trial_id == "adaptive"
    assert [r["trial_id"] for r in front_table(record) if r["knee"]] == ["adaptive"]
    assert pick(record, "max-forget", min_utility=0.75).trial_id == "npo"
    assert pick(record, "max-forget", min_utility=0.85).trial_id == "sine"  # stopped/error (0.99) ignored
    assert pick(record, "knee", variant="bounded").trial_id == "bounded"


def test_pick_takes_a_diverged_trial_only_when_asked(record):
    with pytest.raises(ValueError, match="best has 0.9"):
        pick(record, "max-forget", min_utility=0.92)  # loreft (0.95) diverged
    assert pick(record, "max-forget", min_utility=0.92, include_diverged=True).trial_id == "loreft"
    assert pick(record, "max-forget", min_utility=0.6, variant="ga", include_diverged=True).trial_id == "loreft"


def test_pick_never_takes_a_degenerate_trial(record):
    trial(record, "npo").metrics["degenerate"] = 1.0
    record.config["front.include_degenerate"] = "True"  # even where the study's front shows them
    assert "npo" in {r["trial_id"] for r in front_table(record)}
    assert pick(record).trial_id != "npo"
    with pytest.raises(ValueError, match="no completed, non-degenerate trial of variant 'npo'"):
        pick(record, variant="npo")


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, float("nan")])
def test_pick_rejects_min_utility_outside_unit_interval(record, bad):
    with pytest.raises(ValueError, match="--min-utility"):
        pick(record, "max-forget", min_utility=bad)


def test_pick_says_when_nothing_qualifies(record):
    with pytest.raises(ValueError, match="--min-utility is required"):
        pick(record, "max-forget")
    with pytest.raises(ValueError, match="utility >= 0.99.*best has 0.9"):
        pick(record, "max-forget", min_utility=0.99)
    with pytest.raises(ValueError, match="variant 'dualoptim'.*variants with such trials: adaptive, bounded, ga"):
        pick(record, variant="dualoptim")
    with pytest.raises(ValueError, match="unknown pick 'best'"):
        pick(record, "best")
    # a variant that does not exist is named as such, not as one without trials (issue 26)
    with pytest.raises(ValueError, match="--variant 'adaptve': no such variant \\(unknown variant 'adaptve'.*this "
                                         "study's trials ran: adaptive, bounded, ga, npo, sine_bounded"):
        pick(record, variant="adaptve")


# ---- exporting it ----------------------------------------------------------------------------------------------


def flags(command: str) -> dict[str, list[str]]:
    """mmie flags and their values, from a command line that mmie.py's parser (its flag table, no prefix
    matching) accepts."""
    tokens = shlex.split(command)
    assert tokens[:2] == ["python", "mmie.py"]
    mmie_parser().parse_args(tokens[2:])  # raises on a flag mmie.py lacks, an abbreviation or a bad value
    out: dict[str, list[str]] = {}
    for token in tokens[2:]:
        if token.startswith("--"):
            out[token] = []
            last = token
        else:
            out[last].append(token)
    return out


def export(record, trial_id, tmp_path):
    out = tmp_path / trial_id
    config = export_config(record, trial(record, trial_id), out)
    assert json.loads((out / "config.json").read_text()) == config
    return config


def assert_runs_unchanged(config):
    """The kwargs bind to run_config and to the named entry point, and none is swallowed unused by **knobs."""
    kwargs, adapter = config["kwargs"], config["adapter"]
    inspect.signature(run_config).bind(None, None, [], [], adapter=adapter, **kwargs)
    entry = getattr(adaptive_unlearning, config["entry_point"])
    if config["entry_point"] == "train_reft_adaptive":
        inspect.signature(entry).bind(None, None, config["args"]["layers"], [], [], **kwargs)
    elif config["entry_point"] == "train_lora_adaptive":
        inspect.signature(entry).bind(None, None, [], [], **kwargs)
    variant = get_variant(kwargs["variant"])
    knobs = {k.name for k in variant.knobs()} | {k.name for k in ADAPTERS.get(adapter).knobs}
    named = {n for n, p in inspect.signature(run_config).parameters.items() if p.kind is not p.VAR_KEYWORD}
    assert set(kwargs) <= named | knobs


def test_export_lora_ga(record, tmp_path, store, embedded):
    config = export(record, "ga", tmp_path)
    assert_runs_unchanged(config)
    assert (config["entry_point"], config["adapter"], config["args"]) == ("train_lora_adaptive", "lora", {})
    # A study logged before the schedule existed trained at a constant learning rate.
    assert config["kwargs"] == {"variant": "ga", "steps": 3, "bs": 4, "max_len": 32, "seed": 7, "use_curriculum": False,
                                "max_grad_norm": 1.0, "lr_schedule": "constant", "warmup_ratio": 0.0,
                                "retain_objective": "kl", "lr": 0.001, "rank": 8, "target_modules": "q_proj,v_proj",
                                "lora_alpha": 16}
    assert config["metrics"] == {"forget_efficacy": 0.9, "utility": 0.5, "es_forget": 0.1, "xlang_utility": 0.8}
    p = config["provenance"]
    assert (p["study"], p["parent_run_id"], p["run_id"], p["trial_id"]) == ("s1", store[1], store[2]["ga"], "ga")
    assert (p["tracking_uri"], p["code_version"], p["package_version"], p["seed"]) == (store[0], "abc123+dirty",
                                                                                      "0.1.0", 7)
    assert datetime.fromisoformat(p["exported_at"]).tzinfo == timezone.utc
    f = flags(config["mmie_command"])
    # mmie.py counts forget and retain updates alike: 3 steps are 6 of its steps; its other arm keeps its default.
    assert f["--forget_obj"] == ["ga"] and f["--lora_steps"] == ["6"] and "--reft_steps" not in f
    assert f["--rank"] == ["8"] and f["--seeds"] == ["7"]
    # No --lr in mmie.py: a learning rate other than its 2e-4 goes through --dual_optimizer.
    assert f["--dual_optimizer"] == [] and f["--lr_forget"] == f["--lr_retain"] == ["0.001"]
    # the embedded default's model, and the lines the trial trained on, written beside the command
    out = (tmp_path / "ga").resolve()
    assert f["--model"] == [str(embedded.model_dir)] and f["--forget"] == [str(out / "data" / "forget.jsonl")]
    assert f["--retain"] == [str(out / "data" / "retain.jsonl")] and f["--mixed"] == [str(out / "data" / "mixed.jsonl")]
    assert f["--xlang"] == [str(out / "data" / "xlang" / f"{c}.jsonl") for c in ("ur", "pa", "bn")]
    assert config["mmie_exact"] is False
    for expected in ("target_modules", "lr = 0.0002", "batch_size = 16"):
        assert expected in config["note"]
    # the training step (a study at a constant learning rate has no warm-up to differ), and the embedded tokenizer's
    # BOS before every training line
    kinds = [d.split(":")[0] for d in config["mmie_differences"]]
    assert {"padding", "batches", "special tokens"} <= set(kinds) and "warm-up" not in kinds, kinds
    # max_len 32: lines longer than that are cut at the other end in mmie.py (left truncation), counted
    assert any(d.startswith("truncation: ") and "longer than 32 tokens" in d for d in config["mmie_differences"])
    # what the command really runs, and what mmie.py answers whatever it measures
    assert "lr 0.001 runs as --dual_optimizer --lr_forget 0.001 --lr_retain 0.001" in config["note"]
    assert "two AdamW states" in config["note"] and "every arm's decision is STOP" in config["note"]
    assert "the dualoptim variant trains what the command runs" in config["note"]
    # a CPU study: where the command runs, what it costs there, and mmie.py's CPU crash
    assert f["--device"] == ["cpu"] and "contextlib.nullcontext()" in config["note"] and "--no_mia" in config["note"]
    assert "--reft_steps 0" in config["note"] and "7 minutes on 2 cores" in config["note"]
    # a 2-layer model: a layer left for mmie.py's selection, probes on layers it has
    assert f["--min_layer"] == ["1"] and f["--select_top_k"] == ["1"] and f["--probe_layers"] == ["1"]
    assert {"--no_quantization", "--report_token_kl", "--use_xlmr", "--use_fasttext"} <= set(f)
    script = (tmp_path / "ga" / "mmie_command.sh").read_text()
    assert "FASTTEXT_LID_PATH naming lid.176.bin" in script


def test_export_writes_the_lines_the_trial_trained_on(record, tmp_path, embedded):
    from trainables.data import load_study_data, read_jsonl
    from trainables.trial.setup import TrialSetup

    config = export(record, "ga", tmp_path)
    f = flags(config["mmie_command"])
    study = load_study_data(embedded.data_paths("hi", "en"), seed=7, heldout=TrialSetup.heldout)
    for flag, name in (("--forget", "forget"), ("--retain", "retain"), ("--mixed", "mixed"),
                       ("--adversarial", "adversarial")):
        # line i of the file mmie.py reads is the study's training line i
        assert read_jsonl(f[flag][0]) == study.sets[name].train, name
        assert config["data"][name] == f"data/{name}.jsonl"
    assert [read_jsonl(p) for p in f["--xlang"]] == [study.sets[f"xlang_{c}"].train for c in ("ur", "pa", "bn")]
    # held-out and attack lines are not in it: mmie.py would train on lines the study measured or attacked with
    written = set(read_jsonl(f["--forget"][0]))
    assert not written & set(study.forget.heldout + study.forget.attack)
    assert config["study_data"]["forget"] == embedded.data_paths("hi", "en").forget


def test_mmie_gates_export_names_the_gates_it_checked(record, tmp_path):
    from study.results.export import describe_pick

    out = tmp_path / "gates"
    config = export_config(record, trial(record, "ga"), out, picked_by=describe_pick("mmie-gates"))
    checked, _, unchecked = config["picked_by"].partition("not checked:")
    assert all(g in checked for g in ("G1_ES50", "G1S_ES50_sem", "G2_PPL10", "G3_MIX30", "G3S_MIX30_sem"))
    assert all(g in unchecked and g not in checked for g in ("G4_NoRedistrib", "G5_NoXLeak", "G6_MIA0", "G7_AdvES"))
    assert config["note"].startswith("Picked: the highest forget_efficacy among trials passing mmie.py's gates")


def test_export_npo(record, tmp_path):
    config = export(record, "npo", tmp_path)
    assert_runs_unchanged(config)
    assert config["kwargs"]["beta"] == 0.1
    f = flags(config["mmie_command"])
    assert f["--forget_obj"] == ["npo"]  # the nearest: mmie.py's batch-mean NPO, named as not the same
    assert "mmie_npo" in config["note"] and config["mmie_exact"] is False


def test_export_adaptive(record, tmp_path):
    config = export(record, "adaptive", tmp_path)
    assert "no --forget_obj: mmie.py's lora arm trains its default objective, plain GA" in config["note"]
    assert_runs_unchanged(config)
    assert config["kwargs"]["use_curriculum"] is True and config["kwargs"]["retain_freq"] == 2
    f = flags(config["mmie_command"])
    assert f["--dual_optimizer"] == [] and f["--lr_forget"] == ["0.0003"] and f["--lr_retain"] == ["0.0001"]
    assert not {"--forget_reweight", "--use_curriculum", "--bounded_forget_bound"} & set(f)
    for piece in ("bounded:", "loreun:", "curriculum:", "retain_freq"):
        assert piece in config["note"]


def test_export_loreft(record, tmp_path):
    config = export(record, "loreft", tmp_path)
    assert_runs_unchanged(config)
    assert (config["entry_point"], config["args"]) == ("train_reft_adaptive", {"layers": [0, 1]})
    assert config["kwargs"]["rank"] == 4 and "layers" not in config["kwargs"]
    assert config["provenance"]["trial_status"] == "diverged"
    f = flags(config["mmie_command"])
    assert "--reft_steps" not in f and "--lora_steps" not in f  # mmie.py has no LoReFT to give steps to
    assert "not LoReFT" in config["note"]


def test_export_of_a_diverged_trial_stops_where_it_was_measured(record, tmp_path):
    trial(record, "loreft").metrics["step"] = 2.0  # diverged at step 2 of the study's 3
    config = export(record, "loreft", tmp_path)
    assert_runs_unchanged(config)
    assert config["kwargs"]["steps"] == 3 and config["kwargs"]["stop_at_step"] == 2
    assert "diverged at step 2 of 3" in config["note"] and "not this trial's run" in config["note"]
    assert "stop_at_step" not in export(record, "ga", tmp_path)["kwargs"]


def test_export_sine_runs_through_run_config(record, tmp_path):
    config = export(record, "sine", tmp_path)
    assert_runs_unchanged(config)
    assert (config["entry_point"], config["adapter"]) == ("run_config", "sine_lora")
    assert config["kwargs"]["omega"] == 10.0 and config["kwargs"]["gain"] == 20
    assert "mmie.py has no sine_lora adapter" in config["note"] and "no sine_lora arm: both its arms" in config["note"]


def test_export_with_data_files_quotes_paths(record, tmp_path, embedded, monkeypatch):
    from trainables.data import read_jsonl, write_jsonl

    monkeypatch.chdir(tmp_path)  # the study's relative paths are read from where it ran
    source = embedded.data_paths("hi", "en")
    for name, path in (("data/hi forget.jsonl", source.forget), ("data/en.jsonl", source.retain),
                       ("data/ur.jsonl", source.xlang[0]), ("data/it's.jsonl", source.xlang[1])):
        write_jsonl(tmp_path / name, read_jsonl(path)[:300])
    del record.config["data"]  # flattened: data.forget, data.retain, ...
    record.config.update({"model": "Qwen/Qwen2.5-1.5B-Instruct", "data.forget": "data/hi forget.jsonl",
                          "data.retain": "data/en.jsonl", "data.mixed": "None",
                          "data.xlang": "['data/ur.jsonl', \"data/it's.jsonl\"]"})
    config = export(record, "ga", tmp_path / "out")
    f = flags(config["mmie_command"])
    out = (tmp_path / "out" / "ga").resolve()
    assert f["--model"] == ["Qwen/Qwen2.5-1.5B-Instruct"] and f["--forget"] == [str(out / "data" / "forget.jsonl")]
    assert f["--xlang"] == [str(out / "data" / "xlang" / "ur.jsonl"), str(out / "data" / "xlang" / "it_s.jsonl")]
    assert config["study_data"]["xlang_it_s"] == str(tmp_path / "data" / "it's.jsonl")
    # mmie.py requires --mixed: a placeholder, named in the note
    assert f["--mixed"] == ["MIXED_FILE"] and "MIXED_FILE" in config["note"]
    assert "not measured" in config["note"]  # the tokenizer (BOS, truncation) is not on this machine
    # said from the cache and a 5-second probe of the hub, not after transformers' minute of retries
    assert "not in the local Hugging Face cache" in config["note"]


def test_script_is_commented_provenance_then_the_command(record, tmp_path):
    record.study = "s1\nrm -rf ~"  # a hostile name must stay inside a comment
    config = export(record, "adaptive", tmp_path)
    script = tmp_path / "adaptive" / "mmie_command.sh"
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash" and lines[-1] == config["mmie_command"]
    assert lines[-3].startswith("# fastText needs FASTTEXT_LID_PATH")  # said right above the command
    assert all(line.startswith("#") for line in lines[:-1])
    assert "abc123+dirty" in script.read_text() and script.stat().st_mode & 0o111


def test_every_front_trial_exports_bindable_kwargs(record, tmp_path):
    for row in front_table(record):
        config = export_config(record, trial(record, row["trial_id"]), tmp_path / row["trial_id"])
        assert_runs_unchanged(config)
        flags(config["mmie_command"])
