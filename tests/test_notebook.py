"""notebooks/inspect_study.ipynb, executed headless with nbclient against a real local MLflow store built by hand the
way a study leaves it (parent run with the study's tags and flattened config, child runs with tags, string params and
per-step metrics, the driver's hypervolume series): no Ray, no training.

The trials, objectives (forget_efficacy, utility) final values, in start order; runs end in another order:
    ga-1       ga       completed      (0.90, 0.60)  front
    npo-1      npo      completed      (0.70, 0.85)  front, the knee
    bounded-1  bounded  completed      (0.55, 0.95)  front
    ga-2       ga       completed      (0.60, 0.70)  dominated
    npo-2      npo      completed      (0.40, 0.80)  dominated
    bounded-2  bounded  stopped_early  (0.99, 0.99)  partial values (3 of 5 steps): must never count
"""

import json
import sys
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel nbclient starts; a test dependency, never skipped)
import nbclient
import nbformat
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from study.pareto import hypervolume_history, reference_point

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "inspect_study.ipynb"
STUDY = "nbstudy"
STEPS = 5
OBJECTIVES = ["forget_efficacy", "utility"]
PARENT_PARAMS = {
    "study": STUDY, "model": "embedded", "data": "None", "embedded.forget": "hi", "embedded.retain": "en",
    "train.steps": str(STEPS), "train.batch_size": "4", "train.max_len": "32", "train.seed": "7",
    "train.max_grad_norm": "1.0", "utility_floor": "None", "search.objectives": str(OBJECTIVES),
    "code_version": "abc123+dirty", "package_version": "0.1.0",
}
LORA = {"adapter": "lora", "rank": "8", "target_modules": "q_proj,v_proj"}
TRIALS = [  # trial id, status, params, final (forget_efficacy, utility), end time (completion order differs)
    ("ga-1", "completed", {"variant": "ga", "lr": "0.003", **LORA}, (0.90, 0.60), 2_050),
    ("npo-1", "completed", {"variant": "npo", "beta": "0.1", "lr": "0.001", **LORA}, (0.70, 0.85), 2_010),
    ("bounded-1", "completed", {"variant": "bounded", "bound": "2.5", "lr": "0.001", **LORA}, (0.55, 0.95), 2_040),
    ("ga-2", "completed", {"variant": "ga", "lr": "0.0005", **LORA}, (0.60, 0.70), 2_020),
    ("npo-2", "completed", {"variant": "npo", "beta": "0.5", "lr": "0.0002", **LORA}, (0.40, 0.80), 2_030),
    ("bounded-2", "stopped_early", {"variant": "bounded", "bound": "5.0", "lr": "0.005", **LORA}, (0.99, 0.99), 2_005),
]
FRONT = {"ga-1", "npo-1", "bounded-1"}
KNEE = "npo-1"


def _log_trial(client, exp, parent, start, trial_id, status, params, final, end):
    on_front = trial_id in FRONT
    rank = "0" if on_front else ("none" if status != "completed" else "1")
    run = client.create_run(exp, start_time=start, run_name=trial_id,
                            tags={"mlflow.parentRunId": parent, "trial_id": trial_id, "trial_status": status,
                                  "pareto": "true" if on_front else "false", "pareto_rank": rank})
    steps = STEPS if status == "completed" else 3
    metrics = []
    for step in range(1, steps + 1):  # a straight line from the untouched model (0, 1) to the final values
        share = step / steps
        values = {"forget_efficacy": final[0] * share, "utility": 1 + (final[1] - 1) * share, "step": step}
        metrics += [Metric(name, float(value), start + step, step) for name, value in values.items()]
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in sorted(params.items())])
    client.set_terminated(run.info.run_id, "FINISHED", end_time=end)


