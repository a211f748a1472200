"""The right retain-only oracle, always (issue 25, item 0): the oracle a study compares with is the one trained
without the study's forget language, found from the forget data (never from a file's name or the embedded default's
`embedded.forget`); its identity is tagged on the parent run; an oracle trained without another language is refused
before Ray starts, in one line naming robustness.oracle and both languages.

Nothing here builds a model: the study's files are small real JSONL files cut from the embedded corpus (the session's
`embedded` build), and an oracle folder is a fake one, a config.json and the report.json beside it, which is all the
check reads (the oracle's own build is tested in tests/test_robustness.py)."""

import json
import shutil
from dataclasses import replace

import pytest

from study.config import ConfigError, load_config
from study.oracle import with_oracle
from study.prepare import prepare_study
from trainables.data import DataPaths, read_jsonl, write_jsonl
from trainables.settings import EmbeddedSpec, RobustnessSettings
from trainables.trial.setup import TrialSetup

QUIET = {"log": lambda *a: None}


def _files(embedded, folder, forget: str, forget_name: str) -> dict:
    """A study's own files, as the issue's: forget `forget_name`.jsonl (the corpus's `forget` lines), retain
    english.jsonl, xlang hindi.jsonl (or urdu.jsonl when Hindi is forgotten)."""
    folder.mkdir(exist_ok=True)
    xlang = ("urdu", "ur") if forget == "hi" else ("hindi", "hi")
    out = {}
    for role, name, source in (("forget", forget_name, forget), ("retain", "english", "en_retain"), ("xlang", *xlang)):
        path = folder / f"{name}.jsonl"
        write_jsonl(path, read_jsonl(embedded.root / "data" / f"{source}.jsonl")[:300])
        out[role] = str(path)
    return {"forget": out["forget"], "retain": out["retain"], "xlang": [out["xlang"]]}


@pytest.fixture(scope="module")
def bengali_study(embedded, tmp_path_factory):
    """The issue's study: `--forget bengali.jsonl --retain english.jsonl --xlang hindi.jsonl` on the embedded model
    (built on its generated corpus), prepared as `unlearn-study run` prepares it."""
    data = _files(embedded, tmp_path_factory.mktemp("bengali"), "bn", "bengali")
    cfg = load_config(overrides={"data": data})
    return cfg, prepare_study(cfg, **QUIET)


def _fake_oracle(embedded, folder, report: dict | None):
    """A folder that passes for an oracle: <folder>/model/config.json (the embedded model's), and the build report
    beside it as this project's builds keep it."""
    (folder / "model").mkdir(parents=True)
    shutil.copy(embedded.model_dir / "config.json", folder / "model" / "config.json")
    if report is not None:
        (folder / "report.json").write_text(json.dumps(report))
    return str(folder / "model")


def _report(forget: str, script: str, language: str | None = None) -> dict:
    report = {"spec": {"data_files": []}, "forget": forget, "forget_script": script, "lines_dropped": {"hi_en": 0}}
    return report | ({"forget_language": language} if language else {})


@pytest.mark.parametrize("forget, name", [("bn", "bengali"), ("bn", "forget_hi"), ("ur", "forget"), ("pa", "hi")])
def test_the_oracle_is_trained_without_the_language_the_forget_file_is_in(embedded, tmp_path, forget, name):
    """On main the embedded default's `embedded.forget` (hi) chose the oracle for any study on its own files: a study
    forgetting Bengali got `oracle-hi`, which knows Bengali. The file's name says nothing (forget_hi.jsonl holds
    Bengali here)."""
    from study.oracle import choose_oracle

    cfg = load_config(overrides={"data": _files(embedded, tmp_path, forget, name)})
    setup = prepare_study(cfg, **QUIET)
    choice = choose_oracle(cfg, setup, **QUIET)
    assert (choice.corpus_set, choice.language) == (forget, forget)
    assert choice.script == embedded.report["languages"][forget]["script"] == setup.forget_script
    assert choice.model_dir == str(embedded.root / f"oracle-{forget}" / "model")


def test_the_oracle_set_comes_from_the_data_in_each_kind_of_study(tmp_path):
    """Which corpus set the embedded oracle leaves out, from the prepared study (its languages and script)."""
    from study.oracle import embedded_oracle_set

    scripts = {"en": "LATIN", "hi": "DEVANAGARI", "ur": "ARABIC", "pa": "GURMUKHI", "bn": "BENGALI",
               "hi_en": "DEVANAGARI"}
    files = DataPaths(forget=str(tmp_path / "hindi.jsonl"), retain=str(tmp_path / "english.jsonl"))

    def study(language, script, **kw):
        return TrialSetup(data=files, languages=(("forget", language), ("retain", "en")), forget_script=script, **kw)

    assert embedded_oracle_set(TrialSetup(data=None, embedded_forget="pa"), scripts) == "pa"  # the corpus's own data
    assert embedded_oracle_set(study("bn", "BENGALI"), scripts) == "bn"  # the file's language, not its name
    assert embedded_oracle_set(study("mr", "DEVANAGARI"), scripts) == "hi"  # Marathi: the corpus's Devanagari set
    # Pretrained on the study's own files: the set the forget file itself became.
    own = study("bn", "BENGALI", embedded=EmbeddedSpec(data_files=(files.forget, files.retain)))
    assert embedded_oracle_set(own, {"hindi": "BENGALI", "english": "LATIN"}) == "hindi"
    with pytest.raises(ConfigError, match=r"^robustness.oracle: the embedded corpus has no language of the forget "
                                          r"file .*hindi.jsonl \(ta, script TAMIL;"):
        embedded_oracle_set(study("ta", "TAMIL"), scripts)


