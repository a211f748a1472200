"""The ladder report: does each adaptive step help? Read entirely from MLflow, so it regenerates without training.

A ladder is one study per (rung, seed), named `<ladder>-<rung>-s<seed>`, every rung tuned on the same budget.
Per rung, over seeds: the hypervolume of the rung's own front (mean and a 95% t-interval), the best forget
efficacy at utility >= 0.95 and >= 0.9, extraction strength and leakage at the rung's knee, time per step. The
verdict for each rung compares its hypervolume interval with the baseline rung's: higher, lower, or overlapping
(no detectable difference). Metric validity: the rank correlation between per-step forget_efficacy (token mass)
and 1 - ES over every evaluated checkpoint, and between utility and retain perplexity; if the token-mass proxy
tracks ES poorly (Spearman below 0.8), the fronts use 1 - ES as the forget objective instead, and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient
from scipy import stats

from .front import StudyRecord, TrialRecord, load_study, ranked_trials
from .pareto import hypervolume, knee_point, nondominated_ranks

VALIDITY_THRESHOLD = 0.8
UTILITY_FLOORS = (0.95, 0.9)
ES_FORGET_OBJECTIVE = "1-es_forget"


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a two-sided t-interval; the interval is NaN with fewer than two values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def verdict(rung: tuple[float, float, float], base: tuple[float, float, float]) -> str:
    """Higher / lower than the baseline when the 95% intervals do not overlap; otherwise overlap."""
    _, lo, hi = rung
    _, base_lo, base_hi = base
    if any(math.isnan(v) for v in (lo, hi, base_lo, base_hi)):
        return "too few seeds to tell"
    if lo > base_hi:
        return "helps (interval above the baseline's)"
    if hi < base_lo:
        return "hurts (interval below the baseline's)"
    return "no detectable difference (intervals overlap)"


def forget_value(trial: TrialRecord, objective: str) -> float | None:
    if objective == ES_FORGET_OBJECTIVE:
        es = trial.metrics.get("es_forget")
        return None if es is None else 1.0 - es
    return trial.metrics.get(objective)


@dataclass
class SeedResult:
    """One (rung, seed) study, summarised."""

    rung: str
    seed: int
    hypervolume: float
    best_forget: dict[float, float | None]
    knee: dict[str, float]
    seconds_per_step: float
    statuses: dict[str, int]
    front: list[tuple[float, float]] = field(default_factory=list)


def summarise_study(record: StudyRecord, rung: str, seed: int, forget_objective: str) -> SeedResult:
    trials = [t for t in ranked_trials(record) if forget_value(t, forget_objective) is not None
              and t.metrics.get("utility") is not None]
    points = np.array([[forget_value(t, forget_objective), t.metrics["utility"]] for t in trials], dtype=float)
    points = points.reshape(len(trials), 2)
    statuses: dict[str, int] = {}
    for t in record.trials:
        statuses[t.status] = statuses.get(t.status, 0) + 1
    if not trials:
        return SeedResult(rung, seed, 0.0, {f: None for f in UTILITY_FLOORS}, {}, math.nan, statuses)
    front_idx = np.flatnonzero(nondominated_ranks(points) == 0)
    knee = trials[front_idx[knee_point(points[front_idx])]]
    best = {}
    for floor in UTILITY_FLOORS:
        ok = points[points[:, 1] >= floor]
        best[floor] = float(ok[:, 0].max()) if len(ok) else None
    knee_metrics = {k: v for k, v in knee.metrics.items() if k.startswith("es_") or k.endswith("utility")}
    knee_metrics[forget_objective] = forget_value(knee, forget_objective)
    return SeedResult(
        rung=rung, seed=seed, hypervolume=hypervolume(points, np.zeros(2)), best_forget=best, knee=knee_metrics,
        seconds_per_step=float(np.median([t.metrics.get("seconds_per_step", math.nan) for t in trials])),
        statuses=statuses, front=[tuple(p) for p in points[front_idx]],
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
            pairs += [(m.value, ys[m.step]) for m in client.get_metric_history(trial.run_id, x) if m.step in ys]
    return pairs


def spearman(pairs: list[tuple[float, float]]) -> float:
    if len(pairs) < 3:
        return math.nan
    a, b = zip(*pairs)
    if len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


@dataclass
class LadderReport:
    ladder: str
    rungs: list[str]
    seeds: list[int]
    results: list[SeedResult]
    es_correlation: float
    utility_ppl_correlation: float
    forget_objective: str
    checkpoints: int

    def by_rung(self, rung: str) -> list[SeedResult]:
        return [r for r in self.results if r.rung == rung]


def build_report(tracking_uri: str, ladder: str) -> LadderReport:
    client = MlflowClient(tracking_uri)
    studies = ladder_studies(client, ladder)
    if not studies:
        raise ValueError(f"no ladder studies named {ladder}-<rung>-s<seed> at {tracking_uri}")
    records = {key: load_study(tracking_uri, name) for key, name in studies.items()}
    pairs = checkpoint_pairs(client, list(records.values()), "forget_efficacy", "es_forget")
    es_rho = spearman([(fe, 1.0 - es) for fe, es in pairs])
    # Within each study (each seed has its own held-out split, so its own baseline perplexity), then averaged.
    ppl_rhos = [spearman(checkpoint_pairs(client, [rec], "utility", "retain_ppl")) for rec in records.values()]
    ppl_rho = float(np.nanmean(ppl_rhos)) if any(not math.isnan(r) for r in ppl_rhos) else math.nan
    forget_objective = "forget_efficacy" if not es_rho < VALIDITY_THRESHOLD else ES_FORGET_OBJECTIVE
    results = [summarise_study(rec, rung, seed, forget_objective) for (rung, seed), rec in records.items()]
    rungs = list(dict.fromkeys(rung for rung, _ in studies))
    if "ga" in rungs:  # static GA is the baseline every rung is compared with
        rungs.insert(0, rungs.pop(rungs.index("ga")))
    seeds = sorted({seed for _, seed in studies})
    return LadderReport(ladder, rungs, seeds, results, es_rho, ppl_rho, forget_objective, len(pairs))


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(values: list[float]) -> str:
    mean, lo, hi = mean_ci(values)
    return f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]" if not math.isnan(lo) else _fmt(mean)


def headline_table(report: LadderReport, baseline: str | None = None) -> str:
    baseline = baseline or report.rungs[0]
    base = mean_ci([r.hypervolume for r in report.by_rung(baseline)])
    lines = [f"| rung | hypervolume (mean [95% CI], n={len(report.seeds)}) | best forget @ utility ≥ 0.95 | "
             f"best forget @ utility ≥ 0.9 | vs {baseline} |", "|---|---|---|---|---|"]
    for rung in report.rungs:
        rs = report.by_rung(rung)
        hv = mean_ci([r.hypervolume for r in rs])
        best = [_ci([r.best_forget[f] for r in rs if r.best_forget[f] is not None]) for f in UTILITY_FLOORS]
        note = "baseline" if rung == baseline else verdict(hv, base)
        lines.append(f"| {rung} | {_ci([r.hypervolume for r in rs])} | {best[0]} | {best[1]} | {note} |")
    return "\n".join(lines)


def markdown(report: LadderReport) -> str:
    out = [f"# Ladder report: {report.ladder}", "",
           f"Rungs {', '.join(report.rungs)}; seeds {', '.join(map(str, report.seeds))}; "
           f"front objectives ({report.forget_objective}, utility), reference point (0, 0).", "",
           "## Does each step help?", "", headline_table(report), ""]
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
        counts = {s: sum(r.statuses.get(s, 0) for r in rs) for s in ("completed", "stopped_early", "diverged", "error")}
        out.append(f"| {rung} | {_fmt(avg('es_forget'))} | {_fmt(avg('es_mixed'))} | "
                   f"{_fmt(float(np.mean(xl)) if xl else None)} | {_fmt(avg('xlang_utility'))} | "
                   f"{_fmt(avg('mixed_utility'))} | {_fmt(float(np.nanmean([r.seconds_per_step for r in rs])))} | "
                   f"{' / '.join(str(counts[s]) for s in counts)} |")
    out += ["", "## Metric validity", "",
            f"- Spearman(forget_efficacy, 1 − ES) over {report.checkpoints} evaluated checkpoints: "
            f"{_fmt(report.es_correlation)}.",
            f"- Spearman(utility, retain perplexity) over every logged step, within each study, averaged: "
            f"{_fmt(report.utility_ppl_correlation)}."]
    if report.forget_objective == ES_FORGET_OBJECTIVE:
        out.append(f"- The token-mass proxy tracks ES poorly (below {VALIDITY_THRESHOLD}): the fronts above use "
                   "1 − ES as the forget objective instead.")
    else:
        out.append(f"- The token-mass proxy tracks ES (at least {VALIDITY_THRESHOLD}): the fronts use forget_efficacy.")
    out += ["", "![fronts](ladder_fronts.png)", "", "![hypervolume](ladder_hypervolume.png)", ""]
    return "\n".join(out)


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
    ax.set_ylabel("utility")
    ax.set_title("Each seed's front members (dots) and the rung's front over all seeds (dashed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fronts = out_dir / "ladder_fronts.png"
    fig.savefig(fronts, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    cis = [mean_ci([r.hypervolume for r in report.by_rung(rung)]) for rung in report.rungs]
    means = [c[0] for c in cis]
    errs = [[c[0] - c[1] if not math.isnan(c[1]) else 0 for c in cis], [c[2] - c[0] if not math.isnan(c[2]) else 0 for c in cis]]
    ax.bar(report.rungs, means, yerr=errs, capsize=4)
    ax.set_ylabel("hypervolume (95% CI)")
    fig.tight_layout()
    hv = out_dir / "ladder_hypervolume.png"
    fig.savefig(hv, dpi=120)
    plt.close(fig)
    return [fronts, hv]


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
