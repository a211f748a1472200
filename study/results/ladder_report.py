"""The ladder report: does each adaptive step help? Read entirely from MLflow, so it regenerates without training.

A ladder is one study per (rung, seed), named `<ladder>-<rung>-s<seed>`, every rung tuned on the same budget.
Per rung and seed: the hypervolume of the study's front, the best forget efficacy at utility >= 0.95 and >= 0.9,
extraction strength and leakage at the knee, time per step.

The design is paired: a seed fixes the data split and the search seed for every rung, so each rung is compared
with the baseline (static GA) seed by seed. The verdict reads the interval of the paired differences (rung minus
baseline), never whether two rungs' own intervals overlap (two 95% intervals can overlap while the difference is
significant). The interval is a paired t-interval: with three seeds a bootstrap has only ten distinct resamples
and its percentile interval is far too narrow, while the t-interval is exact if the differences are normal (which
three seeds cannot check). With a margin m, the smallest difference worth acting on:
- "better than GA": the interval lies above 0; "worse than GA": below 0;
- "no difference detected (interval [a, b] excludes differences beyond ±m)": it holds 0 and lies within ±m;
- "underpowered": it holds 0 and reaches past +m or -m, so it neither shows a difference nor rules out one
  worth acting on (also with fewer than two paired seeds).

Values stay in their range: utility is capped at 1 (a retain perplexity below the base model's is retain
fine-tuning, not utility), so hypervolumes lie in [0, 1]; a seed where no trial reaches a utility floor has best
forget efficacy 0 there (the base model itself reaches any floor with nothing forgotten), and the report shows
on how many seeds one did; intervals are clipped to the range.

Robustness: where the studies ran the relearning attack (trainables.metrics.robustness), the knee's forget efficacy and
ES before and after it, the share of its forgetting the attack brought back, and that share against the retain-only
oracle's (the model that never saw the forget language, measured on each study's parent run): forgetting that
survives brings back no larger a share than the oracle's (`relearn_excess` <= 0). The knee's forget efficacy after
the attack is compared with GA's seed by seed, as the other metrics are.

Metric validity: the rank correlation between per-step forget_efficacy (token mass) and 1 - ES over every
evaluated checkpoint, and, where the runs log it, 1 - mmie.py's ES (`mmie/es_forget`). If the token-mass proxy
tracks ES poorly (Spearman below 0.8), the fronts use 1 - ES as the forget objective instead, and the report
says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient
from scipy import stats

from study.pareto import build_front, nondominated_ranks
from study.results.front import StudyRecord, TrialRecord, load_study, ranked_trials
from trainables.trial.status import ENDED_STATUSES, FINAL_STATUSES

VALIDITY_THRESHOLD = 0.8
UTILITY_FLOORS = (0.95, 0.9)
ES_FORGET_OBJECTIVE = "1-es_forget"
MMIE_ES_FORGET = "mmie/es_forget"
# Hypervolume and forget efficacy both lie in [0, 1]; 0.05 is five points of forget efficacy at a utility floor,
# or 5% of the unit square of hypervolume: smaller differences are not worth choosing a method by.
MEANINGFUL_DIFFERENCE = 0.05
UNIT_RANGE = (0.0, 1.0)


def _clip(x: float, value_range: tuple[float, float] | None) -> float:
    return x if value_range is None or math.isnan(x) else min(max(x, value_range[0]), value_range[1])


def mean_ci(values: list[float], level: float = 0.95,
            value_range: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Mean and a two-sided t-interval, clipped to `value_range` if given; the interval is NaN with fewer than
    two values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, _clip(mean - half, value_range), _clip(mean + half, value_range)


@dataclass(frozen=True)
class PairedDifference:
    """A rung against the baseline on one metric, over the seeds both ran: per-seed differences (rung minus
    baseline), their mean, its paired t-interval (clipped to what a difference of the metric can be) and the
    paired t-test's two-sided p-value."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    p_value: float


