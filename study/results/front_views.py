"""The front drawn over every objective (2 to 4): the views on the parent run (`pareto_front.html`, `.png`) and in
the notebook.

MLflow has no Pareto view of its own, so these are the study's. A projection onto two objectives hides the others:
a member on the front only because it spares the cross-lingual sets looks dominated in the (forget, utility) plane.
So membership is computed over all objectives (study.pareto) and marked in every panel, never re-derived per panel.
- 3 objectives: a 3-D scatter (plotly `scatter3d`);
- any k: a matrix of pairwise projections (lower triangle), front members as diamonds, the knee ringed;
- every trial on parallel coordinates, front members in colour, the rest grey.
Colour is the variant; a trial that fails mmie.py's acceptance gates is hollow (as optuna-dashboard draws
infeasible trials); a trial kept off the front (degenerate, diverged, below the floor) is a grey cross. Hover text
names the trial, its variant, knobs, every objective, the gates, the flags and whatever robustness figures it has.
The knee's definition and why it won are the figures' subtitle (study.pareto.Knee).
"""

from __future__ import annotations

from study.pareto import Front
from study.results.table import cell

# Row keys that are not knobs (the rest of a row from study.results.front.trial_row is).
ROW_KEYS = {"trial_id", "status", "variant", "adapter", "knee", "knee_distance", "mmie_gates", "degenerate",
            "diverged", "excluded", "run_id", "trial"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f"]
MEMBER, OTHER = "diamond", "circle"


def is_robustness(key: str) -> bool:
    return key.startswith(("relearn_", "worst_"))


def hover_text(row: dict, objectives) -> str:
    """Everything a reader asks of one point, one fact a line (plotly's <br>)."""
    lines = [f"<b>trial {row['trial_id']}</b> ({row['variant']}, {row.get('adapter', '')})"]
    if row.get("excluded"):
        lines.append(f"kept off the front: {row['excluded']}")
    elif row.get("knee"):
        lines.append("<b>the knee</b>")
    lines += [f"{o}: {cell(row.get(o))}" for o in objectives]
    if row.get("knee_distance") is not None:
        lines.append(f"distance to the ideal: {row['knee_distance']:.3f}")
    lines.append(f"mmie.py gates: {row.get('mmie_gates', 'unknown')}")
    lines.append(f"degenerate: {cell(bool(row.get('degenerate')))}, diverged: {cell(bool(row.get('diverged')))}")
    lines += [f"{k}: {cell(v)}" for k, v in row.items() if is_robustness(k) and k not in objectives]
    knobs = [f"{k}={cell(v)}" for k, v in row.items() if k not in ROW_KEYS and k not in objectives
             and not is_robustness(k)]
    lines += [" ".join(knobs[i:i + 4]) for i in range(0, len(knobs), 4)]
    return "<br>".join(lines)


def _marker_symbol(row: dict, member: bool) -> str:
    symbol = MEMBER if member else OTHER
    return symbol + ("-open" if row.get("mmie_gates") == "infeasible" else "")


def _colours(rows: list[dict]) -> dict[str, str]:
    variants = sorted({r["variant"] for r in rows})
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(variants)}


def _labels(front: Front) -> list[str]:
    return [str(r["trial_id"]) for r in front.items]


def subtitle(front: Front) -> str:
    if front.knee is None:
        return "no ranked trial"
    import textwrap

    lines = (front.knee.why(_labels(front)), front.knee.rule())
    return "<br>".join(part for line in lines for part in textwrap.wrap(line, 140))


def _groups(front: Front, excluded: list[dict]):
    """(variant, rows, member flags) per variant, and the excluded rows."""
    by_variant: dict[str, tuple[list, list]] = {}
    for i, row in enumerate(front.items):
        rows, members = by_variant.setdefault(row["variant"], ([], []))
        rows.append(row)
        members.append(bool(front.ranks[i] == 0))
    return sorted(by_variant.items()), list(excluded)


