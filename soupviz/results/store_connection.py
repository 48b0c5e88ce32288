"""How the results store's SQLite file is opened, checked, migrated and its failures worded.

A store is opened for writing where its file and folder allow it, else read-only (a complete
store in a read-only folder stays readable); its pages are checked once per file state before
use; schemas of older soupviz versions are migrated on a writable open and read as they are
otherwise. Every SQLite failure becomes one `SoupvizError` sentence naming the store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from soupviz.errors import SoupvizError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY, family TEXT NOT NULL, weights TEXT NOT NULL, spec TEXT NOT NULL,
    images TEXT NOT NULL, seed INTEGER NOT NULL, batchnorm TEXT NOT NULL, code TEXT NOT NULL,
    layout TEXT NOT NULL, record TEXT NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_family ON records (family, spec);
CREATE TABLE IF NOT EXISTS parts (
    key TEXT NOT NULL, shard INTEGER NOT NULL, shards INTEGER NOT NULL, mask TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (key, shard, shards)
);
CREATE TABLE IF NOT EXISTS families (family TEXT PRIMARY KEY, hashes TEXT NOT NULL);
"""
# Before soupviz-results/2.1 a shard row was keyed by (key, shard) only: another shard count's row
# of the same number was taken for it. Migrating keeps the rows, now keyed with their count.
_PARTS_MIGRATION = """
ALTER TABLE parts RENAME TO parts_keyed_by_shard;
CREATE TABLE parts (
    key TEXT NOT NULL, shard INTEGER NOT NULL, shards INTEGER NOT NULL, mask TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (key, shard, shards)
);
INSERT OR IGNORE INTO parts SELECT key, shard, shards, mask, n FROM parts_keyed_by_shard;
DROP TABLE parts_keyed_by_shard;
"""
_checked: set[tuple[str, int, int]] = set()


def open_store(path: Path, timeout: float) -> sqlite3.Connection:
    """A connection to the store at `path` (created where missing), read-only where the file or its
    folder cannot be written, after checking its pages once per file state (size, mtime).

    Raises:
        SoupvizError: the store cannot be opened, is damaged, or is not a results store.
    """
    with store_errors(path, "open"):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        writable = not path.exists() or (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
        if writable:
            connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        else:
            connection = _read_only(path, timeout)
        _check(connection, path)
        if writable:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(SCHEMA)
            _migrate(connection)
        return connection


def _read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection; `immutable` where SQLite cannot keep its shared-memory file beside a
    store in WAL mode (a read-only folder): nobody can be writing it there."""
    uri = f"file:{quote(str(path.resolve()))}"
    try:
        connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout, isolation_level=None)
        connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=timeout, isolation_level=None)


def _migrate(connection: sqlite3.Connection) -> None:
    if _parts_keyed_by_count(connection):
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        if not _parts_keyed_by_count(connection):  # another process may have migrated it meanwhile
            for statement in filter(str.strip, _PARTS_MIGRATION.split(";")):
                connection.execute(statement)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _parts_keyed_by_count(connection: sqlite3.Connection) -> bool:
    return "shards" in {row[1] for row in connection.execute("PRAGMA table_info(parts)") if row[5]}


def _check(connection: sqlite3.Connection, path: Path) -> None:
    """Raise unless `PRAGMA integrity_check` passes (table and index pages, and index entries
    matching their rows); run once per file state in a process (about 50 ms for 32 MB)."""
    stat = path.stat()
    state = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if state in _checked:
        return
    names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if names and "records" not in names:
        raise SoupvizError(f"The file {path} is an SQLite database but not a soupviz results store; "
                           "pass a results store (--store) or move the file away.")
    problems = [row[0] for row in connection.execute("PRAGMA integrity_check(5)")]
    if problems != ["ok"]:
        lines = [line for text in problems for line in text.splitlines() if line and not line.startswith("***")]
        raise SoupvizError(f"The results store {path} is damaged ({(lines or problems)[0].rstrip('.')}); restore "
                           "it from a copy, or move it away and rerun to recompute its records.")
    _checked.add(state)


_ADVICE = {
    "SQLITE_FULL": "is full (no space left on its disk); free space there or pass --store on another disk",
    "SQLITE_READONLY": "is read-only and this step writes to it; make it writable or pass --store with a "
                       "writable file",
    "SQLITE_BUSY": "is locked by another writer for longer than the wait allowed; let that sweep finish, "
                   "or pass another --store",
    "SQLITE_CORRUPT": "is damaged; restore it from a copy, or move it away and rerun to recompute its records",
    "SQLITE_NOTADB": "is not an SQLite database; pass a results store (--store) or move the file away",
    "SQLITE_CANTOPEN": "cannot be opened; check that its folder exists and is readable",
    "SQLITE_IOERR": "cannot be read or written (an input/output error of its disk); check the disk",
}


@contextlib.contextmanager
def store_errors(path: Path, doing: str) -> Iterator[None]:
    """Turn any SQLite or file-system failure inside the block into one `SoupvizError` naming the
    store at `path`, what failed (`doing`: 'open', 'read', 'write') and what to do."""
    try:
        yield
    except sqlite3.Error as error:
        name = getattr(error, "sqlite_errorname", "") or ""
        advice = next((text for code, text in _ADVICE.items() if name.startswith(code)), None)
        if advice is None:
            advice = f"cannot be used ({error}); check the file or pass another --store"
        raise SoupvizError(f"The results store {path} {advice} (failed to {doing}: {name or error}).") from error
    except OSError as error:
        raise SoupvizError(f"The results store {path} cannot be used ({error.strerror or error}); "
                           "check its folder or pass another --store.") from error