def paired_difference(values: dict[int, float], baseline: dict[int, float], level: float = 0.95,
                      value_range: tuple[float, float] = UNIT_RANGE) -> PairedDifference:
    """The paired comparison of `values` with `baseline` (each seed -> the metric's value) on their common seeds."""
    seeds = tuple(sorted(set(values) & set(baseline)))
    d = np.array([values[s] - baseline[s] for s in seeds], dtype=float)
    if len(d) < 2:
        mean = float(d.mean()) if len(d) else math.nan
        return PairedDifference(seeds, tuple(d.tolist()), mean, math.nan, math.nan, math.nan)
    mean, lo, hi = mean_ci(d.tolist(), level)
    sd = float(d.std(ddof=1))
    if sd > 0:
        p = float(stats.ttest_rel([values[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    else:  # every seed moved by exactly the same amount: a certain difference, or none
        p = 1.0 if mean == 0 else 0.0
    span = value_range[1] - value_range[0]
    return PairedDifference(seeds, tuple(d.tolist()), mean, _clip(lo, (-span, span)), _clip(hi, (-span, span)), p)


def verdict(diff: PairedDifference, margin: float = MEANINGFUL_DIFFERENCE, baseline: str = "GA") -> str:
    """The plain verdict of the module docstring for one paired difference."""
    lo, hi = diff.low, diff.high
    if math.isnan(lo) or math.isnan(hi):
        return "underpowered (fewer than 2 paired seeds)"
    if lo > 0:
        return f"better than {baseline}"
    if hi < 0:
        return f"worse than {baseline}"
    if -margin <= lo and hi <= margin:
        return f"no difference detected (interval [{lo:+.3f}, {hi:+.3f}] excludes differences beyond ±{margin:g})"
    return "underpowered"


def forget_value(trial: TrialRecord, objective: str) -> float | None:
    if objective == ES_FORGET_OBJECTIVE:
        es = trial.metrics.get("es_forget")
        return None if es is None else 1.0 - es
    return trial.metrics.get(objective)


@dataclass
class SeedResult:
    """One (rung, seed) study, summarised. `best_forget[floor]` is 0 where no trial reached the floor
    (`reached[floor]` False)."""

    rung: str
    seed: int
    hypervolume: float
    best_forget: dict[float, float]
    reached: dict[float, bool]
    knee: dict[str, float]
    seconds_per_step: float
    statuses: dict[str, int]
    front: list[tuple[float, float]] = field(default_factory=list)
    oracle: dict[str, float] = field(default_factory=dict)  # the parent run's oracle_* figures
    relearn_steps: int | None = None  # the attack's length, where the study ran it
    # Finished trials (completed or diverged) kept off the front, by reason (study.eligibility): "degenerate", ...
    off_front: dict[str, int] = field(default_factory=dict)

    def knee_curve(self) -> list[tuple[int, float]]:
        return relearn_curve(self.knee, "", self.relearn_steps)

    def oracle_curve(self) -> list[tuple[int, float]]:
        return relearn_curve(self.oracle, "oracle_", self.relearn_steps)


def relearn_curve(metrics: dict[str, float], prefix: str, steps: int | None) -> list[tuple[int, float]]:
    """forget_efficacy along the relearning attack, (attack step, value) from step 0 (before it), out of the
    metrics the attack logs (`relearn_forget_efficacy_<k>` along the way, `relearn_forget_efficacy` at its end);
    empty where it did not run."""
    end = metrics.get(f"{prefix}relearn_forget_efficacy")
    start = metrics.get(f"{prefix}forget_efficacy")
    if end is None or start is None or steps is None:
        return []
    along = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in metrics.items()
                   if k.startswith(f"{prefix}relearn_forget_efficacy_") and k.rsplit("_", 1)[1].isdigit())
    return [(0, start), *along, (steps, end)]


def summarise_study(record: StudyRecord, rung: str, seed: int, forget_objective: str) -> SeedResult:
    trials = [t for t in ranked_trials(record) if forget_value(t, forget_objective) is not None
              and t.metrics.get("utility") is not None]
    # utility capped at 1 (an unlearning run is not better than its model for fitting the retain set)
    front = build_front(trials, [forget_objective, "utility"], reference=np.zeros(2),
                        value=lambda t, name: forget_value(t, name) if name == forget_objective else min(1.0, t.metrics[name]))
    points = front.points
    statuses: dict[str, int] = {}
    off_front: dict[str, int] = {}
    rule = record.front_rule()
    for t in record.trials:
        statuses[t.status] = statuses.get(t.status, 0) + 1
        reason = rule.exclusion(t.status, t.metrics) if t.status.is_final else None
        if reason is not None:
            off_front[reason] = off_front.get(reason, 0) + 1
    reached = {f: bool(np.any(points[:, 1] >= f)) for f in UTILITY_FLOORS}
    best = {f: max(0.0, float(points[points[:, 1] >= f, 0].max())) if reached[f] else 0.0 for f in UTILITY_FLOORS}
    if not trials:
        return SeedResult(rung, seed, 0.0, best, reached, {}, math.nan, statuses, off_front=off_front)
    front_idx = np.array(front.members)
    knee, knee_metrics = front.knee_item, {}
    if knee is not None:  # None: no front member unlearned (study.pareto.knee)
        knee_metrics = {k: v for k, v in knee.metrics.items()
                        if k.startswith(("es_", "relearn_")) or k.endswith("utility") or k == "forget_efficacy"}
        knee_metrics[forget_objective] = forget_value(knee, forget_objective)
    steps = record.config.get("robustness.relearn_steps")
    ran_attack = record.config.get("robustness.relearn") == "True" and steps is not None
    return SeedResult(
        rung=rung, seed=seed, hypervolume=front.hypervolume(), best_forget=best, reached=reached,
        knee=knee_metrics, seconds_per_step=float(np.median([t.metrics.get("seconds_per_step", math.nan) for t in trials])),
        statuses=statuses, front=[tuple(p) for p in points[front_idx]],
        oracle={k: v for k, v in record.parent_metrics.items() if k.startswith("oracle_")},
        relearn_steps=int(steps) if ran_attack else None, off_front=off_front,
    )


def ladder_studies(client: MlflowClient, ladder: str) -> dict[tuple[str, int], str]:
    """(rung, seed) -> study name, for every experiment named `<ladder>-<rung>-s<seed>`."""
    found = {}
    # In creation order: the ladder runs its rungs in the config's order, and the report keeps it.
    experiments = sorted(client.search_experiments(filter_string=f"name LIKE '{ladder}-%'"),
                         key=lambda e: (e.creation_time or 0, e.name))
    for exp in experiments:
        rest = exp.name[len(ladder) + 1:]
        rung, sep, seed = rest.rpartition("-s")
        if sep and seed.isdigit():
            found[(rung, int(seed))] = exp.name
    return found


def checkpoint_pairs(client: MlflowClient, records: list[StudyRecord], x: str, y: str) -> list[tuple[float, float]]:
    """(x, y) at every step where both metrics were logged, over every trial of the given studies."""
    pairs = []
    for record in records:
        for trial in record.trials:
            ys = {m.step: m.value for m in client.get_metric_history(trial.run_id, y)}
            if ys:
                pairs += [(m.value, ys[m.step]) for m in client.get_metric_history(trial.run_id, x) if m.step in ys]
    return pairs


def spearman(pairs: list[tuple[float, float]]) -> float:
    if len(pairs) < 3:
        return math.nan
    a, b = zip(*pairs)
    if len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


@dataclass(frozen=True)
class ProxyCheck:
    """How well per-step forget_efficacy ranks checkpoints like 1 - an ES metric does."""

    es_metric: str
    checkpoints: int
    spearman: float


def proxy_check(client: MlflowClient, records: list[StudyRecord], es_metric: str) -> ProxyCheck:
    pairs = checkpoint_pairs(client, records, "forget_efficacy", es_metric)
    return ProxyCheck(es_metric, len(pairs), spearman([(fe, 1.0 - es) for fe, es in pairs]))


@dataclass
class LadderReport:
    ladder: str
    rungs: list[str]  # the baseline first
    seeds: list[int]
    results: list[SeedResult]
    es_check: ProxyCheck
    mmie_es_check: ProxyCheck  # 0 checkpoints where the runs do not log mmie.py's ES
    forget_objective: str
    margin: float = MEANINGFUL_DIFFERENCE

    @property
    def baseline(self) -> str:
        return self.rungs[0]

    @property
    def baseline_label(self) -> str:
        return "GA" if self.baseline == "ga" else self.baseline

    def by_rung(self, rung: str) -> list[SeedResult]:
        return [r for r in self.results if r.rung == rung]

    def values(self, rung: str, metric: str) -> dict[int, float]:
        """seed -> the rung's value of one of `COMPARED_METRICS`, on the seeds where it was measured."""
        values = {r.seed: COMPARED_METRICS[metric](r) for r in self.by_rung(rung)}
        return {seed: v for seed, v in values.items() if v is not None}

    @property
    def attacked(self) -> bool:
        """Did any study's knee go through the relearning attack?"""
        return any("relearn_forget_efficacy" in r.knee for r in self.results)

    def compared_metrics(self) -> list[str]:
        return [m for m in COMPARED_METRICS if m != RELEARN_COMPARED or self.attacked]

    def against_baseline(self, rung: str, metric: str) -> PairedDifference:
        return paired_difference(self.values(rung, metric), self.values(self.baseline, metric))

    def verdict(self, rung: str, metric: str = "hypervolume") -> str:
        return verdict(self.against_baseline(rung, metric), self.margin, self.baseline_label)


def _best_forget(floor: float):
    return lambda r: r.best_forget[floor]


RELEARN_COMPARED = "forget efficacy after the relearning attack, at the knee"
# Each metric compared seed by seed, all in [0, 1]; the headline verdict is the hypervolume's. A seed whose knee
# was not attacked (a study without the attack, or a knee that diverged) has no value for the last one.
COMPARED_METRICS = {"hypervolume": lambda r: r.hypervolume,
                    **{f"best forget @ utility ≥ {f:g}": _best_forget(f) for f in UTILITY_FLOORS},
                    RELEARN_COMPARED: lambda r: r.knee.get("relearn_forget_efficacy")}


def build_report(tracking_uri: str, ladder: str, margin: float = MEANINGFUL_DIFFERENCE) -> LadderReport:
    client = MlflowClient(tracking_uri)
    studies = ladder_studies(client, ladder)
    if not studies:
        raise ValueError(f"no ladder studies named {ladder}-<rung>-s<seed> at {tracking_uri}")
    records = {key: load_study(tracking_uri, name) for key, name in studies.items()}
    es_check = proxy_check(client, list(records.values()), "es_forget")
    mmie_check = proxy_check(client, list(records.values()), MMIE_ES_FORGET)
    forget_objective = "forget_efficacy" if not es_check.spearman < VALIDITY_THRESHOLD else ES_FORGET_OBJECTIVE
    results = [summarise_study(rec, rung, seed, forget_objective) for (rung, seed), rec in records.items()]
    rungs = list(dict.fromkeys(rung for rung, _ in studies))
    if "ga" in rungs:  # static GA is the baseline every rung is compared with
        rungs.insert(0, rungs.pop(rungs.index("ga")))
    seeds = sorted({seed for _, seed in studies})
    return LadderReport(ladder, rungs, seeds, results, es_check, mmie_check, forget_objective, margin)


def _fmt(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    x = round(x, digits) + 0.0  # no "-0.000"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _ci(values: list[float], value_range: tuple[float, float] | None = UNIT_RANGE) -> str:
    mean, lo, hi = mean_ci(values, value_range=value_range)
    return f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]" if not math.isnan(lo) else _fmt(mean)


def _diff(d: PairedDifference) -> str:
    if math.isnan(d.low):
        return _fmt(d.mean, sign=True)
    return f"{_fmt(d.mean, sign=True)} [{_fmt(d.low, sign=True)}, {_fmt(d.high, sign=True)}]"


def headline_table(report: LadderReport) -> str:
    base = report.baseline_label
    floors = " | ".join(f"best forget @ utility ≥ {f:g}: mean [95% CI] (seeds reaching it)" for f in UTILITY_FLOORS)
    lines = [f"| rung | seeds | hypervolume: mean [95% CI] | {floors} | hypervolume − {base}, paired: "
             f"mean [95% CI] | vs {base} |", "|---|---|---|" + "---|" * len(UTILITY_FLOORS) + "---|---|"]
    for rung in report.rungs:
        rs = report.by_rung(rung)
        best = [f"{_ci([r.best_forget[f] for r in rs])} ({sum(r.reached[f] for r in rs)}/{len(rs)})"
                for f in UTILITY_FLOORS]
        if rung == report.baseline:
            diff, note = "–", "baseline"
        else:
            diff, note = _diff(report.against_baseline(rung, "hypervolume")), report.verdict(rung)
        lines.append(f"| {rung} | {len(rs)} | {_ci([r.hypervolume for r in rs])} | {' | '.join(best)} | {diff} | "
                     f"{note} |")
    return "\n".join(lines)


def paired_table(report: LadderReport, metric: str) -> str:
    lines = [f"| rung | {metric}: rung − {report.baseline_label} per seed | mean [95% CI] | p (paired t) | verdict |",
             "|---|---|---|---|---|"]
    for rung in report.rungs[1:]:
        d = report.against_baseline(rung, metric)
        per_seed = ", ".join(f"s{s} {_fmt(x, sign=True)}" for s, x in zip(d.seeds, d.differences)) or "–"
        lines.append(f"| {rung} | {per_seed} | {_diff(d)} | {_fmt(d.p_value)} | {report.verdict(rung, metric)} |")
    return "\n".join(lines)


def off_front_lines(report: LadderReport) -> list[str]:
    """Per rung, the finished trials its fronts left out and why: a rung whose trials are all degenerate scores 0
    because its output is not language, not because it forgot nothing."""
    lines = []
    for rung in report.rungs:
        rs = report.by_rung(rung)
        finished = sum(r.statuses.get(s, 0) for r in rs for s in FINAL_STATUSES)
        reasons: dict[str, int] = {}
        for r in rs:
            for reason, n in r.off_front.items():
                reasons[reason] = reasons.get(reason, 0) + n
        if reasons:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
            lines.append(f"- {rung}: of {finished} finished trials, kept off the fronts: {why}.")
    if not lines:
        return []
    return ["Finished trials the fronts leave out (study.eligibility's rule: degenerate output is not forgetting, a "
            "diverged run is not the budget's):", "", *lines, ""]


def reading_guide(report: LadderReport) -> list[str]:
    base, m = report.baseline_label, report.margin
    return [
        f"Each rung is compared with {base} seed by seed (a seed fixes the data split and the search seed for "
        f"every rung): the verdict reads the 95% paired t-interval of the per-seed differences (rung − {base}), "
        "not whether the rungs' own intervals overlap. A paired t-interval rather than a bootstrap: with so few "
        "seeds a bootstrap has only a handful of distinct resamples and its interval is far too narrow.",
        "",
        f"- **better than {base}** / **worse than {base}**: the interval lies above / below 0.",
        f"- **no difference detected**: the interval holds 0 and lies within ±{m:g}, the smallest difference "
        "worth acting on (five points of forget efficacy, or 5% of the unit square of hypervolume).",
        f"- **underpowered**: the interval holds 0 and reaches past +{m:g} or −{m:g}: this many seeds can "
        "neither show a difference nor rule out one worth acting on.",
        "",
        "Utility is capped at 1, so hypervolume and forget efficacy lie in [0, 1] and intervals are clipped to "
        "it. A seed where no trial reaches a utility floor counts as 0 for that floor (the base model reaches any "
        "floor with nothing forgotten); the count of seeds where a trial did is shown beside the mean.",
    ]


def validity_lines(report: LadderReport) -> list[str]:
    es, mmie = report.es_check, report.mmie_es_check
    lines = [f"- Spearman(forget_efficacy, 1 − ES) over {es.checkpoints} evaluated checkpoints: {_fmt(es.spearman)}."]
    if mmie.checkpoints:
        lines.append(f"- Spearman(forget_efficacy, 1 − mmie.py's ES `{MMIE_ES_FORGET}`) over {mmie.checkpoints} "
                     f"evaluated checkpoints: {_fmt(mmie.spearman)}.")
        if mmie.spearman < VALIDITY_THRESHOLD:
            lines.append(f"- The token-mass proxy tracks mmie.py's ES poorly (below {VALIDITY_THRESHOLD}): what "
                         "mmie.py reports may rank these trials differently.")
    else:
        lines.append(f"- mmie.py's ES (`{MMIE_ES_FORGET}`) is not logged in these runs: the proxy is not checked "
                     "against it.")
    if report.forget_objective == ES_FORGET_OBJECTIVE:
        lines.append(f"- The token-mass proxy tracks ES poorly (below {VALIDITY_THRESHOLD}): the fronts above use "
                     "1 − ES as the forget objective instead.")
    else:
        lines.append(f"- The token-mass proxy tracks ES (at least {VALIDITY_THRESHOLD}): the fronts use forget_efficacy.")
    return lines


def markdown(report: LadderReport) -> str:
    base = report.baseline_label
    out = [f"# Ladder report: {report.ladder}", "",
           f"Rungs {', '.join(report.rungs)}; seeds {', '.join(map(str, report.seeds))}; "
           f"front objectives ({report.forget_objective}, utility capped at 1), reference point (0, 0).", "",
           "## Does each step help?", "", headline_table(report), "", *off_front_lines(report), *reading_guide(report),
           "",
           f"## Paired differences against {base}", ""]
    for metric in report.compared_metrics():
        out += [paired_table(report, metric), ""]
    out += ["## At each rung's knee (mean over seeds)", "",
            "| rung | ES forget | ES mixed | ES cross-lingual (mean) | xlang_utility | mixed_utility | s/step | "
            "trials (completed / stopped early / diverged / error) |", "|---|---|---|---|---|---|---|---|"]
    for rung in report.rungs:
        rs = report.by_rung(rung)

        def avg(key, rs=rs):
            vals = [r.knee.get(key) for r in rs if r.knee.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        xl = [np.mean([v for k, v in r.knee.items() if k.startswith("es_xlang_")]) for r in rs
              if any(k.startswith("es_xlang_") for k in r.knee)]
        counts = {s: sum(r.statuses.get(s, 0) for r in rs) for s in ENDED_STATUSES}
        out.append(f"| {rung} | {_fmt(avg('es_forget'))} | {_fmt(avg('es_mixed'))} | "
                   f"{_fmt(float(np.mean(xl)) if xl else None)} | {_fmt(avg('xlang_utility'))} | "
                   f"{_fmt(avg('mixed_utility'))} | {_fmt(float(np.nanmean([r.seconds_per_step for r in rs])))} | "
                   f"{' / '.join(str(counts[s]) for s in counts)} |")
    out += ["", "## Does the forgetting survive the relearning attack?", "", *robustness_lines(report)]
    out += ["", "## Metric validity", "", *validity_lines(report)]
    out += ["", "![fronts](ladder_fronts.png)", "", "![hypervolume](ladder_hypervolume.png)", ""]
    if report.attacked:
        out += ["![relearning](ladder_relearning.png)", ""]
    return "\n".join(out)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _before_after(rs: list[dict[str, float]], key: str, prefix: str = "") -> str:
    before = _mean(m.get(f"{prefix}{key}") for m in rs)
    after = _mean(m.get(f"{prefix}relearn_{key}") for m in rs)
    return f"{_fmt(before)} → {_fmt(after)}"


def robustness_lines(report: LadderReport) -> list[str]:
    """Per rung, the knee before and after the relearning attack (mean over seeds), against the oracle."""
    if not report.attacked:
        return ["The relearning attack did not run in these studies (`robustness.relearn: false`): the fronts "
                "cannot tell forgetting that an attack undoes from forgetting that survives it."]
    steps = sorted({r.relearn_steps for r in report.results if r.relearn_steps})
    lines = [f"At each seed's knee, the relearning attack ({', '.join(map(str, steps))} steps of fine-tuning on "
             "held-out forget lines; `robustness:` in the study config): mean over seeds. *Share back*: the "
             "share of the knee's forgetting the attack undid. *Excess*: that share minus the retain-only "
             "oracle's; at most 0 when the knee relearns no faster than a model that never saw the language.", "",
             "| rung | forget_efficacy before → after | ES forget before → after | share back | excess over the "
             "oracle | seeds with excess ≤ 0 |", "|---|---|---|---|---|---|"]
    for rung in report.rungs:
        knees = [r.knee for r in report.by_rung(rung) if "relearn_forget_efficacy" in r.knee]
        excess = [k["relearn_excess"] for k in knees if math.isfinite(k.get("relearn_excess", math.nan))]
        survives = f"{sum(e <= 0 for e in excess)}/{len(excess)}" if excess else "–"
        lines.append(f"| {rung} | {_before_after(knees, 'forget_efficacy')} | {_before_after(knees, 'es_forget')} | "
                     f"{_fmt(_mean(k.get('relearn_share_back') for k in knees))} | "
                     f"{_fmt(_mean(excess), sign=True)} | {survives} |")
    oracles = [r.oracle for r in report.results if "oracle_relearn_forget_efficacy" in r.oracle]
    if oracles:
        lines.append(f"| retain-only oracle | {_before_after(oracles, 'forget_efficacy', 'oracle_')} | "
                     f"{_before_after(oracles, 'es_forget', 'oracle_')} | "
                     f"{_fmt(_mean(o.get('oracle_relearn_share_back') for o in oracles))} | – | – |")
    else:
        lines += ["", "These studies measured no retain-only oracle (`robustness.oracle`), so there is no excess "
                      "to compare with."]
    return lines


def plots(report: LadderReport, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for rung in report.rungs:
        pts = np.array([p for r in report.by_rung(rung) for p in r.front]).reshape(-1, 2)
        if len(pts):
            dots = ax.scatter(pts[:, 0], pts[:, 1], alpha=0.5, label=rung)
            pooled = pts[nondominated_ranks(pts) == 0]
            pooled = pooled[np.argsort(pooled[:, 0])]
            ax.plot(pooled[:, 0], pooled[:, 1], "--", color=dots.get_facecolor()[0], alpha=0.9)
    ax.set_xlabel(report.forget_objective)
    ax.set_ylabel("utility (capped at 1)")
    ax.set_title("Each seed's front members (dots) and the rung's front over all seeds (dashed)")
    ax.legend(fontsize=8)
    fronts = _save(fig, out_dir / "ladder_fronts.png", plt)

    # The verdict's own picture: per-seed paired differences, their mean and interval, and the ±margin band.
    fig, ax = plt.subplots(figsize=(7, 4))
    rungs = report.rungs[1:]
    ax.axhspan(-report.margin, report.margin, color="0.9", label=f"±{report.margin:g}")
    ax.axhline(0, color="0.5", lw=0.8)
    for i, rung in enumerate(rungs):
        d = report.against_baseline(rung, "hypervolume")
        ax.scatter([i] * len(d.differences), d.differences, color="C0", alpha=0.5, s=14)
        if not math.isnan(d.low):
            ax.errorbar([i], [d.mean], yerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o", color="k", capsize=4)
    ax.set_xticks(range(len(rungs)), rungs, rotation=30, ha="right")
    ax.set_ylabel(f"hypervolume − {report.baseline_label} (paired, 95% CI)")
    ax.legend(fontsize=8)
    hv = _save(fig, out_dir / "ladder_hypervolume.png", plt)
    images = [fronts, hv]
    if report.attacked:
        images.append(relearning_plot(report, out_dir, plt))
    return images


def _mean_curve(curves: list[list[tuple[int, float]]]) -> tuple[list[int], list[float]]:
    """The mean over curves at the attack steps they all measured."""
    common = sorted(set.intersection(*(set(dict(c)) for c in curves))) if curves else []
    return common, [float(np.mean([dict(c)[s] for c in curves])) for s in common]


def relearning_plot(report: LadderReport, out_dir: Path, plt) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rung in report.rungs:
        steps, values = _mean_curve([c for c in (r.knee_curve() for r in report.by_rung(rung)) if c])
        if steps:
            ax.plot(steps, values, "o-", label=rung, alpha=0.85)
    steps, values = _mean_curve([c for c in (r.oracle_curve() for r in report.results) if c])
    if steps:
        ax.plot(steps, values, "k--", lw=2, label="retain-only oracle")
    ax.set_xlabel("relearning attack step")
    ax.set_ylabel("forget_efficacy (mean over seeds)")
    ax.set_title("Each rung's knee under the relearning attack, against the oracle")
    ax.legend(fontsize=8)
    return _save(fig, out_dir / "ladder_relearning.png", plt)


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(tracking_uri: str, ladder: str, out_dir: str | Path, log_to_mlflow: bool = True) -> Path:
    """Write ladder_report.md and its plots to out_dir, and log them to the ladder's MLflow report run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(tracking_uri, ladder)
    path = out_dir / "ladder_report.md"
    path.write_text(markdown(report))
    images = plots(report, out_dir)
    if log_to_mlflow:
        client = MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(ladder)
        exp_id = exp.experiment_id if exp else client.create_experiment(ladder)
        run = client.create_run(exp_id, run_name=f"report-{ladder}", tags={"role": "ladder_report"})
        for p in [path, *images]:
            client.log_artifact(run.info.run_id, str(p))
        client.set_terminated(run.info.run_id)
    return path
