"""Every benchmark under bench/ runs: each script at its smallest settings, as a subprocess from the repository's
root, must exit 0 and print the figure lines it exists to print. The figures themselves are not checked (they are
measurements, read by a person); a benchmark that no longer runs fails here instead of on the next person who
wants its numbers. Ray, MLflow and every temporary folder of a script live under a temporary folder of the test's
own (`work`)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"-?\d+\.\d+"


@pytest.fixture
def work():
    """The scripts' $TMPDIR, a short folder right under the system's temporary folder: Ray's socket paths under it
    (its session folder's sockets/plasma_store) must stay under 107 characters, which neither the test's tmp_path
    nor pytest's base folder under an xdist worker (.../popen-gw0/) leaves room for."""
    folder = Path(tempfile.mkdtemp(prefix="b"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def bench(work: Path, *argv: str, script: str | None = None, timeout: float = 600) -> str:
    """Run bench/<argv[0]> (or `script` through bash) with $TMPDIR `work`; return its stdout, fail with its
    output if it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "TMPDIR": str(work), "MPLCONFIGDIR": str(work / "matplotlib")}
    for variable in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):  # nothing reaches a store or cluster outside it
        env.pop(variable, None)
    command = ["bash", script, *argv] if script else [sys.executable, f"bench/{argv[0]}", *argv[1:]]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(command)} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out.stdout


def lines_like(stdout: str, pattern: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.search(pattern, line)]


# ---- no Ray: a few seconds, or tens of seconds on 2 busy cores (marked slow) ------------------------------------

@pytest.mark.slow
def test_bench_variants_reports_gate_only_variants_at_step_0(work):
    out = bench(work, "bench_variants.py", "--steps", "2", "--growth-steps", "2", "--es-prompts", "2",
                "--sae-steps", "20", "--variants", "ga", "dsg", "npo")
    assert lines_like(out, rf"^ga\s+{NUMBER}\s+{NUMBER}.*\s1\.00x$")
    assert lines_like(out, rf"^npo\s+{NUMBER}.*{NUMBER}x$")
    assert lines_like(out, rf"^dsg\s+{NUMBER}.*gate only, step 0$")  # a gate-only variant has no training step
    assert len(lines_like(out, r"^(ga|bounded|sine_bounded)\s+1:\d+\.\d+\s+2:\d+\.\d+$")) == 3


@pytest.mark.slow
def test_bench_foundation(work):
    out = bench(work, "bench_foundation.py", "--cached", "--steps", "2", "--es-prompts", "2", "--oracle")
    assert lines_like(out, r"^spec: batch 16 x 600 steps x 128 tokens")
    assert lines_like(out, r"^embedded model: [\d,]+ parameters")
    assert lines_like(out, rf"^oracle \(without hi\) build .* English perplexity {NUMBER}$")
    assert lines_like(out, rf"^hi\s+{NUMBER}\s+\d+\s+DEVANAGARI\s+{NUMBER}$")
    assert len(lines_like(out, rf"^(ga|npo): step {NUMBER} ms .* full eval .* {NUMBER} s$")) == 2


@pytest.mark.slow
def test_bench_robustness(work):
    out = bench(work, "bench_robustness.py", "--repeats", "1", "--steps", "2", "--relearn-steps", "2",
                "--extras")
    assert lines_like(out, rf"^repeat 0: trial {NUMBER}s, attack {NUMBER}s .* forget_efficacy {NUMBER} -> {NUMBER}")
    assert lines_like(out, rf"lr 1e-3 on the adapter: {NUMBER}; lr 5e-5 on all parameters: {NUMBER}")
    assert lines_like(out, r"^  actpert \(amp 0\.1, ") and lines_like(out, r"^  int8 \(")


@pytest.mark.slow
def test_bench_gates(work):
    out = bench(work, "bench_gates.py", "--sae-steps", "20", "--d-sae", "64", "--k", "8", "--n-features", "4",
                "--repeats", "2", "--train-lines", "200", "--heldout-lines", "16")
    assert lines_like(out, rf"^  first call: cache hit False, .* FVE {NUMBER}, L0 {NUMBER}")
    assert lines_like(out, r"^  second call: cache hit True")
    assert lines_like(out, rf"^gated forward / bare forward .* static {NUMBER}x, DSG {NUMBER}x$")
    rows = lines_like(out, rf"^(static|dsg|dsg_act)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}")
    assert len(rows) == 6 + 5 + 5  # every alpha of the three gates


@pytest.mark.slow
def test_bench_mmie_metrics(work):
    out = bench(work, "bench_mmie_metrics.py", "--steps", "2", "--per-set", "2", "--lines", "8",
                "--es-prompts", "2")
    assert lines_like(out, r"^LID ensemble voters present: ")
    assert lines_like(out, r"^overall: held-out lines \d+/\d+ .* continuations \d+/\d+")
    assert lines_like(out, rf"^mmie measurements: first call {NUMBER} s")
    assert lines_like(out, rf"^default trial \(2 steps, .* x{NUMBER}; .* x{NUMBER} \(best of 1;")


@pytest.mark.slow
def test_bench_export_substitutes(work):
    out = bench(work, "bench_export_substitutes.py", "--steps", "2", "--pairs", "lr", "--seeds", "1",
                "--final-items", "2")
    assert len(lines_like(out, rf"^variant=(ga|dualoptim) .*mmie/es_forget {NUMBER} .*verdict ")) == 2
    assert lines_like(out, rf"^lr\s+forget_efficacy [+-]{NUMBER} .*mmie/ppl_retain [+-]{NUMBER}; verdict changed in "
                           r"[01] of 1")


@pytest.mark.slow
def test_bench_real_shape_throughput(work):
    out = bench(work, "bench_real_shape.py", "throughput", "--shape", "bench-tiny", "--steps", "1",
                "--rounds", "1", "--batch", "2", "--len", "8")
    assert lines_like(out, rf"^seconds per step .* trainable {NUMBER} .* plain loop {NUMBER} .* = {NUMBER}x")
    assert lines_like(out, r"^trial process PSS: \d+ MiB")


@pytest.mark.slow
def test_measure_trial_memory(work):
    out = bench(work, "measure_trial_memory.py", "--variant", "ga", "--steps", "1", "--keep-sae-cache")
    assert lines_like(out, r"^variant ga, 1 steps, SAE cache kept: exit 0; peak PSS \d+ MiB$")
    assert lines_like(out, r"^  trial built\s+-> steps\s+max PSS\s+\d+ MiB")


def test_bad_inputs_writes_its_table(work):
    table = work / "bad-inputs.md"
    out = bench(work, "bad_inputs.py", "--out", str(table), "--only", "empty config file", "ftp://")
    assert len(lines_like(out, rf"^\s+2\s+{NUMBER} s  ")) == 2  # both are bad input: exit 2, before Ray
    rows = [line for line in table.read_text().splitlines() if line.startswith("| ") and "`unlearn-study" in line]
    assert len(rows) == 2 and all("| 2 |" in row for row in rows)


def test_bench_cli_errors_prints_each_median(work):
    out = bench(work, "bench_cli_errors.py", "--repeats", "1", "--only", "help", "variants", "empty config file")
    assert len(lines_like(out, rf"^\s*{NUMBER} s  exit 0  ")) == 2  # --help and variants
    assert len(lines_like(out, rf"^\s*{NUMBER} s  exit 2  empty config file$")) == 1
    assert lines_like(out, rf"^slowest: {NUMBER} s \(.+\); \d+ of 3 cases over 2 s$")


def test_gpu_check_parses_and_stops_clearly_without_cuda(work):
    assert subprocess.run(["bash", "-n", "bench/gpu_check.sh"], cwd=ROOT).returncode == 0
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: run bash bench/gpu_check.sh itself (minutes)")
    venv = Path(sys.executable).parent.parent
    out = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env={**os.environ, "UNLEARN_VENV": str(venv)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "no CUDA device" in out.stderr


# ---- a real study or MLflow server: tens of seconds to minutes ---------------------------------------------------

def quick_store(root: Path) -> str:
    """The store check_mlflow_ui.py writes with the study's own tracking code (no training)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_mlflow_ui", ROOT / "bench" / "check_mlflow_ui.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module.quick_store(root, "robustness")


@pytest.mark.slow  # the store takes about 20 s to write on 2 busy cores
def test_robustness_table_reads_a_study(work):
    uri = quick_store(work)
    out = bench(work, "robustness_table.py", "--study", "robustness", "--tracking-uri", uri)
    assert lines_like(out, r"^\| variant \| trial \| lr \| utility \| forget_efficacy \| .* \| survives \|$")
    assert {row.split(" | ")[0] for row in lines_like(out, r"^\| (ga|npo|bounded) \| quick_")} == {
        "| ga", "| npo", "| bounded"}
    assert lines_like(out, r"^\| oracle \(retain-only\) \| .* \| reference \|$")
    assert lines_like(out, r"^trials: 7(;|$)")  # check_mlflow_ui.QUICK_TRIALS; the grid follows


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="needs Debian's chromium (apt-get install -y chromium) for a headless browser")
def test_check_mlflow_ui_quick(work):
    shots = work / "shots"
    out = bench(work, "check_mlflow_ui.py", "--quick", "--out", str(shots))
    assert lines_like(out, r"^trial runs \(trial_status -> MLflow status\): ")
    assert len(lines_like(out, r"^[0-5]-[a-z-]+: (ok|shown), ")) == 6  # pages 0-5 in the UI; 6 is the front HTML itself
    assert len(list(shots.glob("*.png"))) == 7  # a screenshot per page, 0-6


@pytest.mark.slow
def test_bench_export_reproduction(work):
    out = bench(work, "bench_export_reproduction.py", "--trials", "2", "--steps", "2", "--noise-seeds", "2",
                "--members", "1", "--mmie-items", "4")
    assert lines_like(out, r"^study: 2 trials, \d+ on the front; re-running 1$")
    assert lines_like(out, rf"^\S+ \S+\s+es_forget\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+({NUMBER}|nan)$")
    shift = r"[+-](\d+\.\d+|nan)"
    moved = rf"mmie/es_forget {shift} mmie/ppl_retain {shift} .*; verdict (same|.+ -> .+)$"
    assert lines_like(out, rf"^  mmie padding - masked: {moved}")
    assert lines_like(out, rf"^  held-out - mmie.py's lines: {moved}")


@pytest.mark.slow
def test_bench_search(work):
    out = bench(work, "bench_search.py", "--seeds", "1", "--steps", "2", "--random-trials", "2",
                "--sched-trials", "2", "--grace", "1", "--overhead-trials", "1", "--variants", "ga", "--smoke")
    assert len(lines_like(out, rf"^seed 0  \S+ +2 trials .* HV {NUMBER} ")) == 3
    assert lines_like(out, r"^MO-ASHA reaches .*% of full-budget random search's hypervolume")
    assert lines_like(out, rf"^ratio {NUMBER}x \(target")


@pytest.mark.slow
def test_replay_search_on_the_test_curves(work):
    """The many-seeds replay on the test's 4-configuration file: every proposal is answered by one of 4 curves.
    A row per strategy the config can express (a percentage, its interval, both medians' columns, the seeds that
    count), the unavailable ones named, the plot written, and the verdict last."""
    plot = work / "anytime.png"
    out = bench(work, "replay_search.py", "--curves", "tests/data/replay_curves.jsonl.gz", "--seeds", "2",
                "--trials", "5", "--plot", str(plot))
    share = r"\d+%\s+\[\d+%, \d+%\]"
    row = rf"\s+{share}\s+{share}\s+{NUMBER}\s+\d+\s+{NUMBER}\s+\d+\s+2/2$"
    for strategy in ("random\\+fifo", "tpe\\+fifo", "tpe\\+asha", "tpe\\+moasha", "nsga2\\+moasha"):
        assert len(lines_like(out, rf"^{strategy}( \(default\))?{row}")) == 1, (strategy, out)
    assert lines_like(out, rf"^random\+fifo\s+100%\s+\[100%, 100%\]\s+100%\s+\[100%, 100%\]")
    assert len(lines_like(out, r"\(default\)")) == 1
    for gp in ("gp\\+fifo", "gp\\+moasha"):  # listed either as a row or as not available, never silently dropped
        assert len(lines_like(out, rf"^{gp}(\s+\d+%|: not available \()")) == 1, (gp, out)
    # The recorded batch, replayed as it ran live (random search, its seed, FIFO), draws the same configurations.
    assert lines_like(out, r"^clock: the 1 recorded batches \(live random\+fifo studies\) took \d+ s .* 1/1 replays "
                           r"drew exactly the batch's configurations$")
    # What a stopper with hindsight would spend on random search's and TPE's own proposals (or that they miss it).
    assert lines_like(out, r"^hindsight: .* random\+fifo's proposals (\d+% \[\d+%, \d+%\] \(median \d+ of 5 trials"
                           r"|never reach it).*; tpe\+fifo's proposals ")
    assert plot.stat().st_size > 0
    assert re.fullmatch(r"target (not )?met: default search \S+, median \d+% of random search's hypervolume at "
                        r"\d+% of its trial-steps, 2 seeds \(target >= 95% at <= 33%\)", out.splitlines()[-1])


def test_replay_search_names_the_missing_curves_file_and_how_to_record_it(work):
    missing = work / "absent.jsonl.gz"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "bench/replay_search.py", "--curves", str(missing)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert str(missing) in out.stderr and "bench/replay/record.py --out" in out.stderr


@pytest.mark.slow
def test_measure_default_study_smoke(work):
    """The README's default study through its own command line, cut to 2 trials of 4 steps."""
    out = bench(work, "measure_default_study.py", "--smoke")
    assert lines_like(out, rf"^exit 0; wall \d+ s; peak summed PSS \(command \+ Ray processes\) {NUMBER} GiB")
    assert lines_like(out, r"^\s+\d+\s+ray::")  # Ray's processes counted among the study's
