"""Which writing system a character or a text is in, found from the Unicode data itself.

The platform never assumes Hindi or Devanagari: the forget language's script is whatever dominates the forget
file. A character's script is the first word of its Unicode name ("DEVANAGARI LETTER KA" -> DEVANAGARI), which
covers every script Unicode names this way. Only letters and combining marks count: punctuation shared between
scripts (the danda "।" sits in the Devanagari block but ends Punjabi and Bengali sentences too) is neutral.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

# Unicode names whose first word is not a script name.
_NAME_PREFIX_TO_SCRIPT = {"CJK": "HAN", "FULLWIDTH": "LATIN", "HALFWIDTH": "KATAKANA"}


@lru_cache(maxsize=65536)
def char_script(ch: str) -> str | None:
    """The script of a letter or combining mark, or None for digits, punctuation, spaces and symbols."""
    if not unicodedata.category(ch).startswith(("L", "M")):
        return None
    name = unicodedata.name(ch, "")
    if not name:
        return None
    first = name.split()[0]
    return _NAME_PREFIX_TO_SCRIPT.get(first, first)


def script_counts(text: str) -> Counter[str]:
    """How many letters and marks of each script the text holds."""
    counts: Counter[str] = Counter()
    for ch in text:
        script = char_script(ch)
        if script is not None:
            counts[script] += 1
    return counts


def dominant_script(texts: Iterable[str]) -> tuple[str | None, float]:
    """The most frequent script over all texts and its share of their letters (None, 0.0 if no letters)."""
    total: Counter[str] = Counter()
    for text in texts:
        total.update(script_counts(text))
    if not total:
        return None, 0.0
    script, n = total.most_common(1)[0]
    return script, n / sum(total.values())


def script_share(text: str, script: str) -> float:
    """Share of the text's letters that are in `script` (0.0 for a text with no letters)."""
    counts = script_counts(text)
    n = sum(counts.values())
    return counts[script] / n if n else 0.0
