"""A study whose driver is killed (SIGKILL, with the Ray processes it started) resumes with `unlearn-study resume`:
the study completes, and every trial is in MLflow exactly once with every step logged once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import TEST_STUDY
from study.runner import state_digest

pytestmark = pytest.mark.slow

CONFIG = """
study: driver-killed
variants: [ga, npo]
scheduler: {type: fifo}
search: {num_samples: 4, max_concurrent: 2, seed: 3}
train: {steps: 16, batch_size: 8, eval_every: 8, checkpoint_every: 4, es_prompts: 4, final_es_prompts: 8}
mmie_eval: {items: 2, final_items: 2, max_new_tokens: 8, teacher_forced_items: 8}
""" + yaml.safe_dump(TEST_STUDY, default_flow_style=None)


def cli(*args):
    return [str(Path(sys.executable).with_name("unlearn-study")), *args]


def finished_children(uri):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("driver-killed")
    return client.search_runs([exp.experiment_id], filter_string="tags.trial_status = 'completed'")


def test_killed_driver_resumes_without_duplicates(embedded, tmp_path, mlflow_store):
    (tmp_path / "study.yaml").write_text(CONFIG)
    uri = mlflow_store(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"MLFLOW_TRACKING_URI": uri,
                                                                        "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(cli("run", "--config", "study.yaml"), cwd=tmp_path, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    # Wait for the driver's first progress line (polling MLflow instead would race its database set-up).
    while "trials done 1/" not in (tmp_path / "first.log").read_text() and time.time() < deadline:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and every process in its session, Ray's included
    first.wait()
    done_before = {r.data.tags["trial_id"] for r in finished_children(uri)}
    assert 1 <= len(done_before) < 4

    second = subprocess.run(cli("resume", "--study", "driver-killed"), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("driver-killed")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("role") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # run recorded its Ray state's digest, which resume checked before unpickling (tests/test_faults.py)
    folder = tmp_path / "ray_results" / f"driver-killed-{parents[0].info.run_id[:8]}"
    assert parents[0].data.tags["ray_state_tuner_sha256"] == state_digest(str(folder))
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted({c.data.tags["trial_id"] for c in children})
    # Ray's state is saved every 2 s: a trial started just before the kill can be unknown to it; its run is
    # kept and marked lost, and the searcher samples a replacement.
    lost = [c for c in children if c.data.tags["trial_status"] == "lost"]
    assert all(c.info.status == "KILLED" for c in lost) and len(lost) <= 2
    children = [c for c in children if c not in lost]
    assert len(children) == 4
    for c in children:
        assert c.data.tags["trial_status"] == "completed"
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "forget_efficacy")]
        assert sorted(steps) == list(range(1, 17)), (c.data.tags["trial_id"], steps)
        # A trial cut off mid-run came back from its checkpoint at most once; none started over from scratch twice.
        assert c.data.metrics["restores"] <= 1
    assert {"pareto_front.json", "pareto_front.png"} <= {a.path for a in client.list_artifacts(parents[0].info.run_id)}
