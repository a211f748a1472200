"""Cluster-wide studies on this machine, loopback only: several real Ray nodes (ray.cluster_utils.Cluster, and the
`ray start --head` / `ray start --address` path of docs/cluster.md), a real `mlflow server` on 127.0.0.1 with a sqlite
backend, and the CLI driving them as a user would (`--address`).
Faults: a worker node killed mid-study, and the tracking server stopped for seconds mid-study."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import TEST_STUDY

ROOT = Path(__file__).resolve().parent.parent


def test_cluster_yaml_passes_rays_own_validation():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["available_node_types"]["gpu_a10g"]["resources"]["GPU"] == 1
    assert "0.0.0.0" not in (ROOT / "cluster.yaml").read_text().split("--host")[1].split("\n")[0]
    broken = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    broken["available_node_types"]["gpu_a10g"]["max_workers"] = "four"
    with pytest.raises(Exception):
        validate_config(prepare_config(broken))


# ---- a real MLflow server and a real multi-node Ray cluster ---------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port",
               str(self.port), "-w", "1", "--backend-store-uri", f"sqlite:///{self.root}/server.db",
               "--artifacts-destination", str(self.root / "artifacts")]
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self.root / "server.log", "a"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.uri}/health", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("mlflow server did not start:\n" + (self.root / "server.log").read_text()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)

    def search_children(self, experiment: str) -> list[dict]:
        """Child runs through the REST API (runs/search is POST-only)."""
        def post(path, body):
            req = urllib.request.Request(f"{self.uri}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            return json.load(urllib.request.urlopen(req, timeout=30))

        get = urllib.request.urlopen(
            f"{self.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}", timeout=30)
        exp_id = json.load(get)["experiment"]["experiment_id"]
        runs = post("runs/search", {"experiment_ids": [exp_id], "max_results": 1000}).get("runs", [])
        for run in runs:
            run["tags"] = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
            run["metrics"] = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
        return [r for r in runs if "mlflow.parentRunId" in r["tags"]]

    def metric_steps(self, run_id: str, key: str) -> list[int]:
        url = f"{self.uri}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key={key}&max_results=25000"
        return sorted(int(m.get("step", 0)) for m in json.load(urllib.request.urlopen(url, timeout=30))["metrics"])


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path):
    """A head that runs no trials and two 1-CPU worker nodes, all on this machine."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # this process must not hold another Ray instance's session
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    # Cluster writes the head's address under Ray's default temp dir whatever temp_dir says, and fails on a fresh
    # machine where that directory does not exist yet.
    Path(ray._private.utils.get_ray_address_file(None)).parent.mkdir(parents=True, exist_ok=True)
    c = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 0, "object_store_memory": 80 * 1024**2, "dashboard_host": "127.0.0.1", "temp_dir": temp})
    workers = [c.add_node(num_cpus=1, object_store_memory=80 * 1024**2) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def study_config(tmp_path, name, steps, samples=2):
    """Two trials: one on each 1-CPU worker node at once."""
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({**TEST_STUDY,
        "study": name, "variants": ["ga", "npo"], "scheduler": {"type": "fifo"},
        "search": {"num_samples": samples, "max_concurrent": 2, "seed": 1},
        "train": {"steps": steps, "batch_size": 8, "eval_every": 8, "checkpoint_every": 4, "es_prompts": 4,
                  "final_es_prompts": 8},
        "mmie_eval": {"items": 2, "final_items": 2, "max_new_tokens": 8, "teacher_forced_items": 8},
        "resources": {"max_failures": 3},
    }))