def test_an_oracle_trained_without_another_language_is_refused_before_ray(embedded, bengali_study, tmp_path,
                                                                         monkeypatch, capsys):
    """The issue's case with `robustness.oracle` set to a folder whose report says it was trained without Hindi:
    `unlearn-study run` stops before Ray (and before the MLflow parent run), one line naming the field and both
    languages. On main the study ran, compared with that oracle."""
    from study.cli import main

    cfg, _ = bengali_study
    oracle = _fake_oracle(embedded, tmp_path / "oracle-hi", _report("hi", "DEVANAGARI"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(json.dumps({"robustness": {"oracle": oracle}}))
    data = cfg.data
    assert main(["run", "--config", "s.yaml", "--forget", data.forget, "--retain", data.retain,
                 "--xlang", *data.xlang]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert (f"robustness.oracle: {oracle} was trained without hi (script DEVANAGARI), but this study forgets bn "
            "(script BENGALI)") in err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()


def test_a_matching_or_unreported_oracle_folder_is_taken_and_a_cached_report_is_checked(embedded, bengali_study,
                                                                                       tmp_path):
    from study.oracle import check_oracle_report, choose_oracle

    cfg, setup = bengali_study

    def with_oracle_folder(path):
        return load_config(overrides={"data": cfg.data.model_dump(), "robustness.oracle": path})

    matching = _fake_oracle(embedded, tmp_path / "oracle-bn", _report("bn", "BENGALI"))
    choice = choose_oracle(with_oracle_folder(matching), setup, **QUIET)
    assert (choice.model_dir, choice.language, choice.script, choice.corpus_set) == (matching, "bn", "BENGALI", None)
    bare = _fake_oracle(embedded, tmp_path / "someone-else-s", None)  # no report: taken, its identity unknown
    assert choose_oracle(with_oracle_folder(bare), setup, **QUIET).tags(None) == {
        "oracle_forget_language": "unknown", "oracle_forget_script": "unknown",
        "oracle_trained_without": "not stated (no report.json in or beside the folder)"}
    # A report (a cached build's) is compared on what it states: the script, and the language where it names one.
    data_files_build = {"spec": {"data_files": ["/x/bengali.jsonl"]}, "forget": "bengali", "forget_script": "BENGALI"}
    check_oracle_report(data_files_build, "the cached oracle X", "bn", "BENGALI")
    check_oracle_report(data_files_build | {"forget_language": "bn"}, "the cached oracle X", "bn", "BENGALI")
    with pytest.raises(ConfigError, match=r"^robustness.oracle: the cached oracle X was trained without an unstated "
                                          r"language \(script BENGALI\), but this study forgets hi \(script "
                                          r"DEVANAGARI\)"):
        check_oracle_report(data_files_build, "the cached oracle X", "hi", "DEVANAGARI")
    with pytest.raises(ConfigError, match=r"trained without pa \(script DEVANAGARI\), but this study forgets hi"):
        check_oracle_report(_report("hi_x", "DEVANAGARI", language="pa"), "the cached oracle X", "hi", "DEVANAGARI")


def test_the_parent_run_names_the_oracle_it_was_compared_with(embedded, bengali_study, tmp_path, mlflow_store):
    """with_oracle tags the parent run with what the oracle was trained without. The oracle here is a copy of the
    study model whose report says it was trained without Bengali (a fake: what is checked is the tagging, and the
    study model measures in seconds where an oracle build takes minutes)."""
    from mlflow.tracking import MlflowClient

    cfg, setup = bengali_study
    folder = tmp_path / "oracle-bn"
    shutil.copytree(embedded.model_dir, folder / "model")
    (folder / "report.json").write_text(json.dumps(_report("bn", "BENGALI")))
    cfg = load_config(overrides={"data": cfg.data.model_dump(), "robustness.oracle": str(folder / "model"),
                                 "robustness.relearn": False})
    setup = replace(setup, robustness=RobustnessSettings(relearn=False),
                    train=replace(setup.train, final_es_prompts=4))
    client = MlflowClient(mlflow_store(tmp_path))
    run = client.create_run(client.create_experiment("oracle-choice")).info.run_id
    with_oracle(cfg, setup, client, run, **QUIET)
    tags = client.get_run(run).data.tags
    assert tags["oracle"] == str(folder / "model")
    assert (tags["oracle_forget_language"], tags["oracle_forget_script"]) == ("bn", "BENGALI")
    assert tags["oracle_trained_without"] == "bn (script BENGALI), as its report says"