def pairwise_figure(front: Front, excluded: list[dict] = ()):
    """The matrix of pairwise projections: panel (i, j), j < i, has objective j across and objective i up."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objectives = list(front.objectives)
    k = len(objectives)
    n = k - 1
    fig = make_subplots(rows=n, cols=n, horizontal_spacing=0.06, vertical_spacing=0.06)
    colours = _colours(list(front.items) + list(excluded))
    groups, off = _groups(front, excluded)
    knee = front.knee_item
    for i in range(1, k):
        for j in range(i):
            first = i == 1 and j == 0
            where = {"row": i, "col": j + 1}
            for variant, (rows, members) in groups:
                fig.add_trace(go.Scatter(
                    x=[r[objectives[j]] for r in rows], y=[r[objectives[i]] for r in rows], mode="markers",
                    name=variant, legendgroup=variant, showlegend=first,
                    marker={"color": colours[variant], "size": [13 if m else 8 for m in members],
                            "symbol": [_marker_symbol(r, m) for r, m in zip(rows, members)],
                            "line": {"width": [2 if m else 1 for m in members], "color": colours[variant]}},
                    customdata=[[r["trial_id"], bool(m)] for r, m in zip(rows, members)],
                    text=[hover_text(r, objectives) for r in rows], hovertemplate="%{text}<extra></extra>",
                ), **where)
            if off:
                fig.add_trace(go.Scatter(
                    x=[r[objectives[j]] for r in off], y=[r[objectives[i]] for r in off], mode="markers",
                    name="kept off the front", legendgroup="off", showlegend=first,
                    marker={"color": "#aaaaaa", "symbol": "x", "size": 7},
                    customdata=[[r["trial_id"], False] for r in off],
                    text=[hover_text(r, objectives) for r in off], hovertemplate="%{text}<extra></extra>",
                ), **where)
            if knee is not None:
                fig.add_trace(go.Scatter(
                    x=[knee[objectives[j]]], y=[knee[objectives[i]]], mode="markers", name="knee",
                    legendgroup="knee", showlegend=first, hoverinfo="skip",
                    marker={"symbol": "circle-open", "size": 24, "color": "black", "line": {"width": 3}},
                    customdata=[[knee["trial_id"], True]],
                ), **where)
            if j == 0:
                fig.update_yaxes(title_text=objectives[i], **where)
            if i == k - 1:
                fig.update_xaxes(title_text=objectives[j], **where)
    fig.update_layout(height=320 * n + 120, width=360 * n + 260,
                      title={"text": f"Front over {', '.join(objectives)}: diamonds are members (over all "
                                     f"{k} objectives), hollow fails mmie.py's gates, the ring is the knee"
                                     f"<br><sup>{subtitle(front)}</sup>", "font": {"size": 13}})
    return fig


def scatter3d_figure(front: Front, excluded: list[dict] = ()):
    """The three objectives in 3-D (k = 3 only)."""
    import plotly.graph_objects as go

    objectives = list(front.objectives)
    if len(objectives) != 3:
        raise ValueError(f"a 3-D view needs three objectives, got {objectives}")
    fig = go.Figure()
    colours = _colours(list(front.items) + list(excluded))
    groups, off = _groups(front, excluded)
    for variant, (rows, members) in groups:
        fig.add_trace(go.Scatter3d(
            x=[r[objectives[0]] for r in rows], y=[r[objectives[1]] for r in rows], z=[r[objectives[2]] for r in rows],
            mode="markers", name=variant,
            marker={"color": colours[variant], "size": [8 if m else 4 for m in members],
                    "symbol": [_marker_symbol(r, m) for r, m in zip(rows, members)]},
            customdata=[[r["trial_id"], bool(m)] for r, m in zip(rows, members)],
            text=[hover_text(r, objectives) for r in rows], hovertemplate="%{text}<extra></extra>",
        ))
    if off:
        fig.add_trace(go.Scatter3d(
            x=[r[objectives[0]] for r in off], y=[r[objectives[1]] for r in off], z=[r[objectives[2]] for r in off],
            mode="markers", name="kept off the front", marker={"color": "#aaaaaa", "symbol": "x", "size": 4},
            text=[hover_text(r, objectives) for r in off], hovertemplate="%{text}<extra></extra>",
        ))
    knee = front.knee_item
    if knee is not None:
        fig.add_trace(go.Scatter3d(x=[knee[objectives[0]]], y=[knee[objectives[1]]], z=[knee[objectives[2]]],
                                   mode="markers+text", name="knee", text=["knee"], hoverinfo="skip",
                                   marker={"symbol": "circle-open", "size": 14, "color": "black"}))
    fig.update_layout(height=700, width=900, scene={"xaxis_title": objectives[0], "yaxis_title": objectives[1],
                                                    "zaxis_title": objectives[2]},
                      title={"text": f"Front in 3-D (diamonds: members)<br><sup>{subtitle(front)}</sup>",
                             "font": {"size": 13}})
    return fig


def parallel_figure(front: Front, excluded: list[dict] = ()):
    """Every trial on parallel coordinates (the objectives, the gates, the variant), front members emphasised."""
    import plotly.graph_objects as go

    objectives = list(front.objectives)
    rows = list(front.items) + list(excluded)
    member = [1.0 if i < len(front.items) and front.ranks[i] == 0 else 0.0 for i in range(len(rows))]
    variants = sorted({r["variant"] for r in rows})
    gates = ["infeasible", "unknown", "feasible"]
    dimensions = [{"label": o, "values": [r[o] for r in rows]} for o in objectives]
    dimensions.append({"label": "mmie.py gates", "values": [gates.index(r.get("mmie_gates", "unknown")) for r in rows],
                       "tickvals": [0, 1, 2], "ticktext": gates, "range": [0, 2]})
    dimensions.append({"label": "variant", "values": [variants.index(r["variant"]) for r in rows],
                       "tickvals": list(range(len(variants))), "ticktext": variants})
    fig = go.Figure(go.Parcoords(line={"color": member, "colorscale": [[0, "#c8c8c8"], [1, "#d62728"]],
                                       "cmin": 0, "cmax": 1}, dimensions=dimensions))
    fig.update_layout(height=450, width=1000, title={"text": f"All {len(rows)} finished trials: front members red, "
                                                              "the rest grey", "font": {"size": 13}})
    return fig


def front_figures(front: Front, excluded: list[dict] = ()) -> dict:
    """The views by name: `3d` (three objectives only), `pairs`, `parallel`."""
    figures = {}
    if len(front.objectives) == 3:
        figures["3d"] = scatter3d_figure(front, excluded)
    figures["pairs"] = pairwise_figure(front, excluded)
    figures["parallel"] = parallel_figure(front, excluded)
    return figures


def front_html(front: Front, excluded: list[dict] = ()) -> str:
    """One self-contained page (plotly.js inlined once) with every view, for the parent run's artifacts."""
    parts = []
    for i, (name, fig) in enumerate(front_figures(front, excluded).items()):
        parts.append(f'<div id="{name}">' + fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"fig-{name}")
                     + "</div>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Pareto front</title></head><body>"
            + "\n".join(parts) + "</body></html>")


