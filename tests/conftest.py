"""Shared fixtures. Everything runs for real: the embedded model is built once per test session (the slowest
fixture; kept under .cache/ between local runs), Ray runs a local instance, MLflow a temporary local store."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Keep Ray, MLflow and matplotlib from writing under the real home; no telemetry.
os.environ.setdefault("UNLEARN_STUDY_CACHE", str(ROOT / ".cache" / "test"))
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))


@pytest.fixture(scope="session")
def embedded():
    from trainables.embedded import ensure_embedded

    return ensure_embedded()


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    import ray

    ray.init(
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
