"""The study's Pareto front in MLflow, kept up to date by the driver as trials complete.

On every child run: tags `pareto` (true/false), `pareto_rank` (non-domination rank, "none" for trials not
ranked: stopped early, errored, diverged, degenerate or below the utility floor; study.eligibility's rule, the one
the read-back front uses too) and `degenerate` (true/false, from the trial's last full evaluation). On the parent:
`hypervolume` stepped by the number of ranked trials, and when the study ends the front as a table
(`pareto_front.json`, `mlflow.load_table`), its views over every objective (`pareto_front.html`: 3-D for three
objectives, the pairwise panels, parallel coordinates; `pareto_front.png`: the pairwise panels; study.results.
front_views) and the reference point and knee rule used. Ranks come from the trials' final results; a trial stopped
early by the scheduler never enters the front with its partial values. A tracking failure is printed and never
stops the study. The front itself is built as the read-back one is (study.results.front.front_of_rows).
"""

from __future__ import annotations

from study.eligibility import FrontRule
from study.pareto import reference_point
from study.results.front import finite, front_of_rows, sort_rows, trial_row
from study.results.front_views import front_html, front_png
from study.tracking.callback import MlflowCallback
from trainables.trial.status import (
    FINAL_STATUSES,
    STATUS_TAG,
    TrialStatus,
    trial_status,
)

# Config keys that name the trial's pieces, not knobs.
_NOT_KNOBS = ("variant", "adapter")


class ParetoRecorder(MlflowCallback):
    name = "pareto tracking"

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, rule: FrontRule):
        """`rule`: which trials the front ranks (the study config's, `StudyConfig.front_rule()`)."""
        super().__init__(tracking_uri, experiment_id, parent_run_id)
        self.rule = rule
        self.objectives = list(rule.objectives)
        self.reference = reference_point(self.objectives)
        self.trials: dict[str, dict] = {}  # trial id -> {"result", "config", "status"}, in completion order
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
        front, _ = self.front()
        return len(front.members), float(front.hypervolume())

    def update_tags(self) -> None:
        front, _ = self.front()
        ranks = {row["trial_id"]: int(rank) for row, rank in zip(front.items, front.ranks)}
        for tid in self.trials:
            rank = ranks.get(tid)
            degenerate = "true" if self.trials[tid]["result"].get("degenerate") else "false"
            tags = ("true" if rank == 0 else "false", "none" if rank is None else str(rank), degenerate)
            run_id = self.trial_run_id(tid)
            if run_id is None or self._tags.get(tid) == tags:
                continue
            self.client.set_tag(run_id, "pareto", tags[0])
            self.client.set_tag(run_id, "pareto_rank", tags[1])
            self.client.set_tag(run_id, "degenerate", tags[2])
            if self.trials[tid]["status"] == TrialStatus.STOPPED_EARLY:
                self.client.set_tag(run_id, STATUS_TAG, TrialStatus.STOPPED_EARLY)
                # Tune may end a stopped trial's actor before the trial closes its run: closed here, or it stays
                # RUNNING in MLflow for ever.
                if self.client.get_run(run_id).info.status == "RUNNING":
                    self.client.set_terminated(run_id, TrialStatus.STOPPED_EARLY.run_status)
            self._tags[tid] = tags
        if self._hypervolume_logged_at is None:  # a resumed study continues its parent's series
            history = self.client.get_metric_history(self.parent, "hypervolume")
            self._hypervolume_logged_at = max((m.step for m in history), default=0)
        if len(front.items) > self._hypervolume_logged_at:
            self.client.log_metric(self.parent, "hypervolume", front.hypervolume(), step=len(front.items))
            self._hypervolume_logged_at = len(front.items)

    # ---- the front as artifacts -----------------------------------------------------------------------------

    def rows(self) -> tuple[list[dict], list[dict]]:
        """Every finished trial with finite objectives as a row (study.results.front.trial_row): those the front
        ranks, and those it keeps off, each with its reason (`excluded`)."""
        ranked, excluded = [], []
        for tid, t in self.trials.items():
            config = t["config"]
            row = trial_row(tid, t["status"], config.get("variant", "?"), config.get("adapter", ""), t["result"],
                            self.objectives, {k: v for k, v in config.items() if k not in _NOT_KNOBS})
            reason = self.rule.exclusion(t["status"], t["result"])
            if reason is None:
                ranked.append(row)
            elif t["status"] in FINAL_STATUSES and finite(row, self.objectives):
                excluded.append({**row, "excluded": reason})
        return ranked, excluded

    def front(self):
        """(the front over the ranked trials, the finished trials kept off it)."""
        ranked, excluded = self.rows()
        return front_of_rows(ranked, self.objectives), excluded

    def front_rows(self, front=None) -> list[dict]:
        """The front's members, highest first objective first, each with its MLflow run id."""
        front = front or self.front()[0]
        return [{**row, "run_id": self.trial_run_id(row["trial_id"]) or ""}
                for row in sort_rows(front.member_items(), self.objectives)]

    def write_front(self) -> None:
        """Tags, hypervolume and the front's table and views on the parent run (called once trials are done)."""
        self.update_tags()
        front, excluded = self.front()
        if not front.items:
            return
        rows = self.front_rows(front)
        # The table names a trial by its run name (Ray's trial name, as the UI shows it), not its bare id: Ray's ids
        # are 8 hex digits, and mlflow.load_table (pandas) reads a column of ids such as 8284e218 as floats.
        for r in rows:
            r["trial"] = self.client.get_run(r["run_id"]).info.run_name if r["run_id"] else f"trial {r['trial_id']}"
            del r["trial_id"]
        columns = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("trial", "variant", "knee"), k))
        table = {c: [r.get(c) if not isinstance(r.get(c), (list, dict)) else str(r.get(c)) for r in rows] for c in columns}
        self.client.log_table(self.parent, data=table, artifact_file="pareto_front.json")
        self.client.log_dict(self.parent, {"objectives": self.objectives, "reference_point": self.reference.tolist(),
                                           "utility_floor": self.rule.utility_floor, "include_diverged": self.rule.include_diverged,
                                           "include_degenerate": self.rule.include_degenerate,
                                           "knee": front.knee.rule()}, "pareto_reference.json")
        self.client.log_figure(self.parent, front_png(front, excluded), "pareto_front.png")
        self.client.log_text(self.parent, front_html(front, excluded), "pareto_front.html")
        self.client.set_tag(self.parent, "front_size", str(len(rows)))
        self.client.set_tag(self.parent, "knee", front.knee.why([r["trial_id"] for r in front.items])[:5000])
