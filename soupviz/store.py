"""The one results store: evaluation records in SQLite (WAL mode), keyed by everything that decides them.

A record's key hashes the soup (its ingredients' content hashes with their weights), the metric
spec, the images' content, the seed, the BatchNorm rule and `code_fingerprint()`, so editing an
attack misses old entries instead of serving their numbers. Inserts are idempotent (the key is
unique; the first record wins), many readers can read while one writer appends, and every insert
commits at once, so a killed sweep loses no finished record. JSON and CSV are export formats; an
uploaded export or store file is read back as one family's records (`records_from_upload`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from soupviz.errors import SoupvizError
from soupviz.evaluate.records import Record
from soupviz.storage import atomic_write_bytes, atomic_write_json, cache_dir

RESULTS_FORMAT = "soupviz-results/2"  # /2: each record's spec as data
READABLE_FORMATS = ("soupviz-results/1", RESULTS_FORMAT)
SQLITE_HEADER = b"SQLite format 3\0"
FINGERPRINTED_SOURCES = (
    "attacks",
    "corruptions.py",
    "image_filters.py",
    "models.py",
    "parameters.py",
    "soup.py",
    "evaluate/evaluator.py",
    "evaluate/factory.py",
    "evaluate/metrics.py",
    "evaluate/records.py",
    "evaluate/methods.py",
    "evaluate/ensembles.py",
    "evaluate/merges.py",
    "layerwise.py",
    "task_vectors.py",
)
FINGERPRINTED_PACKAGES = ("torch", "pyautoattack")
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY, family TEXT NOT NULL, weights TEXT NOT NULL, spec TEXT NOT NULL,
    images TEXT NOT NULL, seed INTEGER NOT NULL, batchnorm TEXT NOT NULL, code TEXT NOT NULL,
    layout TEXT NOT NULL, record TEXT NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_family ON records (family, spec);
CREATE TABLE IF NOT EXISTS parts (
    key TEXT NOT NULL, shard INTEGER NOT NULL, shards INTEGER NOT NULL, mask TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (key, shard)
);
"""


@functools.cache
def code_fingerprint() -> str:
    """16 hex digits of SHA-256 over the soupviz sources that produce a record (`FINGERPRINTED_SOURCES`,
    folders read recursively, paths and bytes) and the versions of `FINGERPRINTED_PACKAGES`.
    Computed once per process: a source edited while a process runs is seen by the next one."""
    package = Path(__file__).parent
    files = []
    for name in FINGERPRINTED_SOURCES:
        path = package / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in FINGERPRINTED_PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{name}=={version}\0".encode())
    return digest.hexdigest()[:16]


def record_key(**parts: Any) -> str:
    """SHA-256 of the JSON of `parts` (sorted keys); callers include the code fingerprint."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def family_fingerprint(hashes: Sequence[str]) -> str:
    """16 hex digits naming a family by its checkpoints' content hashes, in family order."""
    return hashlib.sha256("\0".join(hashes).encode()).hexdigest()[:16]


