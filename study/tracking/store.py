"""A local MLflow store (sqlite:///mlflow.db) checked before MLflow opens it, and created once.

MLflow creates and migrates an SQLite store the first time a client touches it; two studies started at once in a
folder without one both migrate it and leave it half-migrated (`table _alembic_tmp_params already exists`). `run`
creates it under a file lock beside it before anything else opens it. A file that is not an SQLite database, or one
cut short, would otherwise end in a long SQLAlchemy traceback from deep inside MLflow: it is named in one line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SQLITE = "sqlite:///"
HEADER = b"SQLite format 3\x00"
WHAT_TO_DO = "move it aside (a new study makes a new store) or give --tracking-uri"


class StoreUnreadable(RuntimeError):
    """The MLflow store at a local path cannot be read as one; raised before MLflow opens it."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of an sqlite:/// tracking URI, else None."""
    return Path(uri.removeprefix(SQLITE)) if uri.startswith(SQLITE) else None


def check_store(path: Path) -> None:
    """An existing local store must be a whole SQLite database holding MLflow's tables (an empty file is left to
    the caller: `run` makes a store in it, a read command refuses it). Reads its header and one table, inside a read
    transaction, so that a study writing to it meanwhile is never caught half-way."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(HEADER))
    except OSError as e:
        raise StoreUnreadable(f"MLflow store {path}: cannot be read ({e.strerror}); {WHAT_TO_DO}") from e
    if not magic:
        return
    if magic != HEADER:
        raise StoreUnreadable(f"MLflow store {path}: is not an SQLite database; {WHAT_TO_DO}")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            db.execute("BEGIN")
            try:  # the read lock: no writer changes the file until the end
                db.execute("PRAGMA schema_version").fetchone()
            except sqlite3.DatabaseError:
                _check_whole(path)  # a file cut short is said so, rather than "malformed"
                raise
            _check_whole(path)
            db.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        if "locked" in str(e):  # a study held it for longer than SQLite's wait (5 s): busy, not damaged
            return
        raise StoreUnreadable(f"MLflow store {path}: is not an MLflow store or is damaged ({e}); {WHAT_TO_DO}") from e


def _check_whole(path: Path) -> None:
    """The header records the database's size (SQLite's file format, section 1.3: the page size at offset 16, 1
    meaning 65536; the page count at offset 28, valid when the change counter at 24 equals the number at 92): a
    file shorter than that was cut short."""
    with open(path, "rb") as f:
        header = f.read(100)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size = path.stat().st_size
    if len(header) == 100 and header[24:28] == header[92:96] and size < page_size * pages:
        raise StoreUnreadable(f"MLflow store {path}: is cut short ({size} of {page_size * pages} bytes); restore it "
                              f"from a backup, or {WHAT_TO_DO}")


def check_local_store(uri: str) -> None:
    """What `run` checks before it builds anything: a local store that exists can be read (a missing or empty one
    is made later, by ensure_store)."""
    path = sqlite_path(uri)
    if path is not None and path.is_file():
        check_store(path)


def check_readable_store(uri: str) -> None:
    """What a read command (front, export, resume) checks: a local store exists, is whole and holds MLflow's tables.
    A read command never creates or migrates a store."""
    path = sqlite_path(uri)
    if path is None:
        return
    if not path.is_file():
        raise FileNotFoundError(f"no MLflow store at {path}: run from the folder the study ran in, or give "
                                "--tracking-uri")
    check_store(path)
    if path.stat().st_size == 0:
        raise StoreUnreadable(f"MLflow store {path}: is empty (no study ever ran with it); run from the folder the "
                              "study ran in, or give --tracking-uri")


def ensure_store(uri: str) -> None:
    """A local store, checked, and created and migrated by one process at a time (a lock file beside it): a study
    that starts while another creates the store waits for it, then finds it made. Other URIs are left to MLflow."""
    path = sqlite_path(uri)
    if path is None:
        return
    from mlflow.tracking import MlflowClient

    from trainables.cache import file_lock

    with file_lock(path.with_name(f".{path.name}.lock")):
        if path.is_file():
            check_store(path)
        MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the store when it must
