"""Where the project caches what it builds (the embedded model, SAEs, shape models), the lock that makes
concurrent trials on one node build each cached artefact only once, and the temporary folders builds write into."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

CACHE_ENV = "UNLEARN_STUDY_CACHE"
BUILDING = ".building-"


def cache_root() -> Path:
    """$UNLEARN_STUDY_CACHE, else ~/.cache/unlearn-study. A relative $UNLEARN_STUDY_CACHE is made absolute against
    the folder it is first read in, and written back so, for this process's later calls (after a chdir) and for the
    processes it starts (Ray's workers, which start elsewhere): the paths built under it, such as the embedded
    model's data files that an export writes into mmie.py's command, must keep naming one folder."""
    raw = os.environ.get(CACHE_ENV)
    if raw is None:
        return Path.home() / ".cache" / "unlearn-study"
    root = Path(raw).expanduser().absolute()
    if str(root) != raw:
        os.environ[CACHE_ENV] = str(root)
    return root


@contextmanager
def file_lock(path: Path):
    """An exclusive lock on `path` (created with its folder), held across processes on Linux, macOS and Windows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def building_folder(parent: Path, key: str) -> Path:
    """A new folder in `parent` for a build of `key` to write into before it is renamed into place, named after the
    key (.building-KEY-XXXXXXXX) so that a later build of the key can tell it from another key's."""
    return Path(tempfile.mkdtemp(prefix=f"{BUILDING}{key}-", dir=parent))


def remove_leftovers(parent: Path, key: str, log=print) -> list[Path]:
    """Remove the folders that builds of `key` left in `parent` when they were killed before renaming theirs into
    place (a model's size each). Call it holding the key's build lock: a key is built only under its lock, and the
    lock dies with its holder, so every such folder then is a dead build's. Another key's, whose build may be
    running, is never touched (mkdtemp's suffix has no '-', so a key is never read as another's prefix)."""
    prefix = f"{BUILDING}{key}-"
    left = sorted(p for p in parent.glob(f"{BUILDING}*")
                  if p.name.startswith(prefix) and "-" not in p.name[len(prefix):] and p.is_dir())
    for folder in left:
        shutil.rmtree(folder, ignore_errors=True)
    if left:
        log(f"removed {len(left)} folder(s) left by an interrupted build in {parent}: "
            f"{', '.join(p.name for p in left)}")
    return left