def front_png(front: Front, excluded: list[dict] = ()):
    """The pairwise panels as a matplotlib figure (pareto_front.png)."""
    # A bare Figure, not pyplot: no backend to choose (the driver is headless; a notebook keeps its inline one).
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    objectives = list(front.objectives)
    k = len(objectives)
    n = k - 1
    fig = Figure(figsize=(4.2 * n + 1.5, 3.8 * n + 1.2))
    axes = fig.subplots(n, n, squeeze=False)
    colours = _colours(list(front.items) + list(excluded))
    groups, off = _groups(front, excluded)
    knee = front.knee_item
    for i in range(1, k):
        for j in range(n):
            ax = axes[i - 1][j]
            if j >= i:
                ax.axis("off")
                continue
            for variant, (rows, members) in groups:
                for is_member in (False, True):
                    for feasible in (True, False):
                        pts = [r for r, m in zip(rows, members) if m == is_member
                               and (r.get("mmie_gates") != "infeasible") == feasible]
                        if not pts:
                            continue
                        ax.scatter([r[objectives[j]] for r in pts], [r[objectives[i]] for r in pts],
                                   marker="D" if is_member else "o", s=70 if is_member else 25,
                                   facecolors=colours[variant] if feasible else "none", edgecolors=colours[variant],
                                   linewidths=1.5 if is_member else 1,
                                   label=variant if (i, j, is_member, feasible) == (1, 0, False, True) else None)
            if off:
                ax.scatter([r[objectives[j]] for r in off], [r[objectives[i]] for r in off], marker="x", s=20,
                           color="#aaaaaa", label="kept off the front" if (i, j) == (1, 0) else None)
            if knee is not None:
                ax.scatter([knee[objectives[j]]], [knee[objectives[i]]], s=300, facecolors="none", edgecolors="k",
                           linewidths=2, label="knee" if (i, j) == (1, 0) else None)
            if j == 0:
                ax.set_ylabel(objectives[i])
            if i == k - 1:
                ax.set_xlabel(objectives[j])
    handles, labels = axes[0][0].get_legend_handles_labels()
    for v, c in colours.items():  # a variant with only members (or only hollow points) still gets its entry
        if v not in labels:
            handles.append(Line2D([], [], marker="o", ls="", color=c))
            labels.append(v)
    handles.append(Line2D([], [], marker="D", ls="", color="grey"))
    labels.append("front member (over all objectives)")
    handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="none", color="grey"))
    labels.append("fails mmie.py's gates")
    if n > 1:  # the matrix's empty upper-right panel holds the legend
        axes[0][n - 1].legend(handles, labels, loc="center", fontsize=8)
    else:
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    members = len(front.members)
    fig.suptitle(f"{members} front members of {len(front.items)} ranked trials over {', '.join(objectives)}",
                 fontsize=11)
    why = subtitle(front).replace("<br>", "\n")
    fig.text(0.01, 0.005, _wrap(why, 150), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.04 + 0.02 * why.count("\n"), 1 if n > 1 else 0.78, 0.96))
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())

