"""Faults applied to a study's real files (issue 26): a real MLflow store with the parent run `run` creates, a real
Ray state folder written by Ray Tune, each then damaged or put in the state a user leaves it in. What the platform
must do: one line naming the file or folder (exit status 2), and never a finished study lost or rewritten."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import TEST_STUDY
from study import cli
from study.config import load_config
from study.prepare import experiment_name
from study.runner import _config_text
from study.tracking.parent_run import start_parent_run

STUDY = "faulty"


@pytest.fixture(scope="module")
def ray_state(ray_local, tmp_path_factory):
    """A Ray Tune experiment folder (tuner.pkl, experiment state, one trial), written by a one-trial fit."""
    from ray import tune

    def report(config):  # defined here, so that it is pickled by value: Ray's workers cannot import tests/
        tune.report({"x": config["a"]})

    storage = tmp_path_factory.mktemp("ray_state")
    tune.Tuner(report, param_space={"a": 1},
               run_config=tune.RunConfig(name="state", storage_path=str(storage), verbose=0)).fit()
    assert tune.Tuner.can_restore(storage / "state")
    return storage / "state"


def _study_here(tmp_path, mlflow_store, ray_state, status):
    """A study in tmp_path as `run` leaves it: mlflow.db with its parent run (ended with `status`), and Ray's state
    under ray_results/<study>-<run id prefix>. Returns (uri, parent run id, Ray folder)."""
    uri = mlflow_store(tmp_path)
    cfg = load_config(overrides={"study": STUDY, "tracking_uri": uri, **TEST_STUDY})
    client, _, parent = start_parent_run(uri, cfg, _config_text(cfg))
    client.set_terminated(parent, status)
    here = tmp_path / "ray_results" / experiment_name(cfg, parent)
    shutil.copytree(ray_state, here)
    return uri, parent, here


def _one_error_line(capsys, warning: str | None = None) -> str:
    """The one line an error printed on stderr (after `warning`'s line, when one is due)."""
    err = capsys.readouterr().err.strip().splitlines()
    if warning is not None:
        assert err and warning in err[0], err
        err = err[1:]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_resume_refuses_a_finished_study(tmp_path, monkeypatch, capsys, mlflow_store, ray_state):
    monkeypatch.chdir(tmp_path)
    uri, parent, _ = _study_here(tmp_path, mlflow_store, ray_state, "FINISHED")
    before = MlflowClient(uri).get_run(parent).info

    assert cli.main(["resume", "--study", STUDY, "--tracking-uri", uri]) == 2
    line = _one_error_line(capsys)
    assert "already FINISHED" in line and "unlearn-study run" in line and parent in line

    after = MlflowClient(uri).get_run(parent).info
    assert (after.status, after.end_time) == ("FINISHED", before.end_time)


@pytest.mark.parametrize("given", [False, True], ids=["found", "relative --path"])
def test_unreadable_ray_state_names_the_folder_and_leaves_the_study(
        tmp_path, monkeypatch, capsys, mlflow_store, ray_state, embedded, given):
    monkeypatch.chdir(tmp_path)
    uri, parent, here = _study_here(tmp_path, mlflow_store, ray_state, "KILLED")  # interrupted: resumable
    state = here / "tuner.pkl"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    before = MlflowClient(uri).get_run(parent).info

    path = ["--path", str(here.relative_to(tmp_path))] if given else []  # pyarrow took it for a URI: "empty scheme"
    assert cli.main(["resume", "--study", STUDY, "--tracking-uri", uri, "--quiet", *path]) == 2
    # --quiet silences progress, never the warning that unpickling runs code
    line = _one_error_line(capsys, warning=f"warning: Ray's saved state in {here} is pickled")
    assert f"Ray state in {here} cannot be read" in line and "UnpicklingError" in line

    after = MlflowClient(uri).get_run(parent).info
    assert (after.status, after.end_time) == ("KILLED", before.end_time)


class _Planted:
    """What a crafted tuner.pkl holds: unpickling it writes the file `marker` (any code could run instead)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_resume_unpickles_only_the_state_its_study_recorded(tmp_path, monkeypatch, capsys, mlflow_store, ray_state):
    import pickle

    from study.runner import record_state_digest

    monkeypatch.chdir(tmp_path)
    uri, parent, here = _study_here(tmp_path, mlflow_store, ray_state, "KILLED")
    record_state_digest(uri, parent, str(here))  # what `run` does once Ray has written the folder
    marker = tmp_path / "code-ran"
    (here / "tuner.pkl").write_bytes(pickle.dumps(_Planted(marker)))  # a crafted state, in a folder of the right name

    assert cli.main(["resume", "--study", STUDY, "--tracking-uri", uri, "--path", str(here)]) == 2
    line = _one_error_line(capsys)
    assert f"the Ray state in {here} is not the one study" in line and "nothing was unpickled" in line
    assert not marker.exists()
    assert MlflowClient(uri).get_run(parent).info.status == "KILLED"


# Each process imports MLflow, says it is ready, waits for the go file, then makes the store at once with the other.
CREATE_STORE = """
import sys, time
from pathlib import Path
from study.tracking.store import ensure_store
folder = Path(sys.argv[1])
(folder / f"ready-{sys.argv[2]}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
ensure_store(f"sqlite:///{folder / 'mlflow.db'}")
"""


@pytest.mark.slow
def test_two_studies_starting_at_once_make_one_whole_store(tmp_path):
    """Without the lock, both processes migrate the new store and one dies in alembic (measured: 2 races of 2)."""
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).resolve().parent.parent), "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, "-c", CREATE_STORE, str(tmp_path), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    while not all((tmp_path / f"ready-{i}").exists() for i in (1, 2)):
        assert all(p.poll() is None for p in procs), [p.communicate()[0][-2000:] for p in procs]
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outputs]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # opens it as at head: no migration left half done
    client.create_experiment("after")
    assert [e.name for e in client.search_experiments()] == ["after", "Default"]


def _cut_in_half(db: Path):
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])


def _not_sqlite(db: Path):
    db.write_text("study,trial\nfaulty,1\n")  # a CSV saved under the store's name


DAMAGE = {"cut in half": (_cut_in_half, "is cut short"), "not SQLite": (_not_sqlite, "is not an SQLite database")}
COMMANDS = {"front": ["front", "--study", STUDY], "export": ["export", "--study", STUDY, "--out", "exported"],
            "run": ["run", "--study", STUDY, "--num-samples", "1"]}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_store_is_one_line_naming_it(tmp_path, monkeypatch, capsys, mlflow_store, damage, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = mlflow_store(tmp_path)  # ./mlflow.db, the store every command uses by default
    cfg = load_config(overrides={"study": STUDY, "tracking_uri": uri, **TEST_STUDY})
    start_parent_run(uri, cfg, _config_text(cfg))
    damage_fn, says = DAMAGE[damage]
    damage_fn(tmp_path / "mlflow.db")
    size = (tmp_path / "mlflow.db").stat().st_size

    assert cli.main(COMMANDS[command]) == 2
    line = _one_error_line(capsys)
    assert f"MLflow store {tmp_path / 'mlflow.db'}: {says}" in line and "--tracking-uri" in line
    assert (tmp_path / "mlflow.db").stat().st_size == size and not (tmp_path / "exported").exists()


def test_a_read_command_never_makes_a_store_in_an_empty_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow.db").touch()

    assert cli.main(["front", "--study", STUDY]) == 2
    assert "is empty" in _one_error_line(capsys)
    assert (tmp_path / "mlflow.db").stat().st_size == 0


# ---- a read-only working folder ---------------------------------------------------------------------------------

# [*READ_ONLY, folder, *command] runs the command in `folder` made read-only for it alone: a bind mount of the
# folder onto itself, remounted read-only, in a user and mount namespace of the command's own (the machine's mounts
# are untouched). As root a folder of mode 0555 is written all the same; a read-only mount stops root too.
READ_ONLY = ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c',
             'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && cd "$0" && exec "$@"']


def _cli_in_read_only_folder(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`unlearn-study ARGS` run in `folder`, read-only to it: a read-only bind mount where user namespaces allow
    one, else (not root) the folder's mode 0555. No MLFLOW_TRACKING_URI: the store is ./mlflow.db unless args say."""
    argv = [sys.executable, "-m", "study.cli", *args]
    probe = subprocess.run([*READ_ONLY, str(folder), "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is not None and probe.returncode == 0:
        command, where = [*READ_ONLY, str(folder), *argv], {}
    elif os.geteuid() != 0:
        folder.chmod(0o555)
        command, where = argv, {"cwd": folder}
    else:
        pytest.skip("no user namespaces here (unshare), and as root a folder's mode does not stop writes")
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(Path(cli.__file__).resolve().parent.parent)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, **where)


@pytest.mark.parametrize("store", ["here", "elsewhere"])
def test_a_read_only_working_folder_is_one_line_naming_it(tmp_path, embedded, store):
    """`run` in a folder it cannot write: one line naming the folder that cannot be written and what to do, before
    MLflow or Ray start (before: a traceback once the model was built; before the store's lock, 130 s of MLflow
    retries first). With the store here the store's folder is named; with the store in a folder it can write, Ray's
    ./ray_results."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({"study": STUDY, **TEST_STUDY}))
    args = ["run", "--config", str(config), "--num-samples", "1", "--quiet"]
    if store == "elsewhere":
        args += ["--tracking-uri", f"sqlite:///{elsewhere / 'mlflow.db'}"]
    done = _cli_in_read_only_folder(work, *args)

    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and err[0].startswith("error: cannot "), done.stderr[-3000:]
    named, what_to_do = ((f"write in {work} (", "--tracking-uri") if store == "here" else
                         (f"create {work / 'ray_results'} ({work}: ", "storage_path"))
    assert named in err[0] and what_to_do in err[0], err[0]
    assert list(work.iterdir()) == [] and list(elsewhere.iterdir()) == []  # MLflow never made the store elsewhere


@pytest.mark.slow
def test_resume_in_a_read_only_folder_is_one_line_naming_it(tmp_path, mlflow_store, ray_state):
    """`resume` of an interrupted study whose folder (mlflow.db, ray_results) it cannot write: one line naming the
    folder, before Ray's state is read, and the study as it was."""
    uri, parent, _ = _study_here(tmp_path, mlflow_store, ray_state, "KILLED")
    before = MlflowClient(uri).get_run(parent).info
    done = _cli_in_read_only_folder(tmp_path, "resume", "--study", STUDY, "--quiet")

    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr[-3000:]
    assert err[0].startswith(f"error: cannot write in {tmp_path} (") and "copy of the study's folder" in err[0]
    after = MlflowClient(uri).get_run(parent).info
    assert (after.status, after.end_time) == ("KILLED", before.end_time)


# ---- an interrupted build of the embedded model -----------------------------------------------------------------

# A spec whose model and oracle build in seconds (never the default one, minutes).
TINY = dict(lines_per_language=300, vocab_size=300, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1,
            intermediate_size=32, pretrain_steps=2, batch_size=2, seq_len=32, heldout=16)

# Builds TINY's model and stops inside pretraining, its folder in the making, until it is killed.
BUILD_UNTIL_KILLED = """
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from trainables.embedded.builder import EmbeddedSpec, ensure_embedded
spec, ready = EmbeddedSpec(**json.loads(sys.argv[1])), Path(sys.argv[2])

def log(message):
    if message.startswith("pretrain step"):
        ready.touch()
        time.sleep(3600)

ensure_embedded(spec, log=log)
"""


def _kill_mid_build(tmp_path: Path) -> None:
    """A build of TINY's model killed with SIGKILL while it pretrains (as the OOM killer or `kill -9` ends it: no
    clean-up of its own runs). Its build lock dies with it."""
    ready = tmp_path / "pretraining"
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", BUILD_UNTIL_KILLED, json.dumps(TINY), str(ready)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.communicate()


def _building(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".building-"))


@pytest.mark.slow
def test_an_interrupted_build_leaves_nothing_once_its_spec_builds(tmp_path, monkeypatch):
    """A killed build of the embedded model leaves its folder, a model's size when killed late; the next build of
    the same spec removes it, under the spec's build lock. A folder of another spec's build, which may be running
    meanwhile, is kept. The same for the retain-only oracle's, whose folder is named as a killed oracle build
    leaves it (one killed build in a test is enough: each costs a process importing torch)."""
    from trainables.embedded.builder import EmbeddedSpec, ensure_embedded, ensure_oracle, usable_cores

    monkeypatch.setenv("UNLEARN_STUDY_CACHE", str(tmp_path / "cache"))
    embedded = tmp_path / "cache" / "embedded"
    spec = EmbeddedSpec(**TINY)
    _kill_mid_build(tmp_path)
    left = _building(embedded)
    assert len(left) == 1 and (embedded / left[0] / "data" / "hi.jsonl").is_file()  # the killed build's corpus
    other = embedded / f".building-{EmbeddedSpec(**TINY, seed=1).key()}-k2x9q0ab"  # named as that build names it
    (other / "data").mkdir(parents=True)

    # The build runs on every core even in a one-thread test worker (scripts/test.sh): its callers wait for it.
    import torch

    threads, before = [], torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = ensure_embedded(spec, log=lambda msg: threads.append((msg.split(":")[0], torch.get_num_threads())))
        pretraining = {n for step, n in threads if step.startswith("pretrain step")}
        assert pretraining == {usable_cores()} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert _building(embedded) == [other.name] and (other / "data").is_dir()
    assert (model.model_dir / "config.json").is_file()

    oracle_left = model.root / ".building-oracle-q8w3e5rt"  # _build_oracle's folder, beside the oracles
    (oracle_left / "model").mkdir(parents=True)
    ensure_oracle(spec, "hi", log=lambda *a: None)
    assert _building(model.root) == [] and _building(embedded) == [other.name]
