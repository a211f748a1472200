"""The front's views over every objective (study.results.front_views), on hand-built rows and on the parent run's
artifacts as ParetoRecorder writes them to a real local MLflow store (bench/check_mlflow_ui.quick_store): no Ray,
no training.

The rows, (forget_efficacy, utility, xlang_utility):
    a   ga       (0.90, 0.60, 0.50)  front, passes mmie.py's gates, has a worst-case robustness figure
    b   npo      (0.50, 0.90, 0.60)  front, fails the gates (hollow)
    m   bounded  (0.40, 0.50, 0.99)  front only through xlang_utility: dominated by b in (forget, utility)
    d   bounded  (0.30, 0.40, 0.40)  dominated
    x   npo      (0.95, 0.95, 0.95)  degenerate: kept off the front, drawn apart
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.pareto import dominates
from study.results.front import front_of_rows, trial_row
from study.results.front_views import front_figures, front_html, front_png, hover_text

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = ["forget_efficacy", "utility", "xlang_utility"]


def _row(tid, variant, values, **metrics):
    return trial_row(tid, "completed", variant, "lora", {**dict(zip(OBJECTIVES, values)), **metrics}, OBJECTIVES,
                     {"lr": 0.001, "rank": 8})


@pytest.fixture
def front():
    rows = [_row("a", "ga", (0.9, 0.6, 0.5), **{"mmie/gates_feasible": 1.0, "worst_relearn_excess": 0.25}),
            _row("b", "npo", (0.5, 0.9, 0.6), **{"mmie/gates_feasible": 0.0}),
            _row("m", "bounded", (0.4, 0.5, 0.99)), _row("d", "bounded", (0.3, 0.4, 0.4))]
    excluded = [{**_row("x", "npo", (0.95, 0.95, 0.95), degenerate=1.0), "excluded": "degenerate"}]
    return front_of_rows(rows, OBJECTIVES), excluded


def points_by_panel(fig):
    """(x axis, y axis) -> {trial id: (x, y, symbol)} over the figure's scatter traces (the knee's ring aside)."""
    panels = {}
    for trace in fig.data:
        if trace.name == "knee":
            continue
        symbols = trace.marker.symbol if isinstance(trace.marker.symbol, tuple) else [trace.marker.symbol] * len(trace.x)
        for (tid, _), x, y, sym in zip(trace.customdata, trace.x, trace.y, symbols):
            panels.setdefault((trace.xaxis, trace.yaxis), {})[tid] = (x, y, sym)
    return panels


def test_three_objectives_in_3d_and_in_every_pairwise_panel(front):
    built, excluded = front
    assert [r["trial_id"] for r in built.member_items()] == ["a", "b", "m"]
    figures = front_figures(built, excluded)
    assert set(figures) == {"3d", "pairs", "parallel"}
    (trace,) = [t for t in figures["3d"].data if t.type == "scatter3d" and t.name == "bounded"]
    assert [(x, y, z) for x, y, z in zip(trace.x, trace.y, trace.z)] == [(0.4, 0.5, 0.99), (0.3, 0.4, 0.4)]
    panels = points_by_panel(figures["pairs"])
    assert len(panels) == 3  # (f, u), (f, x), (u, x): the lower triangle of a 2 x 2 matrix
    for points in panels.values():
        assert set(points) == {"a", "b", "m", "d", "x"}
        assert points["m"][2] == "diamond" and points["d"][2] == "circle"  # membership over all three objectives
        assert points["b"][2] == "diamond-open"  # fails mmie.py's gates: hollow
        assert points["x"][2] == "x"  # kept off the front
    # m looks dominated in the (forget_efficacy, utility) panel, and is still drawn as a member there.
    (fu,) = [p for p in panels.values() if p["m"][:2] == (0.4, 0.5)]
    assert dominates(fu["b"][:2], fu["m"][:2]) and fu["m"][2] == "diamond"
    # the knee's ring in every panel, and why it is the knee in the title
    rings = [t for t in figures["pairs"].data if t.name == "knee"]
    assert len(rings) == 3 and {t.customdata[0][0] for t in rings} == {built.knee_item["trial_id"]}
    assert "distance to the ideal" in figures["pairs"].layout.title.text
    # every finished trial on the parallel coordinates, front members coloured
    (par,) = figures["parallel"].data
    assert [d.label for d in par.dimensions][:3] == OBJECTIVES and list(par.line.color) == [1, 1, 1, 0, 0]


def test_pairwise_matrix_for_two_and_four_objectives():
    for names in (OBJECTIVES[:2], OBJECTIVES + ["mixed_utility"]):
        rows = [trial_row(t, "completed", "ga", "lora", dict(zip(names, v)), names, {})
                for t, v in (("p", (0.8, 0.5, 0.6, 0.7)), ("q", (0.5, 0.8, 0.7, 0.6)), ("r", (0.2, 0.2, 0.2, 0.2)))]
        figures = front_figures(front_of_rows(rows, names))
        assert "3d" not in figures
        k = len(names)
        assert len(points_by_panel(figures["pairs"])) == k * (k - 1) // 2
        assert len(front_png(front_of_rows(rows, names)).axes) == (k - 1) ** 2


def test_hover_text_names_everything(front):
    built, excluded = front
    a = next(r for r in built.items if r["trial_id"] == "a")
    text = hover_text(a, OBJECTIVES)
    for expected in ("trial a", "ga", "forget_efficacy: 0.9", "xlang_utility: 0.5", "mmie.py gates: feasible",
                     "degenerate: no, diverged: no", "worst_relearn_excess: 0.25", "lr=0.001", "rank=8"):
        assert expected in text, expected
    assert "kept off the front: degenerate" in hover_text(excluded[0], OBJECTIVES)


def test_html_page_holds_every_view(front):
    html = front_html(*front)
    assert html.count('"type":"scatter3d"') >= 1 and '"type":"parcoords"' in html
    assert html.count("plotly.js v") <= 2  # plotly.js inlined once (its banner), not per figure


def _check_mlflow_ui():
    spec = importlib.util.spec_from_file_location("check_mlflow_ui", ROOT / "bench" / "check_mlflow_ui.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A study store with the default objectives, written by the study's own tracking code (no training)."""
    tmp = tmp_path_factory.mktemp("views")
    return _check_mlflow_ui().quick_store(tmp, "views"), tmp


