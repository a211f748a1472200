"""Gated trials on small data files: the gate's lines (feature selection, DSG's calibration) are sized from what the
files hold, and a set too small for a gate fails before Ray starts, naming the file."""

import pytest

from study.config import load_config
from study.prepare import prepare_study
from trainables.data import DataError, DataPaths, load_study_data, read_jsonl, write_jsonl
from trainables.methods.gates.sae import SAEConfig
from trainables.methods.gates.sae_gates import DynamicGate, GateLines, build_gate, gate_lines
from trainables.model.loading import load_model, load_tokenizer

SMALL_SAE = SAEConfig(d_sae=256, k=8, steps=40, lr=3e-3)


def small_files(embedded, tmp_path, lines: int, retain_lines: int | None = None) -> dict[str, str]:
    out = {}
    for role, lang, n in (("forget", "hi", lines), ("retain", "en", retain_lines or lines)):
        path = tmp_path / f"{lang}.jsonl"
        write_jsonl(path, read_jsonl(embedded.root / "data" / f"{lang}.jsonl")[:n])
        out[role] = str(path)
    return out


def test_dsg_builds_on_200_line_files(embedded, tmp_path):
    files = small_files(embedded, tmp_path, 200)
    data = load_study_data(DataPaths(**files))  # 160 training lines each (40 held out; forget keeps attack lines)
    assert gate_lines(data) == GateLines(forget=len(data.forget.train), retain=80, calibration=80)
    assert 16 <= len(data.forget.train) <= 160
    path = str(embedded.model_dir)
    gate, info = build_gate("dsg", {"n_features": 10}, load_model(path), load_tokenizer(path), data, path,
                            SMALL_SAE, tmp_path / "sae")
    assert isinstance(gate, DynamicGate) and 0 <= info["gate_threshold"] <= 1


def test_a_set_too_small_for_a_gate_fails_before_ray_naming_the_file(embedded, tmp_path):
    files = small_files(embedded, tmp_path, 200, retain_lines=20)  # retain: 16 training lines, 8 to calibrate on
    cfg = load_config(overrides={"data": files, "variants": ["ga", "dsg"]})
    with pytest.raises(DataError, match=rf"retain file {files['retain']}: 16 training lines, a gate needs"):
        prepare_study(cfg, log=lambda *a: None)
    prepare_study(load_config(overrides={"data": files, "variants": ["ga"]}), log=lambda *a: None)  # no gate: fine
