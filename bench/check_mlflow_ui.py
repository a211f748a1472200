"""Does MLflow's UI, in a real headless browser, show a study's runs, its trials and its front?

    .venv/bin/python bench/check_mlflow_ui.py                      # a tiny real study (Ray, training), then the check
    .venv/bin/python bench/check_mlflow_ui.py --quick              # a store written by the study's own tracking code,
                                                                   # no training (seconds), then the check
    .venv/bin/python bench/check_mlflow_ui.py --tracking-uri sqlite:///$PWD/mlflow.db --study default

Starts `mlflow server` on 127.0.0.1 (a free port) over the store, opens four pages in Debian's Chromium
(`apt-get install -y chromium`), headless, and checks their DOM (`--dump-dom`) for what a reader must see:
1. the experiment's bare address: what MLflow 3 opens on by itself (its GenAI "Overview"; shown, not checked);
2. the link the study prints and the README gives (`study.tracking.ui_link.runs_page_url`): the runs table in the Model
   training view, with the parent run `study-<name>` (its trials fold under it);
3. the same table sorted by run name, which lists the child runs flat: every trial's run name;
4. the parent run's artifacts: pareto_front.png, .html and .json, the PNG (pairwise panels) opened;
5. pareto_front.html itself, served by the server: the 3-D view and the pairwise panels, rendered by plotly.js.
Screenshots go to --out (default bench/out/mlflow_ui/, ignored by git). Prints one line per page; exits 1 if a
check fails. With --quick most of the time is the server's start; the tiny study adds a few minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Before mlflow is imported: nothing phones home.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from mlflow.tracking import MlflowClient  # noqa: E402

from study.tracking.parent_run import child_runs, latest_parent_run  # noqa: E402
from study.tracking.ui_link import run_page_url, runs_page_url  # noqa: E402
from trainables.trial.status import TrialStatus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this closed network refuses.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1600,1000", "--virtual-time-budget=15000"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(tracking_uri: str, workdir: Path, start_timeout: float = 180.0):
    """`mlflow server` over the store on 127.0.0.1, one worker and no job runner (a few hundred MB instead of
    gigabytes); yields its address, stopped (its whole process group) on exit."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "HOME": str(workdir)}
    log = open(workdir / "mlflow-server.log", "wb")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1",
           "--port", str(port), "-w", "1"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start (see {workdir / 'mlflow-server.log'})")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def browse(url: str, profile: Path, screenshot: Path | None = None, timeout: float = 120.0,
           flags: tuple[str, ...] = ()) -> str:
    """The page's DOM once its scripts have run (and a screenshot of it): one headless Chromium per call, each on a
    fresh profile, so no choice a previous page stored in the browser leaks into the next. `flags` come after the
    defaults (a later --window-size wins)."""
    def run(extra: list[str]) -> str:
        shutil.rmtree(profile, ignore_errors=True)
        out = subprocess.run([chromium(), *CHROMIUM_FLAGS, *flags, f"--user-data-dir={profile}", *extra, url],
                             capture_output=True, text=True, timeout=timeout)
        return out.stdout

    if screenshot is not None:
        run([f"--screenshot={screenshot}"])
    return run(["--dump-dom"])


@dataclass
class Page:
    name: str
    url: str
    must_show: list[str]  # strings the DOM must contain
    note: str
    must_not_show: tuple[str, ...] = ()


# Only the GenAI side bar has "Judges"; only the Model training one has "Model registry".
GENAI_ONLY, MODEL_TRAINING_ONLY = "Judges", "Model registry"


