"""Bad input, interrupted runs and unsafe defaults (issue 13): each case reproduced, each caught with a message that
names the file, line, key or flag, before Ray starts where it can; nothing lost, nothing silent."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import TEST_STUDY
from trainables.data import DataError, DataPaths, read_jsonl
from trainables.trial.status import TrialStatus
from trainables.trial.tracking import TrialRun


def _lines(path, texts, encoding="utf-8", bom=b""):
    path.write_bytes(bom + "".join(json.dumps({"text": t}) + "\n" for t in texts).encode(encoding))
    return path


# ---- 1. set names MLflow cannot take; a rejected batch keeps its valid metrics ----------------------------------


def test_xlang_set_names_are_valid_mlflow_keys_and_unique(tmp_path):
    from mlflow.utils.validation import _validate_metric_name

    paths = DataPaths(forget="f.jsonl", retain="r.jsonl",
                      xlang=("data/उर्दू.jsonl", "a+b.jsonl", "x/a b.jsonl", "y/a_b.jsonl", "urdu.jsonl"))
    names = list(paths.roles())[2:]
    assert names == ["xlang_1", "xlang_a_b", "xlang_a_b_2", "xlang_a_b_3", "xlang_urdu"]
    for name in names:
        _validate_metric_name(f"utility_{name}")
        _validate_metric_name(f"es_{name}")


def test_parent_run_keeps_each_set_s_file(tmp_path, mlflow_store):
    from study.config import load_config
    from study.tracking.parent_run import start_parent_run

    uri = mlflow_store(tmp_path)
    cfg = load_config(overrides={"data": {"forget": "hi.jsonl", "retain": "en.jsonl", "xlang": ["data/उर्दू.jsonl"]},
                                 "tracking_uri": "https://user:secret@mlflow.example"})
    client, _, parent = start_parent_run(uri, cfg, "study: default\n")
    params = client.get_run(parent).data.params
    assert params["set.xlang_1"] == "data/उर्दू.jsonl" and params["set.forget"] == "hi.jsonl"
    assert params["tracking_uri"] == "https://***@mlflow.example"


def test_a_batch_mlflow_rejects_keeps_its_valid_metrics(tmp_path, mlflow_store, capsys):
    uri = mlflow_store(tmp_path)
    client = MlflowClient(uri)
    exp = client.create_experiment("s", artifact_location=(tmp_path / "mlruns").as_uri())
    parent = client.create_run(exp).info.run_id
    run = TrialRun(uri, exp, parent, "t1", "trial-1", {"lr": 1e-3})
    for step in range(3):
        run.log({"utility": 1.0 - step / 10, "utility_xlang_उर्दू": 0.5, "step": step}, step)
    run.flush()
    run.finish(TrialStatus.COMPLETED)
    got = client.get_run(run.run_id)
    assert got.data.tags["trial_status"] == "completed" and got.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run.run_id, "utility")] == [1.0, 0.9, 0.8]
    assert got.data.metrics["step"] == 2
    assert got.data.tags["tracking_dropped_metrics"] == "utility_xlang_उर्दू"
    assert "rejected metric 'utility_xlang_उर्दू'" in capsys.readouterr().err


# ---- 5, 6, 11. text no tokenizer takes, undecodable files, a BOM, a directory ----------------------------------


def test_lone_surrogate_is_named_by_file_and_line(tmp_path):
    p = tmp_path / "retain.jsonl"
    p.write_text('{"text": "hello world"}\n{"text": "bad \\ud800 here"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"retain file .*retain.jsonl, line 2: .*lone UTF-16 surrogate"):
        read_jsonl(p, role="retain")


def test_undecodable_files_are_named_by_file_and_line(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"text": "ok"}\n{"text": "café"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"forget file .*latin.jsonl, line 2: not UTF-8 \(byte 0xe9"):
        read_jsonl(latin, role="forget")
    utf16 = _lines(tmp_path / "u16.jsonl", ["hello"], encoding="utf-16")
    with pytest.raises(DataError, match=r"u16.jsonl: is UTF-16 .*save it as UTF-8"):
        read_jsonl(utf16, role="forget")


def test_utf8_bom_is_accepted(tmp_path):
    p = _lines(tmp_path / "bom.jsonl", ["नमस्ते", "दुनिया"], bom=b"\xef\xbb\xbf")
    assert read_jsonl(p) == ["नमस्ते", "दुनिया"]


def test_a_directory_is_not_reported_missing(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_jsonl(tmp_path, role="forget")


# ---- 2. a failed or interrupted run never hides the finished study ---------------------------------------------

TAGS = {"role": "study", "objectives": "forget_efficacy,utility", "study_steps": "3", "study_seed": "0"}
PARAMS = {"study": "s", "model": "embedded", "data": "None", "embedded.forget": "hi", "embedded.retain": "en",
          "train.steps": "3", "train.batch_size": "4", "train.max_len": "32", "train.seed": "0",
          "train.max_grad_norm": "1.0", "utility_floor": "None", "code_version": "abc", "package_version": "0.1.0"}


@pytest.fixture
def study_store(tmp_path, mlflow_store, embedded):
    """A store holding one finished study with two completed ga trials: (uri, client, exp, parent). Its study ran on
    the embedded default (PARAMS), whose files an export reads: `embedded` builds them where no test did before."""
    from mlflow.entities import Metric, Param

    uri = mlflow_store(tmp_path)
    client = MlflowClient(uri)
    exp = client.create_experiment("s", artifact_location=(tmp_path / "mlruns").as_uri())
    parent = client.create_run(exp, start_time=1000, tags=TAGS).info.run_id
    client.log_batch(parent, params=[Param(k, v) for k, v in PARAMS.items()])
    for i, (fe, ut) in enumerate([(0.9, 0.5), (0.5, 0.9)]):
        run = client.create_run(exp, start_time=1001 + i, tags={"mlflow.parentRunId": parent, "trial_id": f"t{i}",
                                                                "trial_status": "completed"}).info.run_id
        client.log_batch(run, params=[Param("variant", "ga"), Param("lr", "0.001"), Param("adapter", "lora")],
                         metrics=[Metric("forget_efficacy", fe, 0, 3), Metric("utility", ut, 0, 3)])
        client.set_terminated(run, "FINISHED")
    client.set_terminated(parent, "FINISHED")
    return uri, client, exp, parent


def test_read_commands_take_the_latest_finished_parent_run_with_trials(study_store, tmp_path, monkeypatch, capsys):
    from study.cli import main

    uri, client, exp, finished = study_store
    monkeypatch.chdir(tmp_path)
    # A later run that failed before its trials and one interrupted with a trial: neither hides the study.
    failed = client.create_run(exp, start_time=5000, tags=TAGS).info.run_id
    client.set_terminated(failed, "FAILED")
    killed = client.create_run(exp, start_time=6000, tags=TAGS).info.run_id
    client.create_run(exp, start_time=6001, tags={"mlflow.parentRunId": killed, "trial_id": "k"})
    client.set_terminated(killed, "KILLED")
    assert main(["front", "--study", "s"]) == 0
    out = capsys.readouterr().out
    assert f"parent run {finished} (FINISHED, 2 trials)" in out and "2 front members" in out
    # With no finished run, a running one with trials is shown, with a warning.
    client.set_terminated(finished, "RUNNING")
    assert main(["front", "--study", "s"]) == 0
    captured = capsys.readouterr()
    assert "still RUNNING" in captured.err and f"parent run {finished} (RUNNING" in captured.out


def test_unreachable_address_fails_fast_before_the_parent_run(tmp_path, monkeypatch, capsys):
    import time

    from study.cli import main

    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    assert main(["run", "--address", "127.0.0.1:9"]) == 2
    assert "Ray cluster at 127.0.0.1:9 does not answer" in capsys.readouterr().err
    assert time.monotonic() - start < 10
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()


# ---- 4, 7, 8, 10, 15. config values that passed validation and failed later --------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("search:\n  space:\n    lr: {low: 0, high: 0.01}\n", "line 3: search.space.lr: a log range must be positive, got low 0 (the knob is log-scale"),
        ("search:\n  space:\n    lr: {low: -1, high: 1}\n", "a log range must be positive"),
        ("search:\n  space:\n    lr: {value: fast}\n", "search.space.lr: value 'fast': must be a number"),
        ("search:\n  space:\n    lr: {value: -0.1}\n", "must be positive (a log-scale knob)"),
        ("search:\n  space:\n    rank: {low: 0.1, high: 0.9}\n", "search.space.rank: a low/high range on a knob with choices"),
        ("search:\n  space:\n    rank: {value: 16.3}\n", "value 16.3: must be an integer"),
        ("search:\n  space:\n    rank: {choices: [4, 0]}\n", "choice 0: must be positive"),
        ("search:\n  space:\n    target_modules: {value: qkv}\n", "value 'qkv': not one of"),
        ("search:\n  space:\n    retain_freq: {low: 1, high: 3}\n", "search.space.retain_freq: a low/high range"),
        ("languages: {forget: xx}\n", "line 1: languages.forget: unknown ISO 639-1 language code 'xx'"),
        ("languages: {hindi: hi}\n", "languages.hindi: unknown set 'hindi'"),
        ("study: ''\n", "line 1: study: study name ''"),
        ("study: a/b\n", "study name 'a/b'"),
        ("study: ..\n", "study name '..'"),
        ("study: \"a\\tb\"\n", "study name 'a\\tb'"),
        ("trust_remote_code: 'yes'\n", "line 1: trust_remote_code: Input should be a valid boolean"),
        ("trust_remote_code: 1\n", "trust_remote_code: Input should be a valid boolean"),
        ("tracking_uri: ftp://host/x\n", "tracking_uri: tracking URI 'ftp://host/x': scheme 'ftp'"),
    ],
)
def test_overrides_and_values_are_checked_against_what_they_set(tmp_path, text, expected):
    from study.config import ConfigError, load_config

    p = tmp_path / "study.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert expected in str(e.value), str(e.value)


def test_valid_overrides_still_pass(tmp_path):
    from study.config import load_config

    cfg = load_config(overrides={"variants": ["ga", "dsg"],
                                 "search.space": {"lr": {"low": 1e-4, "high": 1e-2}, "rank": {"choices": [4, 32]},
                                                  "target_modules": {"value": "q_proj,v_proj"},
                                                  "trigger_percentile": {"low": 50, "high": 99}},
                                 "trust_remote_code": True, "tracking_uri": "https://mlflow.example:5000"})
    assert cfg.search.space["rank"].choices == [4, 32] and cfg.trust_remote_code is True


def test_empty_config_and_flag_errors_are_named(tmp_path, monkeypatch, capsys):
    from study.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.yaml").write_text("# nothing\n\n")
    assert main(["run", "--config", "empty.yaml"]) == 2
    assert "empty.yaml: is empty" in capsys.readouterr().err
    (tmp_path / "s.yaml").write_text("search:\n  num_samples: 24\n")
    assert main(["run", "--config", "s.yaml", "--num-samples", "-3"]) == 2
    err = capsys.readouterr().err
    assert "command line, --num-samples: search.num_samples" in err and "line 2" not in err
    assert main(["run", "--study", ""]) == 2
    assert "command line, --study: study: study name ''" in capsys.readouterr().err
    (tmp_path / "n.yaml").write_text("study: ../outside\n")
    assert main(["run", "--config", "n.yaml"]) == 2  # a key from the file is blamed on the file
    assert "n.yaml, line 1: study: study name '../outside'" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "./no-such-model"], "model './no-such-model': no such folder"),
        (["--model", "a/b/c"], "no such folder"),
    ],
)
def test_missing_model_is_one_line_before_ray(tmp_path, monkeypatch, capsys, args, expected):
    from study.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unreachable_hub_model_fails_in_seconds(tmp_path, monkeypatch):
    import time

    from huggingface_hub import constants

    from study.config import ConfigError
    from study.prepare import check_model

    # An endpoint on a closed local port stands for a hub that cannot be reached (no internet here).
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"model 'org/not-cached': not in the local Hugging Face cache, and the hub"):
        check_model("org/not-cached", timeout=2)
    assert time.monotonic() - start < 5


def test_gpus_on_a_machine_without_and_optuna_storage_in_a_missing_folder(tmp_path):
    import torch

    from study.config import ConfigError, load_config
    from study.prepare import check_optuna_storage, check_resources

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="resources.gpus_per_trial: 1, but this machine has no GPU"):
            check_resources(load_config(overrides={"resources.gpus_per_trial": 1}), address=None)
    check_resources(load_config(overrides={"resources.gpus_per_trial": 1}), address="10.0.0.1:6379")  # a cluster
    cfg = load_config(overrides={"search.optuna_storage": str(tmp_path / "missing" / "optuna.db")})
    with pytest.raises(ConfigError, match="search.optuna_storage: .*missing/optuna.db: its folder does not exist"):
        check_optuna_storage(cfg)


# ---- 9, 11, 14. export overwrites, links, stores created by reading, credentials -------------------------------


def test_export_refuses_to_overwrite_and_never_follows_links(study_store, tmp_path, monkeypatch, capsys):
    from study.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["export", "--study", "s", "--out", "out"]) == 0
    assert main(["export", "--study", "s", "--out", "out"]) == 2
    assert "config.json, mmie_command.sh already there; give --force" in capsys.readouterr().err
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (tmp_path / "out" / "config.json").unlink()
    (tmp_path / "out" / "config.json").symlink_to(outside)
    assert main(["export", "--study", "s", "--out", "out", "--force"]) == 0
    assert outside.read_text() == "keep me" and not (tmp_path / "out" / "config.json").is_symlink()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["provenance"]["study"] == "s"
    (tmp_path / "file").write_text("x")
    assert main(["export", "--study", "s", "--out", "file"]) == 2
    assert "--out file: is a file" in capsys.readouterr().err


def test_read_commands_create_no_store_and_report_leaves_no_folder(tmp_path, mlflow_store, monkeypatch, capsys):
    from study.cli import main

    monkeypatch.chdir(tmp_path)
    for command in (["front", "--study", "s"], ["export", "--study", "s", "--out", "o"], ["report", "--study", "s"]):
        assert main(command) == 2
        assert "no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()
    mlflow_store(tmp_path)
    assert main(["report", "--study", "nope", "--out", "rep"]) == 2
    assert not (tmp_path / "rep").exists()


def test_credentials_are_stripped_from_what_is_shown_and_written(study_store, tmp_path):
    from dataclasses import replace

    from study.results.export import export_config, pick
    from study.results.front import load_study
    from study.tracking.parent_run import redact_uri

    assert redact_uri("https://user:secret@mlflow.example:5000/x") == "https://***@mlflow.example:5000/x"
    assert redact_uri("sqlite:////tmp/a@b/mlflow.db") == "sqlite:////tmp/a@b/mlflow.db"
    uri, *_ = study_store
    record = replace(load_study(uri, "s"), tracking_uri="https://user:secret@mlflow.example")
    config = export_config(record, pick(record), tmp_path / "out")
    written = (tmp_path / "out" / "config.json").read_text() + (tmp_path / "out" / "mmie_command.sh").read_text()
    assert "secret" not in written and config["provenance"]["tracking_uri"] == "https://***@mlflow.example"
    assert "secret" not in record.describe()


def test_help_describes_study_and_tracking_uri(capsys):
    from study.cli import main

    for command in ("resume", "front", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "MLflow experiment" in out and "MLflow tracking URI" in out


# ---- 12, 13. Ray on loopback; resume never takes its path or remote code from the store ------------------------

LISTENING = """
import json, os, psutil, ray
from study.config import load_config
from study.runner import _init_ray