def _build_store(db: Path) -> str:
    """The study's store, as `study.tracking.parent_run.start_parent_run`, the trials and `ParetoRecorder` leave it."""
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    exp = client.create_experiment(STUDY, artifact_location=(db.parent / "mlruns").as_uri())
    tags = {"role": "study", "objectives": ",".join(OBJECTIVES), "study_steps": str(STEPS), "study_seed": "7"}
    parent = client.create_run(exp, run_name=f"study-{STUDY}", start_time=1_000, tags=tags).info.run_id
    client.log_batch(parent, params=[Param(k, v) for k, v in sorted(PARENT_PARAMS.items())])
    for i, trial in enumerate(TRIALS):
        _log_trial(client, exp, parent, 1_001 + i, *trial)
    # The driver logs hypervolume after each ranked trial completes, stepped by the number of ranked trials.
    done = sorted((t for t in TRIALS if t[1] == "completed"), key=lambda t: t[4])
    history = hypervolume_history([t[3] for t in done], reference_point(OBJECTIVES))
    client.log_batch(parent, metrics=[Metric("hypervolume", hv, 3_000 + i, i + 1) for i, hv in enumerate(history)])
    client.set_tag(parent, "front_size", str(len(FRONT)))
    client.set_terminated(parent, "FINISHED", end_time=3_100)
    return uri


def _texts(cell) -> list[str]:
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out.append(o["text"])
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
    return out


@pytest.mark.slow
def test_notebook_runs_on_a_study_and_exports_the_knee(tmp_path, monkeypatch, embedded):  # its export reads the model
    for name in ("UNLEARN_TRACKING_URI", "MLFLOW_TRACKING_URI", "JUPYTER_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, sub in (("HOME", "home"), ("JUPYTER_CONFIG_DIR", "jupyter/config"), ("JUPYTER_DATA_DIR", "jupyter/data"),
                      ("JUPYTER_RUNTIME_DIR", "jupyter/runtime"), ("IPYTHONDIR", "ipython")):
        (tmp_path / sub).mkdir(parents=True)
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The notebook's default TRACKING_URI: mlflow.db in the kernel's working directory (tmp_path, below).
    _build_store(tmp_path / "mlflow.db")
    out_dir = tmp_path / "out" / "knee"

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    # As papermill does: the parameters cell keeps its defaults, a cell after it overrides them.
    injected = nbformat.v4.new_code_cell(f"STUDY = {STUDY!r}\nOUT_DIR = {str(out_dir)!r}",
                                         metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(params[0] + 1, injected)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)\nprint(TRACKING_URI)"))

    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    executable, uri = _texts(code[-1])[0].split()
    assert Path(executable).resolve() == Path(sys.executable).resolve()  # the kernel ran this interpreter
    assert uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"

    # The front as a table: every member and nothing else (the stopped-early trial's partial values dominate all).
    tables = [text for c in code for text in _texts(c)]
    assert any(all(t in text for t in FRONT) and not any(t[0] in text for t in TRIALS if t[0] not in FRONT)
               for text in tables), tables
    text = "\n".join(tables)
    assert "logged and recomputed agree: True" in text
    assert "python mmie.py" in text
    assert sum("image/png" in o.get("data", {}) for c in code for o in c.outputs) == 3  # front, hypervolume, curves
    # the interactive views (pairwise panels, parallel coordinates), and the front as `unlearn-study front` prints it
    plotly = [o["data"]["application/vnd.plotly.v1+json"] for c in code for o in c.outputs
              if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert [{t["type"] for t in fig["data"]} for fig in plotly] == [{"scatter"}, {"parcoords"}]
    assert f"knee {KNEE}: distance to the ideal" in text and f"*  {KNEE}" in text

    config = json.loads((out_dir / "config.json").read_text())
    completed = {t[0] for t in TRIALS if t[1] == "completed"}
    assert config["provenance"]["trial_id"] in completed and config["provenance"]["trial_status"] == "completed"
    assert config["provenance"]["trial_id"] == KNEE and config["provenance"]["study"] == STUDY
    assert config["kwargs"]["variant"] == "npo" and config["kwargs"]["steps"] == STEPS
    assert (out_dir / "mmie_command.sh").is_file()
    assert f"picked {KNEE}" in text