def pages(tracking_uri: str, study: str, base: str) -> list[Page]:
    client, exp_id, parent = latest_parent_run(tracking_uri, study)
    trials = [r.info.run_name for r in child_runs(client, exp_id, parent)]
    parent_name = client.get_run(parent).info.run_name
    objectives = client.get_run(parent).data.tags.get("objectives", "").split(",")
    by_name = {"orderByKey": "tags.`mlflow.runName`", "orderByAsc": "true"}
    return [
        Page("0-experiment-bare", f"{base}/#/experiments/{exp_id}", [],
             "the bare experiment address: what MLflow opens on by itself"),
        Page("1-runs", runs_page_url(exp_id, base), [parent_name, MODEL_TRAINING_ONLY],
             "the link the study prints: the runs table, the parent run (its trials fold under it)", (GENAI_ONLY,)),
        Page("2-runs-flat", runs_page_url(exp_id, base, **by_name), [parent_name, *trials],
             f"sorted by name, which lists child runs flat: the parent and its {len(trials)} trials", (GENAI_ONLY,)),
        Page("3-parent-artifacts", run_page_url(exp_id, parent, base, tab="artifacts"),
             ["pareto_front.png", "pareto_front.html", "pareto_front.json"], "the parent run's front artifacts"),
        Page("4-front-plot", run_page_url(exp_id, parent, base, tab="artifacts/pareto_front.png"),
             ['alt="pareto_front.png"'], "the front's pairwise panels, opened in the parent's artifacts"),
        # The server sends artifacts as attachments; the UI shows an HTML one in an iframe, whose content this page's
        # text does not include (seen 2026-12-02 in Chromium 156): only the artifact's name is checked here; page 6
        # opens the HTML itself and checks its views.
        Page("5-front-html", run_page_url(exp_id, parent, base, tab="artifacts/pareto_front.html"),
             ["pareto_front.html"],
             "pareto_front.html in the parent's artifacts"),
    ]


def check(tracking_uri: str, study: str, out: Path, workdir: Path, log=print) -> list[str]:
    """Every page screenshotted into `out`; returns the failures (empty: all shown)."""
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    client, exp_id, parent = latest_parent_run(tracking_uri, study)
    counts: dict[str, int] = {}
    for run in child_runs(client, exp_id, parent):
        key = f"{run.data.tags.get('trial_status')} -> {run.info.status}"
        counts[key] = counts.get(key, 0) + 1
    log(f"trial runs (trial_status -> MLflow status): {', '.join(f'{k} x{n}' for k, n in sorted(counts.items()))}")
    with mlflow_server(tracking_uri, workdir) as base:
        for page in pages(tracking_uri, study, base):
            t0 = time.perf_counter()
            dom = browse(page.url, workdir / "chromium-profile", out / f"{page.name}.png")
            (out / f"{page.name}.dom.html").write_text(dom)
            problems = [f"{s!r} not on the page" for s in page.must_show if s not in dom]
            problems += [f"{s!r} on the page" for s in page.must_not_show if s in dom]
            view = "GenAI view" if GENAI_ONLY in dom else "Model training view" if MODEL_TRAINING_ONLY in dom else "?"
            verdict = "; ".join(problems) or ("ok" if page.must_show else "shown")
            log(f"{page.name}: {verdict}, {view} ({time.perf_counter() - t0:.0f} s; {page.note})\n    {page.url}")
            failures += [f"{page.name}: {p}" for p in problems]
    failures += front_views(client, parent, out, workdir, log)
    return failures


# WebGL without a GPU (the 3-D view): Chromium's software renderer, allowed for this local file only.
WEBGL_FLAGS = ("--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--window-size=1400,2300")


def front_views(client, parent: str, out: Path, workdir: Path, log=print) -> list[str]:
    """pareto_front.html opened whole (a tall window): the 3-D view and the pairwise panels in one screenshot, and
    their DOM once plotly.js drew them (`main-svg`: plotly's drawn panels; `gl-container`: its WebGL scene)."""
    html = Path(client.download_artifacts(parent, "pareto_front.html", str(workdir)))
    objectives = client.get_run(parent).data.tags.get("objectives", "").split(",")
    t0 = time.perf_counter()
    dom = browse(html.as_uri(), workdir / "chromium-profile", out / "6-front-views.png", flags=WEBGL_FLAGS)
    (out / "6-front-views.dom.html").write_text(dom)
    wanted = ["main-svg", "fig-pairs"] + (["gl-container"] if len(objectives) == 3 else [])
    problems = [f"{s!r} not drawn" for s in wanted if s not in dom]
    log(f"6-front-views: {'; '.join(problems) or 'ok'} ({time.perf_counter() - t0:.0f} s; pareto_front.html opened "
        f"whole: {'3-D view, ' if len(objectives) == 3 else ''}pairwise panels, parallel coordinates)\n    {html}")
    return [f"6-front-views: {p}" for p in problems]


# ---- the store to check -------------------------------------------------------------------------------------------

