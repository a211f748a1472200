import hashlib
import json
import os
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from trainables.embedded.corpus import LANGUAGES, generate_corpus

EXPECTED_SCRIPT = {"en": "LATIN", "hi": "DEVANAGARI", "ur": "ARABIC", "pa": "GURMUKHI", "bn": "BENGALI"}
SENTENCE_END = {"en": ".", "hi": "।", "ur": "۔", "pa": "।", "bn": "।", "hi_en": "।"}
REPO_ROOT = Path(__file__).resolve().parents[1]


def _script(ch: str) -> str | None:
    if not unicodedata.category(ch).startswith(("L", "M")):
        return None
    return unicodedata.name(ch).split()[0]


def _script_counts(lines: list[str]) -> Counter:
    return Counter(s for line in lines for ch in line if (s := _script(ch)) is not None)


def _digest(corpus: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(corpus, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    return generate_corpus(seed=0, lines_per_language=3000)


def test_languages_and_keys(corpus):
    assert LANGUAGES == ("en", "hi", "ur", "pa", "bn", "hi_en")
    assert tuple(corpus) == LANGUAGES


def test_same_seed_gives_identical_output(corpus):
    assert generate_corpus(seed=0, lines_per_language=3000) == corpus


def test_different_seed_gives_different_output():
    a = generate_corpus(seed=0, lines_per_language=200)
    b = generate_corpus(seed=1, lines_per_language=200)
    for lang in LANGUAGES:
        assert a[lang] != b[lang], lang
        # Not merely reordered: the seeds produce mostly different sentences.
        assert len(set(a[lang]) & set(b[lang])) < 100, lang


def test_deterministic_across_processes():
    # A fresh interpreter with a different string-hash salt must produce the same corpus.
    code = (
        "import hashlib, json; from trainables.embedded.corpus import generate_corpus; "
        "c = generate_corpus(seed=7, lines_per_language=300); "
        "print(hashlib.sha256(json.dumps(c, ensure_ascii=False, sort_keys=True).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _digest(generate_corpus(seed=7, lines_per_language=300))


@pytest.mark.parametrize("n", [0, 1, 37, 5000])
def test_exact_counts_and_uniqueness(n):
    corpus = generate_corpus(seed=3, lines_per_language=n)
    for lang in LANGUAGES:
        lines = corpus[lang]
        assert len(lines) == n, lang
        assert len(set(lines)) == n, lang
        assert all(isinstance(line, str) and line == line.strip() and line for line in lines), lang


def test_smaller_corpus_is_a_prefix_of_larger():
    # Asking for more lines only appends: the first lines do not depend on how many were asked for.
    small = generate_corpus(seed=5, lines_per_language=100)
    large = generate_corpus(seed=5, lines_per_language=400)
    for lang in LANGUAGES:
        assert large[lang][:100] == small[lang], lang


@pytest.mark.parametrize("bad", [-1, 2.5, "10"])
def test_bad_line_count_raises(bad):
    with pytest.raises(ValueError):
        generate_corpus(seed=0, lines_per_language=bad)


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "hi_en"])
def test_script_purity(corpus, lang):
    counts = _script_counts(corpus[lang])
    total = sum(counts.values())
    assert total > 0
    assert counts[EXPECTED_SCRIPT[lang]] / total >= 0.95, (lang, counts)
    if lang == "en":
        assert all(line.isascii() for line in corpus[lang])
    else:
        assert counts["LATIN"] == 0, f"{lang} contains Latin letters"
        # Every single line is in its script, not just the language on average.
        for line in corpus[lang]:
            line_counts = _script_counts([line])
            assert set(line_counts) == {EXPECTED_SCRIPT[lang]}, line


@pytest.mark.parametrize("lang", LANGUAGES)
def test_sentence_endings(corpus, lang):
    assert all(line.endswith(SENTENCE_END[lang]) for line in corpus[lang]), lang


def test_code_mixed_has_devanagari_hindi_and_latin_english(corpus):
    lines = corpus["hi_en"]
    counts = _script_counts(lines)
    assert set(counts) == {"DEVANAGARI", "LATIN"}
    words = [w for line in lines for w in line.split()]
    latin_words = [w for w in words if any(_script(ch) == "LATIN" for ch in w)]
    share = len(latin_words) / len(words)
    assert 0.10 <= share <= 0.50, share
    # Mixed within sentences, not whole lines of one language.
    mixed = sum(1 for line in lines if set(_script_counts([line])) == {"DEVANAGARI", "LATIN"})
    assert mixed / len(lines) >= 0.9
    # Hindi stays in Devanagari: no word mixes the two scripts (no romanised or half-transliterated words).
    assert all(len(set(_script_counts([w]))) <= 1 for w in words)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_average_sentence_length(corpus, lang):
    lengths = [len(line.split()) for line in corpus[lang]]
    mean = sum(lengths) / len(lengths)
    assert 6 <= mean <= 25, (lang, mean)
    # Templates of varying length, not one fixed shape.
    assert max(lengths) - min(lengths) >= 8, lang


@pytest.mark.parametrize("lang", LANGUAGES)
def test_vocabulary_is_varied(corpus, lang):
    words = {w.strip(".,?!।۔،") for line in corpus[lang] for w in line.split()}
    assert len(words) >= 150, (lang, len(words))


def test_impossible_request_raises(monkeypatch):
    import trainables.embedded.corpus as corpus_module

    # A language whose only template has no slots can yield one unique line, never five.
    monkeypatch.setattr(corpus_module, "_compiled", lambda lang: (("Always the same sentence.",),))
    with pytest.raises(ValueError, match="unique"):
        generate_corpus(seed=0, lines_per_language=5)
    assert generate_corpus(seed=0, lines_per_language=1)["hi"] == ["Always the same sentence."]
