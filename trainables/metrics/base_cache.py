"""The base model's mmie.py measurements, kept on disk between processes.

Every trial process measured the base model once: mmie.py's prompts, sampled, on every ES set, and its
teacher-forced lines (about 25 s on one idle CPU thread for the embedded default, more than a test trial's training).
The figures depend only on the model's files, the data's, the settings, the sampling seed and the code that
measures, so a later process on the same machine reads them back instead: each of those is part of the key. A model
named on a hub (no local folder to fingerprint) is never cached on disk; its figures are measured per process."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from trainables.cache import cache_root
from trainables.settings import file_digest

FORMAT = 1  # raised when a cached file's meaning changes for the same key
_PACKAGE = Path(__file__).resolve().parent.parent
# The code whose change changes the figures: the measurements, language ID, and the model's loading and batching.
_CODE = ("metrics/mmie.py", "metrics/core.py", "language", "model")


def _code_digest() -> str:
    files = []
    for name in _CODE:
        p = _PACKAGE / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return hashlib.sha256("".join(file_digest(f) for f in files).encode()).hexdigest()


def _model_fingerprint(model_path: str) -> list | None:
    """Every file of a local model folder (its path, size and modification time); None for a hub name."""
    root = Path(model_path)
    if not root.is_dir():
        return None
    return [(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns)
            for f in sorted(root.rglob("*")) if f.is_file()]


def disk_key(model_path: str, data_paths, settings: dict) -> str | None:
    """The cache key of the base measurements of `model_path` on `data_paths` (a DataPaths: every file's bytes)
    under `settings` (dtype, seed, the mmie settings ...: anything JSON can write); None: not cached on disk."""
    model = _model_fingerprint(model_path)
    if model is None:
        return None
    import torch
    import transformers

    data = {role: file_digest(p) for role, p in sorted(data_paths.roles().items())}
    payload = {"format": FORMAT, "model": model, "data": data, "code": _code_digest(),
               "settings": {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in settings.items()},
               "torch": torch.__version__, "transformers": transformers.__version__,
               "fasttext": os.environ.get("FASTTEXT_LID_PATH")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _path(key: str) -> Path:
    return cache_root() / "mmie-base" / f"{key}.json"


def load(key: str) -> dict[str, float] | None:
    """The cached figures of `key`, or None (none cached, or a file that does not read as figures)."""
    try:
        values = json.loads(_path(key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
        return None
    return {k: float(v) for k, v in values.items()}


def store(key: str, values: dict[str, float]) -> None:
    """Write the figures atomically: a reader never sees half a file. NaN is written as Python's json writes it."""
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    with os.fdopen(fd, "w") as f:
        json.dump({k: float(v) for k, v in values.items()}, f)
    os.replace(tmp, path)
