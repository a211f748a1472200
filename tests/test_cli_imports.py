"""The command line answers before it imports the heavy libraries: `--help`, `variants`, a misuse and a bad input
(a config value, a data file, a server that does not answer) print their answer with torch, Ray, transformers and
MLflow still unimported (each import costs seconds on a small machine). Checked in a fresh interpreter, through
sys.modules, not by timing (bench/bench_cli_errors.py times them)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "ray", "transformers", "mlflow")

PROBE = """
import json, sys
from study.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
print(json.dumps({"rc": rc, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def probe(tmp_path, *argv) -> tuple[dict, str, str]:
    """The command's exit status and the heavy modules imported by then (a dict), what it printed, its stderr."""
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}, timeout=120)
    printed, _, last = out.stdout.strip().rpartition("\n")
    return json.loads(last), printed, out.stderr


def run_cli(tmp_path, *argv) -> tuple[int, list[str], str]:
    result, _, err = probe(tmp_path, *argv)
    return result["rc"], result["heavy"], err


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["variants", "--help"]])
def test_help_imports_nothing_heavy(tmp_path, argv):
    rc, heavy, _ = run_cli(tmp_path, *argv)
    assert rc == 0 and heavy == []


def test_a_misused_flag_fails_before_any_heavy_import(tmp_path):
    rc, heavy, err = run_cli(tmp_path, "run", "--num-samples", "many")
    assert rc == 2 and "--num-samples" in err and heavy == []


@pytest.mark.parametrize("command", [["front", "--study", "s"], ["export", "--study", "s", "--out", "x"],
                                     ["report", "--study", "s"], ["resume", "--study", "s"]])
def test_a_missing_store_is_reported_before_any_heavy_import(tmp_path, command):
    rc, heavy, err = run_cli(tmp_path, *command)
    assert rc == 2 and "no MLflow store at" in err and heavy == []
    assert not (tmp_path / "x").exists() and not (tmp_path / "ladder_report").exists()


BAD_KNOB = "search:\n  space:\n    lr: {low: 0, high: 1.0e-2}\n"  # found by the registry's knob, the last check


@pytest.mark.parametrize("text,where", [
    ("study: ../outside\n", "s.yaml, line 1: study"),  # a field's own check
    (BAD_KNOB, "s.yaml, line 3: search.space.lr"),  # checked against every registered piece's knobs
    ("variants: [ga, nope]\n", "s.yaml, line 1: variants[1]: unknown variant 'nope'"),
])
def test_a_bad_config_value_is_reported_before_any_heavy_import(tmp_path, text, where):
    (tmp_path / "s.yaml").write_text(text)
    rc, heavy, err = run_cli(tmp_path, "run", "--config", "s.yaml")
    assert rc == 2 and where in err
    assert heavy == [], heavy


def test_gpus_asked_of_a_machine_without_a_gpu_driver_fail_before_torch(tmp_path):
    from study.prepare import GPU_DRIVER_FILES

    if any(Path(p).exists() for p in GPU_DRIVER_FILES):
        pytest.skip("this machine has a GPU driver: torch is imported to ask it")
    (tmp_path / "s.yaml").write_text("resources:\n  gpus_per_trial: 1\n")
    rc, heavy, err = run_cli(tmp_path, "run", "--config", "s.yaml")
    assert rc == 2 and "resources.gpus_per_trial: 1, but this machine has no GPU" in err
    assert heavy == [], heavy


def _jsonl(texts) -> str:
    return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)


@pytest.mark.parametrize("forget,message", [("nope.jsonl", "forget file {}: not found"),
                                            ("bad.jsonl", "forget file {}, line 2: invalid JSON")])
def test_a_bad_data_file_is_reported_before_any_heavy_import(tmp_path, forget, message):
    """The data files are read after the config is validated and before the embedded model is built (torch) or
    the runner starts Ray and MLflow."""
    (tmp_path / "en.jsonl").write_text(_jsonl(f"hello world, line {i}" for i in range(40)))
    (tmp_path / "bad.jsonl").write_text(_jsonl(["नमस्ते दुनिया"]) + '{"text": \n')
    rc, heavy, err = run_cli(tmp_path, "run", "--forget", forget, "--retain", "en.jsonl")
    assert rc == 2 and message.format(tmp_path / forget) in err, err
    assert heavy == [], heavy


def test_forget_and_retain_in_one_script_are_reported_before_the_embedded_model_is_built(tmp_path):
    """What the data alone gets wrong is found before the embedded model (the tokenizer of a study on its own
    files) is built: minutes on a fresh machine, whose cache stays empty here."""
    (tmp_path / "a.jsonl").write_text(_jsonl(f"hello world, line {i}" for i in range(40)))
    (tmp_path / "b.jsonl").write_text(_jsonl(f"good morning friends, this is line {i}" for i in range(40)))
    rc, heavy, err = run_cli(tmp_path, "run", "--forget", "a.jsonl", "--retain", "b.jsonl")
    assert rc == 2 and f"forget file {tmp_path / 'a.jsonl'}" in err and "retain" in err, err
    assert heavy == [], heavy
    assert not (tmp_path / ".cache").exists()


def test_an_unreachable_tracking_server_is_reported_before_any_heavy_import(tmp_path):
    rc, heavy, err = run_cli(tmp_path, "run", "--tracking-uri", "http://127.0.0.1:9")
    assert rc == 2 and "MLflow tracking server http://127.0.0.1:9 is unreachable" in err
    assert heavy == [], heavy


def test_variants_lists_every_piece_without_any_heavy_import(tmp_path):
    result, listed, err = probe(tmp_path, "variants")
    assert result == {"rc": 0, "heavy": []}, (result, err[-2000:])
    for line in ("adaptive: ", "dsg: ", "adapters (chosen", "  loreft: ", "  sine_lora: ", "gates (chosen"):
        assert line in listed, line
