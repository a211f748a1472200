"""mmie.py's language ID: the published `lid_ensemble.py`'s plurality vote, with the voters its command turns on.

mmie.py's `lid_ensemble.py` (docs/mmie-metrics.md) NFKC-normalises a text and asks, in order:
- script: any one character of a block votes: Devanagari U+0900-097F -> hi (checked first, so a danda in a
  Punjabi or Bengali line votes hi), then Gurmukhi -> pa, Bengali -> bn, Arabic -> ur;
- cue words: on a text with a Latin letter, at least two whole-word hits (lowercased, split on spaces) of its 18
  romanised Hindi words -> hi;
- langid, only on texts of 3 or more characters (mr read as hi, ar as ur);
- CLD3 (the module `pycld3`), only with mmie.py's `--use_xlmr` (the flag's slot is reused for CLD3);
- fastText, only with `--use_fasttext` and the environment variable FASTTEXT_LID_PATH naming a `lid.176.bin`.
The label is the plurality of the votes that are not 'und'; a tie goes to the voter asked first. So a command
without `--use_xlmr --use_fasttext` votes with script, cue words and langid: the default here too
(`MmieEvalConfig.use_xlmr`, `use_fasttext`, which the exporter turns into those flags).

Where this differs: CLD3 runs through Google's own binding `gcld3` (PyPI `cld3-py`, the same network) because
pycld3 does not build here; fastText is run by `fasttext-predict` on the file FASTTEXT_LID_PATH names, and
abstains without it, as mmie.py's does.
"""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache

UND = "und"
# mmie.py's script voter: (first, last) code point of each block and its label, in the order it checks them.
SCRIPT_BLOCKS = (
    ("hi", ((0x0900, 0x097F),)),
    ("pa", ((0x0A00, 0x0A7F),)),
    ("bn", ((0x0980, 0x09FF),)),
    ("ur", ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF))),
)
# mmie.py's 18 cue words (lid_ensemble.py, as the fact sheet lists them).
HINDI_CUES = frozenset(
    "hai nahi kya kyun kaise kripya dhanyavaad shukriya tum aap mera meri hum unhe kam zyaada bahut kyunki".split()
)
LANGID_MIN_CHARS = 3
VOTER_ORDER = ("script", "cue_words", "langid", "cld3", "fasttext")
FASTTEXT_ENV = "FASTTEXT_LID_PATH"


def script_vote(text: str) -> str:
    for label, blocks in SCRIPT_BLOCKS:
        if any(lo <= ord(ch) <= hi for ch in text for lo, hi in blocks):
            return label
    return UND


def cue_word_vote(text: str) -> str:
    if not any("a" <= ch <= "z" for ch in text.lower()):
        return UND
    hits = sum(word in HINDI_CUES for word in text.lower().split(" "))
    return "hi" if hits >= 2 else UND


def _langid_voter() -> Callable[[str], str]:
    from langid.langid import LanguageIdentifier, model

    identifier = LanguageIdentifier.from_modelstring(model, norm_probs=False)
    renamed = {"mr": "hi", "ar": "ur"}

    def vote(text: str) -> str:
        if len(text) < LANGID_MIN_CHARS:
            return UND
        code = identifier.classify(text)[0]
        return renamed.get(code, code)

    return vote


def _cld3_voter() -> Callable[[str], str]:
    import gcld3

    identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def vote(text: str) -> str:
        code = identifier.FindLanguage(text=text).language
        return code.split("-")[0] if code else UND

    return vote


def _fasttext_voter() -> Callable[[str], str]:
    path = os.environ.get(FASTTEXT_ENV, "")
    if not path or not os.path.isfile(path):
        raise ImportError(f"{FASTTEXT_ENV} does not name a fastText language-ID model")
    import fasttext

    model = fasttext.load_model(path)

    def vote(text: str) -> str:
        labels, _ = model.predict(text.replace("\n", " "), k=1)
        return labels[0].removeprefix("__label__") if labels else UND

    return vote


_PACKAGE_VOTERS = {"langid": _langid_voter, "cld3": _cld3_voter, "fasttext": _fasttext_voter}


def mmie_voters(use_xlmr: bool = False, use_fasttext: bool = False) -> tuple[str, ...]:
    """The voters a command with (or without) mmie.py's `--use_xlmr` and `--use_fasttext` asks."""
    extra = {"cld3": use_xlmr, "fasttext": use_fasttext}
    return tuple(v for v in VOTER_ORDER if extra.get(v, True))


def plurality(votes: Sequence[str]) -> str:
    """The most frequent non-'und' vote; among tied labels, the one whose first vote came earliest."""
    counted = [v for v in votes if v and v != UND]
    if not counted:
        return UND
    counts = Counter(counted)
    top = max(counts.values())
    return next(v for v in counted if counts[v] == top)


class LidEnsemble:
    """mmie.py's `lid.infer`: one label per text, 'und' when no voter has an answer. A voter whose package (or
    fastText's model file) is missing abstains, as in mmie.py, and is named in `missing`."""

    def __init__(self, voters: Sequence[str] = mmie_voters()):
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


@lru_cache(maxsize=4)
def ensemble_for(use_xlmr: bool = False, use_fasttext: bool = False) -> LidEnsemble:
    """Per process and flag set: loading langid and fastText takes about a second."""
    return LidEnsemble(mmie_voters(use_xlmr, use_fasttext))


def default_ensemble() -> LidEnsemble:
    """The voters of a command without `--use_xlmr --use_fasttext`: script, cue words, langid."""
    return ensemble_for()
