"""The study's Pareto front in MLflow, kept up to date by the driver as trials complete.

On every child run: tags `pareto` (true/false), `pareto_rank` (non-domination rank, "none" for trials not
ranked: stopped early, errored, diverged, degenerate or below the utility floor; study.eligibility's rule, the one
the read-back front uses too) and `degenerate` (true/false, from the trial's last full evaluation). On the parent: `hypervolume` stepped by the number
of ranked trials, and when the study ends the front as a table (`pareto_front.json`, `mlflow.load_table`), as
plots (`pareto_front.png`, `pareto_front.html`: every trial, the front highlighted, colour by variant) and the
reference point used. Ranks come from the trials' final results; a trial stopped early by the scheduler never
enters the front with its partial values. A tracking failure is printed and never stops the study.
"""

from __future__ import annotations

import numpy as np

from study.eligibility import FrontRule
from study.oracle import FRONT_METRICS
from study.pareto import hypervolume, knee_point, nondominated_ranks, reference_point
from study.tracking.callback import MlflowCallback
from trainables.metrics.mmie import gates_verdict, verdict_label
from trainables.trial.status import STATUS_TAG, TrialStatus, trial_status


class ParetoRecorder(MlflowCallback):
    name = "pareto tracking"

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, objectives: list[str],
                 utility_floor: float | None = None, include_diverged: bool = False,
                 include_degenerate: bool = False):
        super().__init__(tracking_uri, experiment_id, parent_run_id)
        self.objectives = list(objectives)
        self.floor = utility_floor
        self.rule = FrontRule(tuple(objectives), utility_floor, include_diverged, include_degenerate)
        self.reference = reference_point(self.objectives)
        self.trials: dict[str, dict] = {}  # trial id -> {"result", "config", "status"}, in completion order
        self._run_ids: dict[str, str] = {}
        self._tags: dict[str, tuple[str, ...]] = {}  # what each child run is tagged with now
        self._hypervolume_logged_at: int | None = None  # ranked trials when hypervolume was last logged

    # ---- Ray Tune callback hooks ----------------------------------------------------------------------------

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._on_finished(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._on_finished(trial, error=True)

    def _on_finished(self, trial, error: bool) -> None:
        self.record_result(dict(trial.last_result or {}), dict(trial.config), error, trial_id=trial.trial_id)
        self._safely(self.update_tags)

    # ---- bookkeeping ----------------------------------------------------------------------------------------

    def record_result(self, result: dict, config: dict, error: bool, trial_id: str | None = None) -> None:
        trial_id = trial_id or result["trial_id"]
        self.trials[trial_id] = {
            "result": result, "config": config, "status": trial_status(result, error),
        }

    def front_summary(self) -> tuple[int, float]:
        """The live front's size and hypervolume (study.progress shows them while the study runs)."""
        ids, points = self.ranked()
        if not ids:
            return 0, 0.0
        return int((nondominated_ranks(points) == 0).sum()), float(hypervolume(points, self.reference))

    def ranked(self) -> tuple[list[str], np.ndarray]:
        """Trial ids eligible for the front (study.eligibility's rule) and their points."""
        ids, points = [], []
        for tid, t in self.trials.items():
            if self.rule.ranks(t["status"], t["result"]):
                ids.append(tid)
                points.append([t["result"][m] for m in self.objectives])
        return ids, np.array(points, dtype=float).reshape(len(points), len(self.objectives))

    def _run_id(self, trial_id: str) -> str | None:
        if trial_id not in self._run_ids:
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.trial_id = '{trial_id}' and tags.`mlflow.parentRunId` = '{self.parent}'",
                max_results=1,
            )
            if not found:
                return None
            self._run_ids[trial_id] = found[0].info.run_id
        return self._run_ids[trial_id]

    def update_tags(self) -> None:
        ids, points = self.ranked()
        ranks = dict(zip(ids, nondominated_ranks(points).tolist())) if ids else {}
        for tid in self.trials:
            rank = ranks.get(tid)
            degenerate = "true" if self.trials[tid]["result"].get("degenerate") else "false"
            tags = ("true" if rank == 0 else "false", "none" if rank is None else str(rank), degenerate)
            run_id = self._run_id(tid)
            if run_id is None or self._tags.get(tid) == tags:
                continue
            self.client.set_tag(run_id, "pareto", tags[0])
            self.client.set_tag(run_id, "pareto_rank", tags[1])
            self.client.set_tag(run_id, "degenerate", tags[2])
            if self.trials[tid]["status"] == TrialStatus.STOPPED_EARLY:
                self.client.set_tag(run_id, STATUS_TAG, TrialStatus.STOPPED_EARLY)
            self._tags[tid] = tags
        if self._hypervolume_logged_at is None:  # a resumed study continues its parent's series
            history = self.client.get_metric_history(self.parent, "hypervolume")
            self._hypervolume_logged_at = max((m.step for m in history), default=0)
        if len(ids) > self._hypervolume_logged_at:
            self.client.log_metric(self.parent, "hypervolume", hypervolume(points, self.reference), step=len(ids))
            self._hypervolume_logged_at = len(ids)

    # ---- the front as artifacts -----------------------------------------------------------------------------

    def front_rows(self) -> list[dict]:
        ids, points = self.ranked()
        if not ids:
            return []
        ranks = nondominated_ranks(points)
        front = [i for i in range(len(ids)) if ranks[i] == 0]
        knee = front[knee_point(points[front])]
        rows = []
        for i in front:
            t = self.trials[ids[i]]
            row = {"trial_id": ids[i], "run_id": self._run_id(ids[i]) or "", "knee": i == knee,
                   "variant": t["config"].get("variant"), "adapter": t["config"].get("adapter", "")}
            row.update({m: float(points[i, j]) for j, m in enumerate(self.objectives)})
            row.update({m: t["result"][m] for m in FRONT_METRICS if m in t["result"] and m not in row})
            row["mmie_gates"] = gates_verdict(t["result"])
            row["mmie_verdict"] = verdict_label(t["result"])
            row.update({k: v for k, v in t["config"].items() if k not in row})
            rows.append(row)
        return sorted(rows, key=lambda r: -r[self.objectives[0]])

    def write_front(self) -> None:
        """Tags, hypervolume and the front's table and plots on the parent run (called once trials are done)."""
        self.update_tags()
        rows = self.front_rows()
        if not rows:
            return
        # The table names a trial by its run name (Ray's trial name, as the UI shows it), not its bare id: Ray's ids
        # are 8 hex digits, and mlflow.load_table (pandas) reads a column of ids such as 8284e218 as floats.
        for r in rows:
            r["trial"] = self.client.get_run(r["run_id"]).info.run_name if r["run_id"] else f"trial {r['trial_id']}"
            del r["trial_id"]
        columns = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("trial", "variant", "knee"), k))
        table = {c: [r.get(c) if not isinstance(r.get(c), (list, dict)) else str(r.get(c)) for r in rows] for c in columns}
        self.client.log_table(self.parent, data=table, artifact_file="pareto_front.json")
        self.client.log_dict(self.parent, {"objectives": self.objectives, "reference_point": self.reference.tolist(),
                                           "utility_floor": self.floor, "include_diverged": self.rule.include_diverged,
                                           "include_degenerate": self.rule.include_degenerate}, "pareto_reference.json")
        fig = self._figure()
        self.client.log_figure(self.parent, fig, "pareto_front.png")
        self.client.log_text(self.parent, self._html(), "pareto_front.html")
        self.client.set_tag(self.parent, "front_size", str(len(rows)))

    def _points_by_variant(self):
        ids, points = self.ranked()
        ranks = nondominated_ranks(points) if ids else np.array([])
        by_variant: dict[str, list] = {}
        for i, tid in enumerate(ids):
            by_variant.setdefault(self.trials[tid]["config"].get("variant", "?"), []).append((points[i], ranks[i], tid))
        front = points[ranks == 0] if ids else points
        return by_variant, front[np.argsort(front[:, 0])] if len(front) else front

    def _figure(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        by_variant, front = self._points_by_variant()
        x, y = self.objectives[0], self.objectives[1]
        fig, ax = plt.subplots(figsize=(7, 5))
        for variant, items in sorted(by_variant.items()):
            pts = np.array([p for p, _, _ in items])
            ax.scatter(pts[:, 0], pts[:, 1], label=variant, alpha=0.7)
        ax.plot(front[:, 0], front[:, 1], "k--", lw=1, label="Pareto front")
        ax.scatter(front[:, 0], front[:, 1], s=120, facecolors="none", edgecolors="k")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(f"{len(front)} front members of {sum(len(v) for v in by_variant.values())} finished trials")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def _html(self) -> str:
        import plotly.graph_objects as go

        by_variant, front = self._points_by_variant()
        fig = go.Figure()
        for variant, items in sorted(by_variant.items()):
            pts = np.array([p for p, _, _ in items])
            fig.add_trace(go.Scatter(
                x=pts[:, 0], y=pts[:, 1], mode="markers", name=variant,
                text=[f"trial {tid}, rank {int(r)}" for _, r, tid in items],
            ))
        fig.add_trace(go.Scatter(x=front[:, 0], y=front[:, 1], mode="lines+markers", name="Pareto front",
                                 line={"dash": "dash", "color": "black"}))
        fig.update_layout(xaxis_title=self.objectives[0], yaxis_title=self.objectives[1])
        return fig.to_html(include_plotlyjs=True, full_html=True)
