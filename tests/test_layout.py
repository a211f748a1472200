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


def _module_graph() -> dict[str, set[str]]:
    """Each module of study/ and trainables/ and the project modules it imports anywhere (lazy imports included;
    not those under `if TYPE_CHECKING:`, which never run)."""
    paths = {}
    for path in [*(ROOT / "study").rglob("*.py"), *(ROOT / "trainables").rglob("*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        paths[name] = path
    graph = {}
    for name, path in paths.items():
        deps = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                deps |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def test_no_import_cycle_even_through_lazy_imports():
    graph, state = _module_graph(), {}

    def visit(name, trail):
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def _readme_layout() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    entries, current = [], ""
    for line in section.splitlines():  # one entry per top-level bullet, its continuation lines joined
        if line.startswith("- "):
            entries.append(current)
            current = line
        elif line.startswith("  ") and current:
            current += " " + line.strip()
    return [e for e in [*entries, current] if e]


def test_readme_layout_matches_the_tree():
    """Every folder the README's layout names exists, holds the modules it names, and every package under study/
    and trainables/ is named."""
    import re

    named = set()
    for entry in _readme_layout():
        folder = re.match(r"- `([\w/]+/)`", entry)
        assert folder, f"README layout entry does not start with a folder: {entry[:60]}"
        path = ROOT / folder.group(1)
        assert path.is_dir(), f"README layout names {folder.group(1)}, which does not exist"
        named.add(folder.group(1).rstrip("/"))
        for module in re.findall(r"`(\w+\.py)`", entry):
            assert (path / module).is_file(), f"README layout: {folder.group(1)}{module} does not exist"
    packages = {str(p.parent.relative_to(ROOT)) for root in ("study", "trainables")
                for p in (ROOT / root).rglob("__init__.py")}
    assert packages <= named, f"packages missing from the README's layout: {sorted(packages - named)}"