_init_ray(load_config())
ray.get(ray.remote(lambda: 1).remote())  # a worker process up too
procs = [psutil.Process()] + psutil.Process().children(recursive=True)
addrs = set()
for p in procs:
    try:
        addrs |= {c.laddr.ip for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        pass
print(json.dumps(sorted(addrs)))
ray.shutdown()
"""


@pytest.mark.slow
def test_a_local_study_s_ray_listens_on_loopback_only(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    short = tempfile.mkdtemp(prefix="rl", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    (Path(short) / "ray").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"HOME": str(tmp_path), "RAY_TMPDIR": short, "RAY_OBJECT_STORE_MEMORY": str(100 * 1024**2)}
    try:
        out = subprocess.run([sys.executable, "-c", LISTENING], env=env, capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    addrs = json.loads(out.stdout.strip().splitlines()[-1])
    assert addrs and all(a in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for a in addrs), addrs


def test_resume_takes_its_ray_folder_and_remote_code_from_the_command_line(study_store, tmp_path, monkeypatch):
    import tempfile

    import yaml

    from study.config import load_config
    from study.runner import experiment_name, resume_target
    from study.tracking.parent_run import parent_runs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    uri, client, exp, parent = study_store
    client.set_terminated(parent, "KILLED")  # an interrupted study: a finished one is never resumed (test_faults.py)
    # Whoever can write to the store points storage_path at state of their choosing and turns remote code on.
    planted = tmp_path / "planted"
    stored = load_config(overrides={"study": "s", "storage_path": str(planted), "trust_remote_code": True})
    client.log_text(parent, yaml.safe_dump(stored.model_dump(mode="json")), "study.yaml")
    name = experiment_name(stored, parent)
    (planted / name).mkdir(parents=True)
    (planted / name / "tuner.pkl").write_bytes(b"not to be unpickled")
    _, _, runs = parent_runs(uri, "s")
    with pytest.raises(FileNotFoundError, match=f"no Ray state of study 's' at {tmp_path / 'ray_results'}"):
        resume_target(client, "s", runs, uri, None, False)
    (tmp_path / "ray_results" / name).mkdir(parents=True)
    (tmp_path / "ray_results" / name / "tuner.pkl").write_bytes(b"")
    said = []
    got_parent, cfg, here = resume_target(client, "s", runs, uri, None, False, log=said.append)
    assert got_parent == parent and here == str(tmp_path / "ray_results" / name)
    assert cfg.trust_remote_code is False and cfg.storage_path is None and "trust_remote_code" in said[0]
    assert resume_target(client, "s", runs, uri, str(planted / name), True)[1].trust_remote_code is True
    assert not any((tmp_path / "tmp").iterdir())  # no temporary folder left behind


# ---- 3. Ctrl-C stops a study cleanly -------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_the_study_and_marks_its_runs(ray_local, embedded, tmp_path, monkeypatch):
    import os
    import signal
    import threading
    import time

    from study.config import load_config
    from study.runner import run_study

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    steps = 400
    cfg = load_config(overrides={**TEST_STUDY, "study": "ctrlc", "tracking_uri": uri, "variants": ["ga"],
                                 "scheduler.type": "fifo",
                                 "search.num_samples": 1, "train.steps": steps,
                                 "train.eval_every": 100, "train.checkpoint_every": 5, "train.batch_size": 8,
                                 "train.es_prompts": 4, "train.final_es_prompts": 4})
    client = MlflowClient(uri)

    def press_ctrl_c_once_a_trial_runs():
        while True:
            time.sleep(0.5)
            try:
                runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
            except Exception:  # noqa: BLE001 - the store is being created
                continue
            if any("trial_id" in r.data.tags for r in runs):
                os.kill(os.getpid(), signal.SIGINT)
                return

    # What the process had before (a shell's background job starts with SIGINT ignored, a terminal with Python's
    # default): the study must give it back, not leave Ray Tune's or its own handler behind.
    before = signal.getsignal(signal.SIGINT)
    threading.Thread(target=press_ctrl_c_once_a_trial_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, log=lambda *a: None)
    exp = client.get_experiment_by_name("ctrlc")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("role") == "study")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "KILLED"
    assert children and all(r.info.status != "RUNNING" for r in children)
    assert all(r.data.metrics.get("step", 0) < steps for r in children)
    assert {r.data.tags["trial_status"] for r in children} <= {"interrupted", "stopped_early"}
    assert signal.getsignal(signal.SIGINT) is before  # no handler of Ray Tune's or the study's left behind
