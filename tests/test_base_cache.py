"""The on-disk cache of the base model's mmie.py measurements (trainables.metrics.base_cache): its key changes with
everything the figures depend on, and a file that does not read as figures is measured again. On files only; the
read-back through a real Unlearner is tests/test_mmie_metrics.py's."""

import math
import os

import pytest

from trainables.data import DataPaths
from trainables.metrics import base_cache
from trainables.settings import MmieEvalConfig


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_STUDY_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    for name in ("hi", "en"):
        (tmp_path / f"{name}.jsonl").write_text('{"text": "a line"}\n')
    return model, DataPaths(forget=str(tmp_path / "hi.jsonl"), retain=str(tmp_path / "en.jsonl"))


def test_the_key_follows_the_model_the_data_and_the_settings(files):
    model, data = files
    settings = {"seed": 0, "mmie": MmieEvalConfig(), "dtype": "float32"}
    key = base_cache.disk_key(str(model), data, settings)
    assert key == base_cache.disk_key(str(model), data, dict(settings))
    assert base_cache.disk_key(str(model), data, settings | {"seed": 1}) != key
    assert base_cache.disk_key(str(model), data, settings | {"mmie": MmieEvalConfig(items=3)}) != key
    with open(data.forget, "a") as f:
        f.write('{"text": "one more"}\n')
    changed_data = base_cache.disk_key(str(model), data, settings)
    assert changed_data != key
    (model / "model.safetensors").write_bytes(b"other weights")
    assert base_cache.disk_key(str(model), data, settings) not in (key, changed_data)
    assert base_cache.disk_key("Qwen/Qwen2.5-0.5B", data, settings) is None  # a hub name: nothing to fingerprint


def test_figures_round_trip_and_a_broken_file_is_measured_again(files):
    model, data = files
    key = base_cache.disk_key(str(model), data, {"seed": 0})
    assert base_cache.load(key) is None
    base_cache.store(key, {"mmie/base/es_forget": 0.25, "mmie/base/es_mixed": math.nan})
    back = base_cache.load(key)
    assert back["mmie/base/es_forget"] == 0.25 and math.isnan(back["mmie/base/es_mixed"])
    path = next((base_cache.cache_root() / "mmie-base").glob("*.json"))
    path.write_text('{"mmie/base/es_forget": "a string"}')
    assert base_cache.load(key) is None
    path.write_text("{not json")
    assert base_cache.load(key) is None


def test_a_relative_cache_folder_is_made_absolute_once_and_for_the_processes_started(tmp_path, monkeypatch):
    # A relative UNLEARN_STUDY_CACHE named another folder after a chdir: an export then looked for the embedded
    # model in the wrong place (found running the suite with UNLEARN_STUDY_CACHE=.cache/test).
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNLEARN_STUDY_CACHE", "rel/cache")
    root = base_cache.cache_root()
    monkeypatch.chdir("/")
    assert root == tmp_path / "rel" / "cache" == base_cache.cache_root()  # the same folder after the chdir
    assert os.environ["UNLEARN_STUDY_CACHE"] == str(root)  # and for the processes this one starts