def packbits(mask: torch.Tensor) -> str:
    """A boolean vector as a hex string (8 images a byte), to store per-image results compactly."""
    bits = mask.to(torch.uint8).cpu()
    padded = torch.nn.functional.pad(bits, (0, (-len(bits)) % 8)).view(-1, 8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
    return bytes((padded * weights).sum(dim=1).to(torch.uint8).tolist()).hex()


def unpackbits(text: str, n: int) -> torch.Tensor:
    """Inverse of `packbits` for a vector of length `n`."""
    data = torch.tensor(list(bytes.fromhex(text)), dtype=torch.uint8)
    bits = (data[:, None] >> torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    return bits.flatten()[:n].bool()


class ResultStore:
    """Records in one SQLite file (WAL mode), by default `<soupviz cache>/results.sqlite`.

    Each thread and process opens its own connection on first use, so a store can be shared by
    the dashboard's threads and pickled to sweep workers. Shard results of a sweep wait in a
    `parts` table until every shard of a record is in.

    Example:
        >>> store = ResultStore(tmp_path / "results.sqlite")
        >>> store.put(key, record, family=family_fingerprint(family.hashes))
        True
        >>> store.get(key) == record
        True
    """

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 60.0) -> None:
        self.path = Path(path) if path else cache_dir() / "results.sqlite"
        self.timeout = timeout
        self._local = threading.local()

    def __getstate__(self) -> dict:
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["timeout"])

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(SCHEMA)
            except sqlite3.DatabaseError as error:
                raise SoupvizError(f"The results store {self.path} cannot be opened ({error}).") from error
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def get(self, key: str) -> Record | None:
        """The record stored under `key`, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """The stored records among `keys`, by key."""
        keys, found = list(keys), {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._connection().execute(
                f"SELECT key, record FROM records WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update((key, Record.from_dict(json.loads(text))) for key, text in rows)
        return found

    def put(self, key: str, record: Record, *, family: str, layout: str = "") -> bool:
        """Store `record` under `key` unless a record is there already; True if it was stored.

        Args:
            family: `family_fingerprint` of the family the record was computed in.
            layout: how the soup was batched (e.g. 'soup 2 of 8 folded'): attacks draw random
                starts per batch, so this says which draws a robust record used.
        """
        return self.put_many([(key, record, family, layout)]) == 1

    def put_many(self, items: Sequence[tuple[str, Record, str, str]]) -> int:
        """Store (key, record, family, layout) items in one transaction; the number newly stored."""
        rows = [
            (key, family, json.dumps(r.weights), r.spec, r.images, r.seed, r.batchnorm, r.code_fingerprint, layout,
             json.dumps(r.to_dict()), time.time())
            for key, r, family, layout in items
        ]
        with self._transaction() as connection:
            before = connection.total_changes
            connection.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            return connection.total_changes - before

    def records(self, family: str | None = None, spec: str | None = None) -> list[Record]:
        """Stored records in insertion order, optionally of one family fingerprint and spec key."""
        clauses = [(column, value) for column, value in (("family", family), ("spec", spec)) if value is not None]
        where = " AND ".join(f"{column} = ?" for column, _ in clauses)
        query = "SELECT record FROM records" + (f" WHERE {where}" if where else "") + " ORDER BY rowid"
        rows = self._connection().execute(query, [v for _, v in clauses])
        return [Record.from_dict(json.loads(text)) for (text,) in rows]

    def modified(self) -> float:
        """When the store was last written (the latest modification time of its file and its
        write-ahead log, in seconds since the epoch); 0.0 when there is no store yet."""
        files = (self.path, self.path.with_name(self.path.name + "-wal"))
        return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM records").fetchone()[0]

    def put_part(self, key: str, shard: int, shards: int, mask: torch.Tensor) -> None:
        """Keep the per-image results of image shard `shard` of `shards` for the record `key`."""
        with self._transaction() as connection:
            connection.execute("INSERT OR IGNORE INTO parts VALUES (?,?,?,?,?)",
                               (key, shard, shards, packbits(mask), len(mask)))

    def parts(self, key: str) -> dict[int, torch.Tensor]:
        """The per-image results of the shards stored for `key`, by shard."""
        rows = self._connection().execute("SELECT shard, mask, n FROM parts WHERE key = ?", (key,))
        return {shard: unpackbits(mask, n) for shard, mask, n in rows}

    def done_parts(self) -> set[tuple[str, int]]:
        """(key, shard) of every stored shard result."""
        return set(self._connection().execute("SELECT key, shard FROM parts"))

    def drop_parts(self, key: str) -> None:
        """Forget the shard results of `key` (once its whole record is stored)."""
        with self._transaction() as connection:
            connection.execute("DELETE FROM parts WHERE key = ?", (key,))

    def _transaction(self):
        return _Transaction(self._connection())


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), yielding the connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, *rest) -> None:
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")


def write_records(records: list[Record], path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Export records to `path`: CSV for '.csv' (one row per record), else JSON with `meta`."""
    path = Path(path)
    if path.suffix == ".csv":
        atomic_write_bytes(records_to_csv(records).encode(), path)
    else:
        atomic_write_json({"format": RESULTS_FORMAT, "meta": meta or {}, "records": [r.to_dict() for r in records]},
                          path)
    return path


def records_to_csv(records: list[Record]) -> str:
    """Records as CSV text with a header row; the last column, `mask`, holds the per-image
    results (hex, 8 images a byte, in the order of the evaluated subset; `unpackbits` reads
    it), so paired comparisons can be re-checked from the file."""
    rows = [{**record.row(), "mask": record.mask} for record in records]
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def read_records(path: str | Path) -> tuple[list[Record], dict[str, Any]]:
    """Records and metadata from a JSON export written by `write_records` (files of the older
    form, which kept only each spec's key, still load), or every record of a results store file
    (metadata then names the store)."""
    path = Path(path)
    try:
        if path.read_bytes()[: len(SQLITE_HEADER)] == SQLITE_HEADER:
            return ResultStore(path).records(), {"store": str(path)}
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, sqlite3.DatabaseError) as error:
        raise SoupvizError(f"The results file {path} cannot be read ({error}).") from error
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        raise SoupvizError(f"The file {path} is not a soupviz results file (expected format {RESULTS_FORMAT}).")
    try:
        return [Record.from_dict(item) for item in data["records"]], data.get("meta", {})
    except (SoupvizError, TypeError, KeyError) as error:
        raise SoupvizError(f"The results file {path} has malformed records ({error}).") from error


def records_from_upload(data: bytes, names: Sequence[str]) -> list[Record]:
    """Records from an uploaded `soupviz sweep` JSON export, checked to be of this family, or
    this family's records from an uploaded results store (.sqlite).

    Raises:
        SoupvizError: not a results file, or results for other ingredients.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results"
        path.write_bytes(data)
        records, meta = read_records(path)
    if "store" in meta:
        records = [r for r in records if list(r.ingredients) == list(names)]
        if not records:
            raise SoupvizError(f"The results store holds no records of this family's {', '.join(names)}; "
                               "load the family it was swept on.")
    other = next((r for r in records if list(r.ingredients) != list(names)), None)
    if other is not None:
        raise SoupvizError(f"The results file is for the ingredients {', '.join(other.ingredients)}, "
                           f"not this family's {', '.join(names)}; load the family it was swept on.")
    return records
