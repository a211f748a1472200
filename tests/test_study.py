"""Whole studies on real Ray (a local instance), real Optuna and a real local MLflow store."""

import pytest
from mlflow.tracking import MlflowClient

from conftest import TEST_STUDY
from study.config import load_config
from study.runner import run_study
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

pytestmark = pytest.mark.slow

SMALL = {
    "variants": ["ga", "npo"],
    "scheduler.type": "fifo",
    "search.num_samples": 2,  # one wave of trials on two cores
    "search.max_concurrent": 2,
    "train.steps": 6,
    "train.eval_every": 3,
    "train.checkpoint_every": 2,
    "train.batch_size": 8,
    "train.es_prompts": 4,
    "train.final_es_prompts": 8,
    # mmie.py's measurements, small (their definitions are tested in test_mmie_metrics.py).
    "mmie_eval": {"items": 2, "final_items": 2, "max_new_tokens": 8, "teacher_forced_items": 8},
    **TEST_STUDY,
}


def study_runs(uri, name):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("role") == "study"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return client, parents[0], children


def test_study_with_killed_trials_restores_and_logs_every_step_once(
        ray_local, embedded, tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_store(tmp_path)
    cfg = load_config(overrides={**SMALL, "study": "killed", "tracking_uri": uri})
    # Every trial's worker process exits hard at step 3, after the checkpoint at step 2.
    rows = run_study(cfg, log=lambda *a: None, crash_at_step=3)
    assert len(rows) == 2
    assert all(r["status"] == "completed" and r["step"] == 6 for r in rows), rows

    client, parent, children = study_runs(uri, "killed")
    assert len(children) == 2
    assert client.download_artifacts(parent.info.run_id, "study.yaml", str(tmp_path))
    for child in children:
        assert child.data.tags["trial_status"] == "completed"
        assert child.data.params["variant"] in {"ga", "npo"} and float(child.data.params["lr"]) > 0
        for metric in ("forget_efficacy", "utility", "loss_forget", "adapter_norm"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, metric)]
            assert sorted(steps) == [1, 2, 3, 4, 5, 6], (metric, steps)
        es_steps = [m.step for m in client.get_metric_history(child.info.run_id, "es_forget")]
        assert sorted(es_steps) == [3, 6]
        restores = client.get_metric_history(child.info.run_id, "restores")
        assert [(m.step, m.value) for m in sorted(restores, key=lambda m: m.step)][-1] == (6, 1.0)

    # The restored trial ends where an uninterrupted run of the same configuration ends.
    row = rows[0]
    hp = {k: row[k] for k in ("variant", "adapter", "lr", "rank", "target_modules")}
    if "beta" in row and row["beta"] is not None:
        hp["beta"] = row["beta"]
    setup = TrialSetup(train=TrainSettings(steps=6, batch_size=8), languages=(("forget", "hi"), ("retain", "en")))
    straight = Unlearner(setup, hp)
    for _ in range(6):
        straight.train_step()
    assert straight.evaluate_step()["forget_efficacy"] == pytest.approx(row["forget_efficacy"], rel=1e-4, abs=1e-5)