def test_parent_run_carries_the_default_objectives_views(store):
    uri, tmp_path = store
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("views")
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.role = 'study'")
    html = Path(client.download_artifacts(parent.info.run_id, "pareto_front.html", str(tmp_path))).read_text()
    figures = [json.loads(m) for m in re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', html, re.DOTALL)]
    traces3d = [t for fig in figures for t in fig if t["type"] == "scatter3d"]
    assert traces3d and all({"x", "y", "z"} <= set(t) for t in traces3d)
    assert {a for fig in figures for t in fig if t["type"] == "scatter" for a in [(t["xaxis"], t["yaxis"])]} \
        == {("x", "y"), ("x3", "y3"), ("x4", "y4")}
    reference = json.loads(Path(client.download_artifacts(parent.info.run_id, "pareto_reference.json",
                                                          str(tmp_path))).read_text())
    assert reference["objectives"] == OBJECTIVES and "forget_efficacy >= 0.1" in reference["knee"]
    assert parent.data.tags["knee"].startswith("knee quick_")


def test_front_command_fits_a_terminal_and_prints_csv_and_json(store, capsys):
    from study.cli import main

    uri, _ = store
    assert main(["front", "--study", "views", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("   trial") or line.split()[:2] == ["trial", "variant"])
    table = out[header:header + 4]  # the header and the three members (quick_00000, _00001, _00002)
    assert all(len(line) <= 100 for line in out[header:]), out
    assert table[0].split()[:5] == ["trial", "variant", "forget", "utility", "xlang"]
    assert sum(line.startswith("*") for line in table) == 1  # the knee, starred
    assert any("worst_excess" in line for line in table[:1]) and "infeasible" in "\n".join(table)
    assert any(line.startswith("knee quick_") for line in out) and any("forget_efficacy >= 0.1" in l for l in out)

    assert main(["front", "--study", "views", "--tracking-uri", uri, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["trial_id"] for r in rows} == {"quick_00000", "quick_00001", "quick_00002"}  # the degenerate one is off
    assert sum(r["knee"] for r in rows) == 1 and all("xlang_utility" in r and "lr" in r for r in rows)

    assert main(["front", "--study", "views", "--tracking-uri", uri, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("trial_id,status,variant,adapter,forget_efficacy,utility,xlang_utility") and len(lines) == 4


def test_optuna_dashboard_reads_constraints_only_in_the_sequence_form():
    """Why study.search.store_constraints writes Optuna's older form (a `constraints` list) and not
    Trial.set_constraint's named one: the installed optuna-dashboard reads the list only. When this fails, the
    dashboard reads the named form, and set_constraint is the one to use."""
    optuna = pytest.importorskip("optuna")
    serializer = pytest.importorskip("optuna_dashboard._serializer")
    study = optuna.create_study(directions=["maximize", "maximize"])
    named, listed = study.ask(), study.ask()
    named.set_constraint("G1_es_forget", 0.5)
    listed.storage.set_trial_system_attr(listed._trial_id, "constraints", [0.5])
    study.tell(named, [0.1, 0.2])
    study.tell(listed, [0.1, 0.2])
    shown = [serializer.serialize_frozen_trial(0, t, {})["constraints"] for t in study.trials]
    assert shown == [[], [0.5]]  # the named constraint is invisible: its infeasible trial would look feasible
    assert [t.constraints for t in study.trials] == [{"G1_es_forget": 0.5}, {"0": 0.5}]  # Optuna reads both
