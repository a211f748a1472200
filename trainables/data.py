"""Study data in mmie.py's format: JSONL files, one object per line with a non-empty "text" field.

A study has a forget set, a retain set, an optional code-mixed set and optional cross-lingual sets. Each set is
split once, deterministically by seed, into training lines and held-out evaluation lines; generation prompts are
prefixes of held-out lines. An optional general utility set (`utility_eval`) is never trained on: all its lines are
evaluation lines, and utility is measured on it instead of on held-out retain lines. Every problem is reported with the file and line it comes from, so a bad file fails
the study before any cluster work starts.
"""

from __future__ import annotations

import codecs
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

UTILITY_SET = "utility"  # the set name of DataPaths.utility_eval
# Forget lines kept for the relearning attack: never trained on by unlearning, never evaluated on.
ATTACK_LINES = 128


class DataError(ValueError):
    """A study data file is missing or malformed; the message names the file (and line)."""


def _decoded_lines(path: Path, role: str):
    """(line number, text) of a UTF-8 file (a UTF-8 BOM is accepted); other encodings are errors naming the line."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise DataError(f"{role} file {path}: is UTF-16 or UTF-32 (it starts with that byte-order mark); "
                        "save it as UTF-8")
    raw = raw.removeprefix(codecs.BOM_UTF8)
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        try:
            yield lineno, line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{role} file {path}, line {lineno}: not UTF-8 (byte {line[e.start]:#04x} at column "
                            f"{e.start + 1}); save the file as UTF-8") from None


def read_jsonl(path: str | Path, role: str = "data") -> list[str]:
    """The "text" of every line of a JSONL file. Blank lines are skipped; anything else malformed is an error."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{role} file {path}: is a directory, not a JSONL file")
    if not path.is_file():
        raise DataError(f"{role} file {path}: not found")
    texts: list[str] = []
    for lineno, raw in _decoded_lines(path, role):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{role} file {path}, line {lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or "text" not in obj:
            raise DataError(f'{role} file {path}, line {lineno}: no "text" field')
        text = obj["text"]
        if not isinstance(text, str):
            raise DataError(f'{role} file {path}, line {lineno}: "text" is {type(text).__name__}, not a string')
        if not text.strip():
            raise DataError(f'{role} file {path}, line {lineno}: empty "text"')
        # JSON escapes can spell a lone surrogate ("\ud800"), which no tokenizer can encode.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise DataError(f'{role} file {path}, line {lineno}: "text" has an invalid character '
                            f"{text[e.start]!r} (a lone UTF-16 surrogate) at character {e.start + 1}") from None
        texts.append(text)
    if not texts:
        raise DataError(f"{role} file {path}: no lines with text")
    return texts


def write_jsonl(path: str | Path, texts: list[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class DataPaths:
    """Where a study's data lives; mirrors mmie.py's --forget/--retain/--mixed/--xlang/--adversarial flags."""

    forget: str
    retain: str
    mixed: str | None = None
    xlang: tuple[str, ...] = ()
    utility_eval: str | None = None
    # Prompts that try to extract the forget language (mmie.py's es_adversarial); never trained on.
    adversarial: str | None = None

    def roles(self) -> dict[str, str]:
        """Set name -> path. Cross-lingual sets are named after their file (xlang_urdu for urdu.jsonl)."""
        roles = {"forget": self.forget, "retain": self.retain}
        if self.mixed:
            roles["mixed"] = self.mixed
        if self.adversarial:
            roles["adversarial"] = self.adversarial
        for i, p in enumerate(self.xlang, start=1):
            roles[xlang_set_name(p, i, roles)] = p
        if self.utility_eval:
            roles[UTILITY_SET] = self.utility_eval
        return roles


def xlang_set_name(path: str, position: int, taken) -> str:
    """`xlang_<file stem>`, in the letters MLflow takes in a metric name (ASCII letters, digits, _ - .) and unique:
    a stem such as उर्दू or a+b would make MLflow reject every metric of the trial. The name falls back to the
    file's position (xlang_2) when nothing of the stem is left, and gets a suffix when two files share it."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("_.-")
    name = f"xlang_{stem}" if stem else f"xlang_{position}"
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


@dataclass
class TextSet:
    name: str
    path: str
    train: list[str]
    heldout: list[str]
    # Lines held out from both training and evaluation, for the relearning attack (trainables.metrics.robustness).
    attack: list[str] = field(default_factory=list)


@dataclass
class StudyData:
    sets: dict[str, TextSet] = field(default_factory=dict)

    @property
    def forget(self) -> TextSet:
        return self.sets["forget"]

    @property
    def retain(self) -> TextSet:
        return self.sets["retain"]

    @property
    def utility(self) -> TextSet:
        """The set utility is measured on: the general utility set if the study has one, else the retain set."""
        return self.sets.get(UTILITY_SET, self.retain)

    def collateral_sets(self) -> list[TextSet]:
        """The sets whose damage is collateral: mixed and cross-lingual (the adversarial set is prompts only)."""
        return [s for name, s in self.sets.items() if name not in ("forget", "retain", "adversarial", UTILITY_SET)]


def split_heldout(texts: list[str], seed: int, heldout: int) -> tuple[list[str], list[str]]:
    """Deterministic (train, held-out) split; at least one line stays on each side when possible."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n = min(heldout, max(len(texts) // 5, 1)) if len(texts) > 1 else 0
    held = [texts[i] for i in order[:n]]
    train = [texts[i] for i in order[n:]]
    return train, held


def split_attack(train: list[str], attack: int) -> tuple[list[str], list[str]]:
    """The last lines of the (already shuffled) training lines, up to a fifth of them, set aside for the
    relearning attack. Training keeps the rest in the same order, so train + attack is the unsplit training list."""
    n = min(attack, len(train) // 5)
    return train[: len(train) - n], train[len(train) - n :]


def split_set(name: str, path: str, texts: list[str], seed: int, heldout: int, attack: int = ATTACK_LINES) -> TextSet:
    """One set's lines split into training, held-out and (the forget set's) attack lines: the one split a study and
    the mmie.py entry points share, so an exported configuration trains on exactly the study's lines."""
    if name == UTILITY_SET:  # never trained on: all its lines are evaluation lines (a fixed sample of them)
        train, held = [], random.Random(seed).sample(texts, min(heldout, len(texts)))
    else:
        train, held = split_heldout(texts, seed, heldout)
    train, attack_lines = split_attack(train, attack) if name == "forget" else (train, [])
    return TextSet(name=name, path=str(path), train=train, heldout=held, attack=attack_lines)


def load_study_data(paths: DataPaths, seed: int = 0, heldout: int = 128, attack: int = ATTACK_LINES) -> StudyData:
    """Read and validate every file, then split each set into training and held-out lines (and the forget set's
    attack lines)."""
    data = StudyData()
    for name, path in paths.roles().items():
        texts = read_jsonl(path, role="utility_eval" if name == UTILITY_SET else name.split("_")[0])
        if name in ("forget", "retain", UTILITY_SET) and len(texts) < 2:
            raise DataError(f"{name} file {path}: needs at least 2 lines (training and held-out), has {len(texts)}")
        data.sets[name] = split_set(name, path, texts, seed, heldout, attack)
    return data


def prompt_prefix(text: str, fraction: float = 0.4, min_words: int = 2) -> str:
    """The opening words of a held-out line, used as a generation prompt (space-joined, no trailing space)."""
    words = text.split()
    k = max(min_words, int(len(words) * fraction))
    return " ".join(words[: min(k, max(len(words) - 1, 1))])