def test_asha_study_on_a_weighted_sum_runs(ray_local, embedded, tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_store(tmp_path)
    cfg = load_config(overrides={**SMALL, "study": "asha", "tracking_uri": uri, "scheduler.type": "asha",
                                 "scheduler.grace_period": 2,
                                 "scheduler.weights": {"forget_efficacy": 0.5, "utility": 0.5}})
    rows = run_study(cfg, log=lambda *a: None)
    assert len(rows) == 2 and {r["status"] for r in rows} <= {"completed", "stopped_early"}
    client, _, children = study_runs(uri, "asha")
    for child in children:
        m = child.data.metrics
        assert m["objective_scalar"] == pytest.approx(0.5 * m["forget_efficacy"] + 0.5 * m["utility"])


def test_diverged_trial_ends_cleanly_and_is_recorded(ray_local, embedded, tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_store(tmp_path)
    cfg = load_config(
        overrides={**SMALL, "search.num_samples": 1, "study": "diverged", "tracking_uri": uri,
                   "train.max_adapter_norm": 1e-6}
    )
    rows = run_study(cfg, log=lambda *a: None)
    assert [(r["status"], r["step"]) for r in rows] == [("diverged", 1)]
    _, _, children = study_runs(uri, "diverged")
    assert [c.data.tags["trial_status"] for c in children] == ["diverged"]


def test_moasha_study_records_the_front_and_prunes_stopped_trials_in_optuna(
        ray_local, embedded, tmp_path, monkeypatch, mlflow_store):
    import optuna

    from study.pareto import nondominated_ranks

    monkeypatch.chdir(tmp_path)
    uri = mlflow_store(tmp_path)
    cfg = load_config(overrides={
        **SMALL, "study": "front", "tracking_uri": uri, "variants": ["ga", "npo", "bounded", "dualoptim"],
        "scheduler.type": "moasha", "scheduler.grace_period": 2, "search.num_samples": 8, "search.max_concurrent": 2,
        "train.steps": 8, "train.eval_every": 4, "train.checkpoint_every": 4,
        "search.optuna_storage": str(tmp_path / "optuna.db"),
        "search.space": {"lr": {"low": 1e-3, "high": 3e-2, "log": True}},
    })
    rows = run_study(cfg, log=lambda *a: None)
    assert len(rows) == 8

    client, parent, children = study_runs(uri, "front")
    assert len(children) == 8
    status = {c.data.tags["trial_id"]: c.data.tags["trial_status"] for c in children}
    assert set(status.values()) <= {"completed", "stopped_early", "diverged"}
    assert "stopped_early" in status.values() and "completed" in status.values()
    # Tags agree with a front recomputed from the finished trials' final metrics.
    finished = [c for c in children if c.data.tags["trial_status"] == "completed" and c.data.tags["degenerate"] == "false"]
    points = [[c.data.metrics[o] for o in cfg.search.objectives] for c in finished]
    ranks = nondominated_ranks(__import__("numpy").array(points))
    for c, rank in zip(finished, ranks):
        assert c.data.tags["pareto_rank"] == str(rank) and c.data.tags["pareto"] == str(rank == 0).lower()
    for c in children:
        if c.data.tags["trial_status"] != "completed" or c.data.tags["degenerate"] == "true":
            assert c.data.tags["pareto"] == "false" and c.data.tags["pareto_rank"] == "none"
        if c.data.tags["trial_status"] == "stopped_early":  # its steps are in MLflow, its run closed
            assert c.data.metrics["step"] < 8 and c.info.status == "KILLED"

    table = client.load_table(parent.info.experiment_id, "pareto_front.json", run_ids=[parent.info.run_id])
    assert sorted(table["trial"]) == sorted(c.info.run_name for c in finished if c.data.tags["pareto"] == "true")
    assert sorted(table["run_id"]) == sorted(c.info.run_id for c in finished if c.data.tags["pareto"] == "true")
    # one knee, unless no member unlearned (study.pareto.knee never picks one that did not)
    from study.pareto import KNEE_MIN_FORGET

    assert table["knee"].sum() == int((table["forget_efficacy"] >= KNEE_MIN_FORGET).any())
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.png", "pareto_front.html", "pareto_front.json", "pareto_reference.json"} <= artifacts
    hv = sorted(client.get_metric_history(parent.info.run_id, "hypervolume"), key=lambda m: m.step)
    assert [m.step for m in hv] == list(range(1, len(finished) + 1))
    assert all(a.value <= b.value for a, b in zip(hv, hv[1:]))

    # Optuna: a trial stopped early is PRUNED (its partial values kept aside), never on Optuna's Pareto set.
    study = optuna.load_study(study_name="front", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    by_number = {t.number: t for t in study.trials}
    assert len(by_number) == 8
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == list(status.values()).count("stopped_early")
    assert all(t.values is None and t.user_attrs["stopped_at_step"] < 8 for t in pruned)
    assert not {t.number for t in study.best_trials} & {t.number for t in pruned}
    # mmie.py's measurements in each finished trial's run, its gates as a tag and as Optuna constraints, the base
    # model's on the parent run.
    assert all({"mmie/es_forget", "mmie/ppl_retain", "mmie/mia_auc", "mia_min_k_auc"} <= set(c.data.metrics)
               and c.data.tags["mmie_gates"] == ("feasible" if c.data.metrics["mmie/gates_feasible"] else "infeasible")
               for c in finished) and "mmie/base/es_forget" in parent.data.metrics
    assert all(t.constraints for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)

    # The knee, exported, runs through the mmie.py entry point with the same seed to the same metrics.
    from study.results.export import export_config, pick
    from study.results.front import load_study
    from trainables.adaptive_unlearning import run_config
    from trainables.data import read_jsonl
    from trainables.model.loading import load_model, load_tokenizer

    record = load_study(uri, "front")
    exported = export_config(record, pick(record, "knee"), tmp_path / "export")
    assert exported["entry_point"] == "train_lora_adaptive"
    # The study's own files, as the export names them: its retain set and the utility set it measured on.
    lines = {name: read_jsonl(path) for name, path in exported["study_data"].items()}
    model, tok = load_model(str(embedded.model_dir)), load_tokenizer(str(embedded.model_dir))
    _, again = run_config(model, tok, lines["forget"], lines["retain"], adapter=exported["adapter"],
                          utility_eval=lines.get("utility"), **exported["kwargs"])
    for metric in ("forget_efficacy", "utility"):
        assert again[metric] == pytest.approx(exported["metrics"][metric], abs=0.02), metric


def test_gate_only_and_gated_trials_share_one_study_and_front(ray_local, embedded, tmp_path, monkeypatch, mlflow_store):
    from study.results.export import export_config
    from study.results.front import load_study

    monkeypatch.chdir(tmp_path)
    uri = mlflow_store(tmp_path)
    cfg = load_config(overrides={
        **SMALL, "study": "gates", "tracking_uri": uri, "variants": ["dsg", "ga+dsg"], "search.num_samples": 4,
        "scheduler.type": "moasha", "scheduler.grace_period": 2, "train.steps": 4, "train.eval_every": 2,
        "sae.d_sae": 512, "sae.k": 16, "sae.steps": 300, "sae.lr": 3e-3,  # the gate tests' SAE: a cache hit
        # This tiny SAE's DSG writes disfluent continuations (tagged degenerate, off the front by default); what is
        # tested here is that gate-only trials are ranked with the trained ones.
        "front.include_degenerate": True,
    })
    rows = run_study(cfg, log=lambda *a: None)
    by_variant = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r)
    assert set(by_variant) == {"dsg", "ga+dsg"}, by_variant
    # A gate-only trial has no steps: one report, at step 0, finished and completed.
    assert all((r["status"], r["step"]) == ("completed", 0) for r in by_variant["dsg"])

    record = load_study(uri, "gates")
    gate_only = [t for t in record.trials if t.variant == "dsg"]
    # ranked on the same front as the trained trials
    assert all(t.pareto_rank is not None for t in gate_only)  # ranked on the same front as the trained trials
    for t in record.trials:
        assert "gate_fire_retain" in t.metrics, (t.status, t.variant, sorted(t.metrics))
        assert 0 <= t.metrics["gate_fire_retain"] < t.metrics["gate_fire_forget"]
    config = export_config(record, gate_only[0], tmp_path / "export")
    # mmie.py has no DSG (its dsg arm crashes as published) and no gate-only arm: the command carries no gate
    # and no steps, and the note says both.
    assert "--sae_gate" not in config["mmie_command"] and "_steps" not in config["mmie_command"]
    assert config["mmie_exact"] is False and "dsg arm crashes" in config["note"] and "gate-only" in config["note"]
    assert "dsg gate acts at evaluation" in config["note"]


def test_a_reused_actor_waits_for_the_last_trial_to_close_its_run(monkeypatch):
    # A trial stopped early closes its MLflow run after Ray's stop; Ray fails the next trial on a reused actor if
    # that takes longer than its thread timeout, which it reads from this variable when it resets the actor.
    import inspect
    import os

    from ray.tune.trainable.function_trainable import FunctionTrainable

    from trainables.trial.tracking import TrialRun
    from trainables.trial.trainable import THREAD_TIMEOUT_ENV, THREAD_TIMEOUT_S, let_the_last_trial_finish

    assert THREAD_TIMEOUT_ENV in inspect.getsource(FunctionTrainable.reset_config)
    monkeypatch.delenv(THREAD_TIMEOUT_ENV, raising=False)
    let_the_last_trial_finish()
    assert int(os.environ[THREAD_TIMEOUT_ENV]) == THREAD_TIMEOUT_S
    finish = inspect.signature(TrialRun.finish).parameters
    assert finish["attempts"].default * finish["wait_s"].default < THREAD_TIMEOUT_S  # its retries fit in the wait