QUICK_TRIALS = [  # (variant, status, (forget_efficacy, utility, xlang_utility), extra end metrics): synthetic, not trained
    ("ga", TrialStatus.COMPLETED, (0.90, 0.80, 0.50), {"mmie/gates_feasible": 1.0, "worst_relearn_excess": 0.3}),
    ("npo", TrialStatus.COMPLETED, (0.60, 0.97, 0.70), {"mmie/gates_feasible": 0.0}),
    # on the front only through xlang_utility: dominated by npo in the (forget_efficacy, utility) panel
    ("bounded", TrialStatus.COMPLETED, (0.50, 0.70, 0.99), {"mmie/gates_feasible": 1.0}),
    ("bounded", TrialStatus.COMPLETED, (0.40, 0.60, 0.60), {}),
    ("npo", TrialStatus.COMPLETED, (0.95, 0.90, 0.40), {"degenerate": 1.0}),
    ("ga", TrialStatus.STOPPED_EARLY, (0.20, 0.99, 0.99), {}), ("npo", TrialStatus.ERROR, (0.10, 0.95, 0.9), {}),
]
QUICK_OBJECTIVES = ["forget_efficacy", "utility", "xlang_utility"]


def quick_store(root: Path, study: str = "ui-check") -> str:
    """A study store written by the study's own tracking code (parent run, child runs through the trials'
    TrialRun, tags and front through ParetoRecorder) without training: a UI check need not wait for one."""
    from study.config import load_config
    from study.tracking.front_recorder import ParetoRecorder
    from study.tracking.parent_run import start_parent_run
    from trainables.trial.tracking import TrialRun

    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = load_config(overrides={"study": study, "tracking_uri": uri, "search.objectives": QUICK_OBJECTIVES})
    client, exp_id, parent = start_parent_run(uri, cfg, f"study: {study}\n")
    recorder = ParetoRecorder(uri, exp_id, parent, cfg.front_rule())
    for i, (variant, status, values, extra) in enumerate(QUICK_TRIALS):
        trial_id = f"quick_{i:05d}"
        config = {"variant": variant, "lr": 1e-3 * (i + 1)}
        run = TrialRun(uri, exp_id, parent, trial_id, f"unlearning_trainable_{trial_id}", params=config)
        steps = 4 if status == TrialStatus.COMPLETED else 2
        final = dict(zip(QUICK_OBJECTIVES, values))
        for step in range(1, steps + 1):  # the last step holds the final values
            run.log({**final, "forget_efficacy": values[0] * step / steps, "step": step,
                     **(extra if step == steps else {})}, step)
        run.finish(status, attempts=1)
        result = {"trial_id": trial_id, **final, **extra, "step": steps, "finished": status == TrialStatus.COMPLETED}
        recorder.record_result(result, config, error=status == TrialStatus.ERROR)
    recorder.write_front()
    client.set_terminated(parent, "FINISHED")
    return uri


def tiny_study(root: Path, study: str = "ui-check") -> str:
    """A real study, as small as it gets: 4 trials of 6 steps through Ray Tune and the multi-objective ASHA."""
    from study.config import load_config
    from study.runner import run_study

    uri = f"sqlite:///{root / 'mlflow.db'}"
    cwd = Path.cwd()
    os.chdir(root)  # Ray's results and checkpoints go under the working directory
    cfg = load_config(overrides={
        "study": study, "tracking_uri": uri, "variants": ["ga", "bounded"], "scheduler.type": "moasha",
        "scheduler.grace_period": 2, "search.num_samples": 4, "search.max_concurrent": 2, "train.steps": 6,
        "train.eval_every": 3, "train.checkpoint_every": 3, "train.batch_size": 8, "train.es_prompts": 4,
        "train.final_es_prompts": 8, "search.objectives": ["forget_efficacy", "utility"],
    })
    try:
        run_study(cfg, log=lambda *a: None)
    finally:
        import ray

        ray.shutdown()
        os.chdir(cwd)
    return uri


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracking-uri", help="check this store (with --study) instead of building one")
    ap.add_argument("--study", default="ui-check")
    ap.add_argument("--quick", action="store_true", help="build the store without training")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mlflow_ui")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    if chromium() is None:
        print("chromium is not installed (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as tmp:
        workdir = Path(tmp)
        os.environ["HOME"] = str(workdir)  # Ray, MLflow and matplotlib write under ~
        os.environ.setdefault("MPLCONFIGDIR", str(workdir / "matplotlib"))
        uri = args.tracking_uri or (quick_store if args.quick else tiny_study)(workdir, args.study)
        failures = check(uri, args.study, out, workdir)
    print(f"screenshots and DOM dumps in {out}")
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
