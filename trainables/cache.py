"""Where the project caches what it builds (the embedded model, SAEs, shape models), and the lock that makes
concurrent trials on one node build each cached artefact only once."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

CACHE_ENV = "UNLEARN_STUDY_CACHE"


def cache_root() -> Path:
    """$UNLEARN_STUDY_CACHE, else ~/.cache/unlearn-study."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "unlearn-study"))


@contextmanager
def file_lock(path: Path):
    """An exclusive lock on `path` (created with its folder), held across processes on Linux, macOS and Windows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield
