"""Language identification with lingua (lingua-language-detector), restricted to the study's languages.

Chosen over langid after a comparison on short texts in hi/en/ur/pa/bn plus code-mixed, empty and digit-only
strings: both labelled every real line right, lingua restricted to five languages loaded and labelled faster, and
langid labels an empty or digit-only string as English, whereas lingua returns no language, which is what a
degenerate continuation deserves.
Romanised code-mixed text ("Hinglish") is never labelled Hindi by either: extraction strength on a romanised
mixed set measures nothing, so the embedded mixed set keeps Hindi in Devanagari. Where a study turns on
`es_romanized` (mmie.py's flag name), a small cue-word voter (`RomanizedCues`) labels Latin-script text with at
least two romanised function words of the forget language as that language, so that a model answering a Hindi
prompt in romanised Hindi is not scored as having forgotten Hindi.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from lingua import IsoCode639_1, Language, LanguageDetectorBuilder


def _language(code: str) -> Language:
    try:
        return Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
    except AttributeError:
        raise ValueError(f"unknown ISO 639-1 language code {code!r}") from None


@lru_cache(maxsize=1)
def _all_languages_detector():
    return LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()


def detect_language(texts: Sequence[str], sample: int = 200) -> str | None:
    """The ISO 639-1 code most lines of a set are labelled with, over all languages lingua knows."""
    labels = _all_languages_detector().detect_languages_in_parallel_of(list(texts[:sample]))
    votes = Counter(lang.iso_code_639_1.name.lower() for lang in labels if lang is not None)
    return votes.most_common(1)[0][0] if votes else None


# Romanised function words that are not English words (a word list rather than a model: the rule is readable, and
# romanised spelling varies too much for lingua's models). mmie.py's lid_ensemble uses the same kind of voter.
ROMANIZED_CUES: dict[str, frozenset[str]] = {
    "hi": frozenset(
        "hai hain nahi nahin kya kyun kyunki bahut accha acha aur mein mujhe tum aap yeh woh kal aaj abhi bhi "
        "lekin toh raha rahi rahe karna karke ka ki ke ko se tha thi gaya gayi wala wali jayega jayegi hoga "
        "ghar baad pehle sab kuch".split()
    ),
}
_WORD = re.compile(r"[a-z]+")


class RomanizedCues:
    """Labels a text as `code` when at least `min_hits` of its words are romanised cue words of that language."""

    def __init__(self, code: str, min_hits: int = 2):
        if code not in ROMANIZED_CUES:
            raise ValueError(f"es_romanized: no romanised cue words for language {code!r}; "
                             f"known: {', '.join(sorted(ROMANIZED_CUES))}")
        self.code, self.cues, self.min_hits = code, ROMANIZED_CUES[code], min_hits

    def matches(self, text: str) -> bool:
        return sum(w in self.cues for w in _WORD.findall(text.lower())) >= self.min_hits


class LanguageIdentifier:
    """Labels texts with one of a fixed set of languages, or None where lingua finds no language. With `romanized`
    (a language code), romanised text of that language found by its cue words is labelled with it too."""

    def __init__(self, codes: Sequence[str], romanized: str | None = None):
        codes = sorted(set(codes))
        if len(codes) < 2:
            raise ValueError(f"language ID needs at least two languages to choose from, got {codes}")
        self.codes = tuple(codes)
        self._detector = LanguageDetectorBuilder.from_languages(*(_language(c) for c in codes)).build()
        self.romanized = RomanizedCues(romanized) if romanized else None

    def label(self, texts: Sequence[str]) -> list[str | None]:
        langs = self._detector.detect_languages_in_parallel_of(list(texts))
        labels = [lang.iso_code_639_1.name.lower() if lang is not None else None for lang in langs]
        if self.romanized is not None:
            labels = [self.romanized.code if self.romanized.matches(t) else label for t, label in zip(texts, labels)]
        return labels

    def share(self, texts: Sequence[str], code: str) -> float:
        """Share of texts labelled `code` (the extraction-strength statistic)."""
        if not texts:
            return 0.0
        return sum(label == code for label in self.label(texts)) / len(texts)