def start_study(tmp_path, cluster, server, env_extra=None):
    base = getattr(cluster, "env", os.environ)  # RayStartNodes: a fresh shell's environment
    env = {k: v for k, v in base.items() if k != "RAY_ADDRESS"} | {"PYTHONUNBUFFERED": "1"} | (env_extra or {})
    cmd = [str(Path(sys.executable).with_name("unlearn-study")), "run", "--config", "study.yaml",
           "--address", cluster.address, "--tracking-uri", server.uri]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=open(tmp_path / "study.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(predicate, proc, log: Path, timeout=300):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.time() < deadline, log.read_text()[-4000:]
        time.sleep(0.5)


def children_so_far(server, name: str) -> list[dict]:
    try:
        return server.search_children(name)
    except Exception:  # the study's experiment may not exist yet
        return []


def some_trial_reached(server, name: str, step: int) -> bool:
    return any(r["metrics"].get("step", 0) >= step for r in children_so_far(server, name))


def trial_past_checkpoint(server, name: str, step: int = 6, last: int = 24) -> str | None:
    """The node id of a running trial between a checkpoint and its last step, if any."""
    return next((r["tags"]["node_id"] for r in children_so_far(server, name)
                 if step <= r["metrics"].get("step", 0) < last - 4), None)


def finish(proc, log: Path, timeout=400):
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, log.read_text()[-4000:]


def assert_every_trial_complete(server, name, samples, steps):
    children = server.search_children(name)
    assert len(children) == samples
    for run in children:
        assert run["tags"]["trial_status"] == "completed", run["tags"]
        assert run["metrics"]["step"] == steps
        for key in ("forget_efficacy", "utility"):
            assert server.metric_steps(run["info"]["run_id"], key) == list(range(1, steps + 1)), key
    return children


@pytest.mark.slow
def test_study_spreads_over_nodes_and_logs_to_the_server(embedded, tmp_path, cluster, mlflow_server):
    c, _ = cluster
    study_config(tmp_path, "multi-node", steps=8)
    proc = start_study(tmp_path, c, mlflow_server)
    finish(proc, tmp_path / "study.log")
    children = assert_every_trial_complete(mlflow_server, "multi-node", samples=2, steps=8)
    assert len({run["tags"]["node_id"] for run in children}) >= 2


@pytest.mark.slow
def test_killed_worker_node_trials_resume_from_checkpoints(embedded, tmp_path, cluster, mlflow_server):
    c, workers = cluster
    study_config(tmp_path, "node-killed", steps=24)
    proc = start_study(tmp_path, c, mlflow_server)
    log = tmp_path / "study.log"

    # Kill the node of a trial past a checkpoint (step 4), not whichever node comes first: on a loaded machine the
    # other trial may not have reached one yet and would rightly start again from step 0 (CI, stop 29).
    wait_for(lambda: trial_past_checkpoint(mlflow_server, "node-killed"), proc, log)
    node_id = trial_past_checkpoint(mlflow_server, "node-killed")
    c.remove_node(next(w for w in workers if w.node_id == node_id))  # its raylet and trial workers die
    finish(proc, log)
    children = assert_every_trial_complete(mlflow_server, "node-killed", samples=2, steps=24)
    assert any(run["metrics"]["restores"] >= 1 for run in children)  # came back from a checkpoint, not step 0


@pytest.mark.slow
def test_tracking_server_blinking_mid_study_loses_nothing(embedded, tmp_path, cluster, mlflow_server):
    c, _ = cluster
    study_config(tmp_path, "server-blink", steps=24)
    proc = start_study(tmp_path, c, mlflow_server)
    log = tmp_path / "study.log"

    wait_for(lambda: some_trial_reached(mlflow_server, "server-blink", step=4), proc, log)
    mlflow_server.stop()
    time.sleep(8)
    mlflow_server.start()
    finish(proc, log)
    assert_every_trial_complete(mlflow_server, "server-blink", samples=2, steps=24)


class RayStartNodes:
    """Ray nodes started with the commands of docs/cluster.md (`ray start --head`, `ray start --address`), each in its own
    process group under one private temp dir and HOME (Ray writes its auth token under ~). Stopped by process
    group and by that temp dir, never with `ray stop`, which stops every Ray instance on the machine."""

    def __init__(self, root: Path):
        self.root = root
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay under 107 bytes
        (root / "home").mkdir(exist_ok=True)
        # As a fresh shell would: without the address, and without the token mode that an earlier ray.init() in
        # this test session put into os.environ (Ray enables token auth for its own child processes that way).
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("RAY_AUTH")} | {
            "HOME": str(root / "home"), "RAY_USAGE_STATS_ENABLED": "0"}
        self.address = f"127.0.0.1:{free_port()}"
        self.groups: list[int] = []

    def start(self, *args: str) -> None:
        log = self.root / "ray_start.log"
        cmd = [str(Path(sys.executable).with_name("ray")), "start", *args, "--temp-dir", str(self.temp),
               "--object-store-memory", str(80 * 1024**2), "--disable-usage-stats"]
        proc = subprocess.Popen(cmd, env=self.env, stdout=open(log, "a"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.groups.append(proc.pid)
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]

    def head(self) -> None:
        host, port = self.address.split(":")
        self.start("--head", "--node-ip-address", host, "--port", port, "--num-cpus", "0",
                   "--include-dashboard", "false")

    def worker(self, cpus: int) -> None:
        self.start("--address", self.address, "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus))

    def nodes(self) -> dict[str, float]:
        """Node id -> CPUs, as a driver on this cluster sees them."""
        code = ("import json, ray; ray.init(address=%r, configure_logging=False, log_to_driver=False); "
                "print(json.dumps({n['NodeID']: n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive']}))"
                % self.address)
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _ours(self) -> list:
        import psutil

        mine = []
        for p in psutil.process_iter():
            try:
                if str(self.temp) in " ".join(p.cmdline()):
                    mine.append(p)
            except psutil.Error:
                pass
        return mine

    def stop(self) -> None:
        import psutil

        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in self.groups:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            for p in self._ours():
                try:
                    p.send_signal(sig)
                except psutil.Error:
                    pass
            _, alive = psutil.wait_procs(self._ours(), timeout=15)
            if not alive:
                break
        assert not self._ours(), "Ray processes left running"
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def ray_start_nodes(tmp_path):
    nodes = RayStartNodes(tmp_path)
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.mark.slow
def test_ray_start_head_and_worker_then_run_with_address(embedded, tmp_path, ray_start_nodes, mlflow_server):
    """The path of docs/cluster.md for an existing cluster, command for command: `ray start --head`, `ray start --address`
    per worker, then `unlearn-study run --address`. The head has no CPUs, so every trial runs on a worker node."""
    nodes = ray_start_nodes
    nodes.head()
    nodes.worker(cpus=1)
    nodes.worker(cpus=1)
    cluster = nodes.nodes()
    workers = {node for node, cpus in cluster.items() if cpus > 0}
    assert len(cluster) == 3 and len(workers) == 2
    study_config(tmp_path, "ray-start", steps=4)
    proc = start_study(tmp_path, nodes, mlflow_server, env_extra={"HOME": nodes.env["HOME"]})
    finish(proc, tmp_path / "study.log")
    children = assert_every_trial_complete(mlflow_server, "ray-start", samples=2, steps=4)
    assert {run["tags"]["node_id"] for run in children} == workers  # one trial per worker node, none on the head


@pytest.mark.slow
def test_a_local_study_never_joins_a_cluster_started_on_the_machine(tmp_path, ray_start_nodes):
    """`ray start --head` leaves its address where ray.init() without one looks ($RAY_TMPDIR/ray, else /tmp/ray:
    ray_current_cluster); a study given no address starts its own Ray instead of joining that cluster."""
    nodes = ray_start_nodes
    nodes.head()
    port = nodes.address.rsplit(":", 1)[1]
    assert (nodes.temp / "ray_current_cluster").read_text().strip().endswith(f":{port}")
    looks_in = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # the driver's $RAY_TMPDIR: its ray/ is the head's
    (looks_in / "ray").symlink_to(nodes.temp)
    code = ("import ray; from study.config import load_config; from study.runner import _init_ray; "
            "_init_ray(load_config()); print(ray.get_runtime_context().gcs_address)")
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                             env={**nodes.env, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(looks_in)})
    finally:
        shutil.rmtree(looks_in, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not out.stdout.strip().splitlines()[-1].endswith(f":{port}")  # its own GCS, not the head's


def test_unreachable_server_fails_before_any_trial(tmp_path, monkeypatch, capsys):
    from study.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["run", "--tracking-uri", f"http://127.0.0.1:{free_port()}", "--num-samples", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "is unreachable" in err and "No trial was started" in err
    assert not (tmp_path / "ray_results").exists()
