"""The rooms of the code: the worker side never imports the driver, only trial/ imports Ray or MLflow, and a
study saved under the old module names still unpickles (Ray's saved state names its classes by module)."""

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from study.moved import STUDY_MOVES
from trainables.moved import TRAINABLES_MOVES

ROOT = Path(__file__).resolve().parent.parent


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


WORKER_MODULES = sorted((ROOT / "trainables").rglob("*.py"))


@pytest.mark.parametrize("path", WORKER_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_worker_module_imports_no_driver_and_ray_or_mlflow_only_in_trial(path):
    roots = _imported_roots(path)
    assert "study" not in roots, f"{path}: the worker side imports the driver"
    if "trial" not in path.relative_to(ROOT / "trainables").parts:
        assert not roots & {"ray", "mlflow"}, f"{path}: only trainables/trial/ may import Ray or MLflow"


def test_each_worker_room_imports_alone_without_ray_mlflow_or_study():
    rooms = ["trainables.methods.variants", "trainables.metrics.core", "trainables.metrics.mmie",
             "trainables.metrics.robustness", "trainables.language.lid_ensemble", "trainables.model.loading",
             "trainables.embedded", "trainables.unlearner", "trainables.adaptive_unlearning"]
    code = ("import sys\n"
            f"for name in {rooms!r}:\n"
            "    __import__(name)\n"
            "bad = sorted(m for m in ('ray', 'mlflow', 'study') if m in sys.modules)\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("old,new", sorted({**TRAINABLES_MOVES, **STUDY_MOVES}.items()))
def test_old_module_names_unpickle_to_the_moved_objects(old, new):
    """What Ray's saved state holds: a GLOBAL opcode naming (old module, name)."""
    import importlib

    module = importlib.import_module(new)
    assert importlib.import_module(old) is module
    names = [n for n, v in vars(module).items()
             if not n.startswith("_") and getattr(v, "__module__", None) == new and callable(v)]
    for name in names:
        obj = pickle.loads(f"c{old}\n{name}\n.".encode())
        assert obj is getattr(module, name)


def test_the_trainable_of_a_study_saved_before_the_move():
    from trainables.trial.trainable import unlearning_trainable

    assert pickle.loads(b"ctrainables.trainable\nunlearning_trainable\n.") is unlearning_trainable
    assert pickle.loads(b"cstudy.pareto_tracking\nParetoRecorder\n.").__module__ == "study.tracking.front_recorder"
