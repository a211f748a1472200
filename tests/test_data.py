"""Data loading: valid files load and split deterministically; every kind of bad input names its file and line."""

import json

import pytest

from trainables.data import DataError, DataPaths, load_study_data, prompt_prefix, read_jsonl, write_jsonl


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good_lines(n, word="नमस्ते"):
    return [json.dumps({"text": f"{word} {i} दुनिया"}, ensure_ascii=False) for i in range(n)]


def test_reads_texts_and_skips_blank_lines(tmp_path):
    p = write(tmp_path / "f.jsonl", [good_lines(1)[0], "", "   ", good_lines(2)[1]])
    assert read_jsonl(p) == ["नमस्ते 0 दुनिया", "नमस्ते 1 दुनिया"]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "line 2: invalid JSON"),
        ('{"txt": "hello"}', 'line 2: no "text" field'),
        ('["text"]', 'line 2: no "text" field'),
        ('{"text": ""}', 'line 2: empty "text"'),
        ('{"text": "   "}', 'line 2: empty "text"'),
        ('{"text": 5}', 'line 2: "text" is int, not a string'),
    ],
)
def test_bad_line_is_named(tmp_path, bad_line, message):
    p = write(tmp_path / "forget.jsonl", [good_lines(1)[0], bad_line, good_lines(3)[2]])
    with pytest.raises(DataError) as e:
        read_jsonl(p, role="forget")
    assert str(p) in str(e.value) and message in str(e.value) and str(e.value).startswith("forget file")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"retain file .*nope.jsonl: not found"):
        read_jsonl(tmp_path / "nope.jsonl", role="retain")
    with pytest.raises(DataError, match="no lines with text"):
        read_jsonl(write(tmp_path / "empty.jsonl", ["", ""]))


def test_split_is_deterministic_and_disjoint(tmp_path):
    f = write(tmp_path / "f.jsonl", good_lines(50))
    r = write(tmp_path / "r.jsonl", [json.dumps({"text": f"hello {i} world"}) for i in range(50)])
    x = write(tmp_path / "urdu.jsonl", [json.dumps({"text": f"سلام {i}"}) for i in range(20)])
    paths = DataPaths(forget=str(f), retain=str(r), xlang=(str(x),))
    a = load_study_data(paths, seed=3, heldout=8)
    b = load_study_data(paths, seed=3, heldout=8)
    c = load_study_data(paths, seed=4, heldout=8)
    assert a.forget.heldout == b.forget.heldout and a.forget.heldout != c.forget.heldout
    assert len(a.forget.heldout) == 8 and not set(a.forget.heldout) & set(a.forget.train)
    assert sorted(a.forget.heldout + a.forget.train + a.forget.attack) == sorted(read_jsonl(f))
    assert a.forget.attack and not set(a.forget.attack) & (set(a.forget.train) | set(a.forget.heldout))
    assert [s.name for s in a.collateral_sets()] == ["xlang_urdu"]


def test_bad_xlang_file_fails_the_whole_load(tmp_path):
    f = write(tmp_path / "f.jsonl", good_lines(5))
    bad = write(tmp_path / "bn.jsonl", ['{"text": "ok"}', "oops"])
    with pytest.raises(DataError, match=r"xlang file .*bn.jsonl, line 2"):
        load_study_data(DataPaths(forget=str(f), retain=str(f), xlang=(str(bad),)))


def test_prompt_prefix_is_a_strict_prefix():
    line = "one two three four five six seven eight nine ten"
    p = prompt_prefix(line)
    assert line.startswith(p) and 2 <= len(p.split()) < len(line.split())
    assert prompt_prefix("two words") == "two"


def test_utility_eval_set_is_validated_and_never_trained_on(tmp_path):
    forget, retain, general = tmp_path / "f.jsonl", tmp_path / "r.jsonl", tmp_path / "g.jsonl"
    write_jsonl(forget, [f"हिंदी वाक्य {i}" for i in range(20)])
    write_jsonl(retain, [f"retain line {i}" for i in range(20)])
    general.write_text('{"text": "a general line"}\n{"text": \n')
    with pytest.raises(DataError, match=rf"utility_eval file {general}, line 2: invalid JSON"):
        load_study_data(DataPaths(str(forget), str(retain), utility_eval=str(general)))
    write_jsonl(general, [f"general line {i}" for i in range(10)])
    data = load_study_data(DataPaths(str(forget), str(retain), utility_eval=str(general)))
    assert data.utility.train == [] and sorted(data.utility.heldout) == sorted(f"general line {i}" for i in range(10))
    assert data.utility not in data.collateral_sets() and data.retain.name == "retain"
    assert load_study_data(DataPaths(str(forget), str(retain))).utility is not None  # the retain set stands in


def test_embedded_default_measures_utility_on_english_it_never_retains_on(embedded):
    from trainables.embedded.corpus import GENERAL_EN_TEMPLATES, english_templates

    paths = embedded.data_paths()
    general, retain = set(read_jsonl(paths.utility_eval)), set(read_jsonl(paths.retain))
    english = read_jsonl(embedded.root / "data" / "en.jsonl")
    by_template = dict(zip(english, english_templates(0, len(english))))
    assert general and not general & retain
    assert {by_template[line] for line in general} <= GENERAL_EN_TEMPLATES
    assert not {by_template[line] for line in retain} & GENERAL_EN_TEMPLATES
