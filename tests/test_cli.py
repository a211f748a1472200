"""The command line: bad input fails before any cluster work; variants are listed from the registry; a study on
the user's own files (here Bengali forget, English retain) pretrains the tiny model on them."""

import json

import pytest

from study.cli import main
from study.config import load_config
from study.prepare import prepare_study
from trainables.data import write_jsonl
from trainables.embedded.corpus import generate_corpus


def test_bad_data_fails_before_ray_or_mlflow(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "forget.jsonl").write_text('{"text": "नमस्ते दुनिया"}\n{"text": \n', encoding="utf-8")
    (tmp_path / "retain.jsonl").write_text('{"text": "hello world"}\n', encoding="utf-8")
    rc = main(["run", "--forget", "forget.jsonl", "--retain", "retain.jsonl"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "forget file" in err and "forget.jsonl, line 2: invalid JSON" in err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()


def test_bad_config_names_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("search:\n  num_samples: 4\n  space:\n    lr: {low: 0, high: 1, log: true}\n")
    assert main(["run", "--config", "s.yaml"]) == 2
    assert "s.yaml, line 4: search.space.lr" in capsys.readouterr().err


def test_variants_lists_registered_knobs(capsys):
    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    assert "ga:" in out and "npo:" in out and "beta=0.1 [0.01, 1] log" in out and "lora:" in out


def test_variants_lists_every_piece_of_every_registry(capsys):
    from trainables.methods.registry import REGISTRIES

    assert main(["variants"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for registry in REGISTRIES:  # the retain objectives (kl, nll) too: `retain_objectives:` is discoverable
        header = next(i for i, line in enumerate(lines) if line.startswith(f"{registry.kind}s (chosen "))
        section = []
        for line in lines[header + 1:]:
            if not line.startswith(" "):
                break
            section.append(line)
        listed = {line.split(":")[0].strip() for line in section if not line.startswith("    ")}
        assert set(registry.names()) <= listed, registry.kind


@pytest.mark.slow  # a whole study, its own model pretrained on the files
def test_study_on_users_own_files_forgets_bengali(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = generate_corpus(seed=7, lines_per_language=300)
    write_jsonl(tmp_path / "bn.jsonl", corpus["bn"])
    write_jsonl(tmp_path / "en.jsonl", corpus["en"])
    write_jsonl(tmp_path / "ur.jsonl", corpus["ur"])
    (tmp_path / "s.yaml").write_text(json.dumps({
        "data": {"forget": "bn.jsonl", "retain": "en.jsonl", "xlang": ["ur.jsonl"]},
        "embedded": {"train_on_data": True, "pretrain_steps": 40},
    }))
    setup = prepare_study(load_config(tmp_path / "s.yaml"), log=lambda *a: None)
    assert setup.forget_script == "BENGALI"
    assert dict(setup.languages) == {"forget": "bn", "retain": "en", "xlang_ur": "ur"}
    assert sorted(setup.embedded.data_files) == sorted(str(tmp_path / f) for f in ("bn.jsonl", "en.jsonl", "ur.jsonl"))
