"""Shared fixtures. Everything runs for real: the embedded model is built once per test session (the slowest
fixture; kept under .cache/ between local runs), Ray runs a local instance, MLflow a temporary local store.

Keeping the suite fast (docs/test-speed.md): a test study leaves out what it does not check (TEST_STUDY), and a
new MLflow store is a copy of one created once per session (mlflow_store)."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Keep Ray, MLflow and matplotlib from writing under the real home; no telemetry.
os.environ.setdefault("UNLEARN_STUDY_CACHE", str(ROOT / ".cache" / "test"))
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the markers into the node ids
def pytest_collection_modifyitems(config, items):
    """scripts/test.sh runs two pytest-xdist workers with --dist loadgroup, which spreads tests one by one: the tests
    of a module that share a module-scoped fixture (a trained model, a study) are kept on one worker, so that
    fixture is built once."""
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures and any(defs[-1].scope == "module" for defs in fixtures.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


class _GroupSuffixIntoNodeIds:
    """pytest-xdist (3.8) groups tests by a `@group` suffix it writes into `item._nodeid`; pytest 9.2 reads a node's
    id from `item._id`, so the suffix never reached the scheduler and --dist loadgroup spread every test alone:
    a module's shared fixture was built on both workers (pytest-xdist#1386, fix pending in #1388). After xdist's
    hook, this copies the suffixed id where pytest reads it."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        from _pytest.nodeid import NodeId

        for item in items:
            legacy = getattr(item, "_nodeid", None)
            if isinstance(legacy, str) and "@" in legacy and legacy != item.nodeid and hasattr(item, "_id"):
                item._id = NodeId.parse(legacy)


def pytest_configure(config):
    if getattr(config, "workerinput", None) is not None:  # an xdist worker: where the ids are sent from
        config.pluginmanager.register(_GroupSuffixIntoNodeIds(), "group-suffix-into-node-ids")


@pytest.fixture(scope="session")
def embedded():
    from trainables.embedded import ensure_embedded

    return ensure_embedded()


# What a test study leaves out unless the test checks it (tests/test_robustness.py does): the retain-only oracle,
# built once from an empty cache (minutes) and measured on every study's parent run, and the relearning attack after
# every trial, whose 50 steps outlast a test trial's few. Merged into a study config (YAML or load_config overrides).
TEST_STUDY = {"robustness": {"oracle": False, "relearn": False}}


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """mlflow_store(folder) -> the URI of a new, empty MLflow store at folder/mlflow.db: a copy of one made once per
    session, since making one runs MLflow's schema migrations (seconds each)."""
    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{template}").search_experiments()

    def new_store(folder: Path) -> str:
        path = Path(folder) / "mlflow.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    return new_store


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    import ray

    ray.init(
        address="local",  # never a cluster a test (or a person) started on this machine with `ray start`
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield
    ray.shutdown()


def run_steps(unlearner, n: int) -> list[dict]:
    """n training steps, each followed by the per-step evaluation; wall time dropped so runs compare exactly."""
    out = []
    for _ in range(n):
        m = unlearner.train_step()
        m.update(unlearner.evaluate_step())
        m.pop("seconds_per_step")
        out.append(m)
    return out
