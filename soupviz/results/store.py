"""The one results store: evaluation records in SQLite (WAL mode), keyed by everything that decides them.

A record's key hashes the soup (its ingredients' content hashes with their weights), the metric
spec, the images' content, the seed, the BatchNorm rule and `code_fingerprint()`, so editing an
attack misses old entries instead of serving their numbers. Inserts are idempotent (the key is
unique; the first record wins), many readers can read while one writer appends, and every insert
commits at once, so a killed sweep loses no finished record. JSON and CSV are export formats; an
uploaded export or store file is read back as one family's records (`records_from_upload`).
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from soupviz.errors import SoupvizError
from soupviz.files import atomic_write_bytes, atomic_write_json, cache_dir
from soupviz.results.records import Record
from soupviz.results.store_connection import open_store, store_errors

RESULTS_FORMAT = "soupviz-results/2"  # /2: each record's spec as data
READABLE_FORMATS = ("soupviz-results/1", RESULTS_FORMAT)
SQLITE_HEADER = b"SQLite format 3\0"
EXPORT_SUFFIXES = (".json", ".csv")
FINGERPRINTED_SOURCES = (
    "attacks",
    "corruptions/cifar_c.py",
    "corruptions/image_filters.py",
    "models",
    "soups/parameters.py",
    "soups/soup.py",
    "evaluate/evaluator.py",
    "evaluate/factory.py",
    "results/metric_specs.py",
    "results/records.py",
    "evaluate/methods.py",
    "evaluate/ensembles.py",
    "evaluate/merges.py",
    "soups/layerwise.py",
    "soups/task_vectors.py",
)
FINGERPRINTED_PACKAGES = ("torch", "pyautoattack")


@functools.cache
def code_fingerprint() -> str:
    """16 hex digits of SHA-256 over the soupviz sources that produce a record (`FINGERPRINTED_SOURCES`,
    folders read recursively, paths and bytes) and the versions of `FINGERPRINTED_PACKAGES`.
    Computed once per process: a source edited while a process runs is seen by the next one."""
    package = Path(__file__).parents[1]
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
            connection = open_store(self.path, self.timeout)
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def _read(self, query: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        """All rows of `query`; a failure is one `SoupvizError` naming the store."""
        connection = self._connection()
        with store_errors(self.path, "read"):
            return connection.execute(query, parameters).fetchall()

    def get(self, key: str) -> Record | None:
        """The record stored under `key`, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """The stored records among `keys`, by key."""
        keys, found = list(keys), {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._read(f"SELECT key, record FROM records WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update((key, Record.from_dict(json.loads(text))) for key, text in rows)
        return found

    def put(self, key: str, record: Record, *, family: str, layout: str = "", hashes: Sequence[str] = ()) -> bool:
        """Store `record` under `key` unless a record is there already; True if it was stored.

        Args:
            family: `family_fingerprint` of the family the record was computed in (a note: every
                family holding the soup's ingredients reads it, see `soup_records`).
            layout: how the soup was batched (e.g. 'soup 2 of 8 folded'): attacks draw random
                starts per batch, so this says which draws a robust record used.
            hashes: that family's ingredient content hashes, in order, so other families can map
                the record's weights onto theirs.
        """
        return self.put_many([(key, record, family, layout)], hashes=hashes) == 1

    def put_many(self, items: Sequence[tuple[str, Record, str, str]], hashes: Sequence[str] = ()) -> int:
        """Store (key, record, family, layout) items in one transaction, and forget the shard results
        of their keys in the same transaction; the number newly stored. `hashes`: as in `put`, for
        the items' family (all of one family)."""
        rows = [
            (key, family, json.dumps(r.weights), r.spec, r.images, r.seed, r.batchnorm, r.code_fingerprint, layout,
             json.dumps(r.to_dict()), time.time())
            for key, r, family, layout in items
        ]
        with self._transaction() as connection:
            before = connection.total_changes
            connection.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            stored = connection.total_changes - before
            connection.executemany("DELETE FROM parts WHERE key = ?", [(key,) for key, *_ in items])
            if hashes and items:
                connection.executemany("INSERT OR IGNORE INTO families VALUES (?, ?)",
                                       {(family, json.dumps(list(hashes))) for _, _, family, _ in items})
            return stored

    def records(
        self, family: str | None = None, spec: str | None = None,
        soups: Callable[[list[float] | None], bool] | None = None,
    ) -> list[Record]:
        """Stored records in insertion order, optionally of one family fingerprint and spec key,
        and of the soups whose weights `soups` accepts (only those records are parsed: a page
        drawing a few soups of a large store reads it in a fraction of the time)."""
        clauses = [(column, value) for column, value in (("family", family), ("spec", spec)) if value is not None]
        where = " AND ".join(f"{column} = ?" for column, _ in clauses)
        query = "SELECT weights, record FROM records" + (f" WHERE {where}" if where else "") + " ORDER BY rowid"
        rows = self._read(query, [v for _, v in clauses])
        return [Record.from_dict(json.loads(text)) for weights, text in rows
                if soups is None or soups(json.loads(weights))]

    def _sharing_families(self, hashes: Sequence[str]) -> dict[str, list[str]]:
        """The families (fingerprint -> ingredient hashes) whose records may weigh soups of the
        ingredients `hashes`: their own family and every noted family sharing an ingredient."""
        own = family_fingerprint(hashes)
        known = {own: list(hashes)}
        if self._read("SELECT name FROM sqlite_master WHERE name = 'families'"):
            rows = self._read("SELECT family, hashes FROM families")
            known.update((family, json.loads(text)) for family, text in rows if family != own)
        return {family: theirs for family, theirs in known.items() if family == own or set(theirs) & set(hashes)}

    def specs(self, hashes: Sequence[str]) -> list[str]:
        """The spec keys stored for soups of the ingredients `hashes`, in order of first storing."""
        shared = list(self._sharing_families(hashes))
        query = (f"SELECT spec FROM records WHERE family IN ({','.join('?' * len(shared))})"
                 " GROUP BY spec ORDER BY MIN(rowid)")
        return [spec for (spec,) in self._read(query, shared)]

    def soup_records(
        self, hashes: Sequence[str], spec: str | None = None,
        soups: Callable[[list[float] | None], bool] | None = None,
    ) -> list[Record]:
        """Stored records (of one spec key, where given) of every soup of the ingredients `hashes`
        (content hashes, in a family's order), in insertion order, whichever family computed them:
        a record of another family is read where every ingredient it weighs is among `hashes`, its
        weights put in the order of `hashes`. `soups`, where given, accepts the soups to read by
        their weights in that order (only those records are parsed: a page drawing a few soups of a
        large store reads it in a fraction of the time). Records of stores written before families
        were noted are read by their own family only."""
        own = family_fingerprint(hashes)
        known = self._sharing_families(hashes)
        shared = list(known)
        position = {h: i for i, h in enumerate(hashes)}
        chosen: dict[tuple[str, str], list[float] | None] = {}  # a store holds few soups in many rows

        def weighs(family: str, stored: str) -> bool:
            if (family, stored) not in chosen:
                weights = json.loads(stored)
                if family != own:
                    weights = _reordered(weights, known[family], position)
                chosen[family, stored] = weights if weights is not None and (soups is None or soups(weights)) else None
            return chosen[family, stored] is not None

        # the filter runs inside SQLite, so the records of other soups are never read out of the file
        self._connection().create_function("soupviz_weighs", 2, weighs)
        query = (f"SELECT family, weights, record FROM records WHERE family IN ({','.join('?' * len(shared))})"
                 + (" AND spec = ?" if spec is not None else "")
                 + " AND soupviz_weighs(family, weights) ORDER BY rowid")
        found = []
        for family, stored, text in self._read(query, [*shared, *([spec] if spec is not None else [])]):
            record = Record.from_dict(json.loads(text))
            found.append(record if family == own else replace(record, weights=list(chosen[family, stored])))
        return found

    def modified(self) -> float:
        """When the store was last written (the latest modification time of its file and its
        write-ahead log, in seconds since the epoch); 0.0 when there is no store yet."""
        files = (self.path, self.path.with_name(self.path.name + "-wal"))
        return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)

    def __len__(self) -> int:
        return self._read("SELECT COUNT(*) FROM records")[0][0]

    def put_part(self, key: str, shard: int, shards: int, mask: torch.Tensor) -> dict[int, torch.Tensor]:
        """Keep the per-image results of image shard `shard` of `shards` for the record `key`; the
        shards of that count stored for `key` so far (a repeated shard keeps the first), by shard."""
        with self._transaction() as connection:
            connection.execute("INSERT OR IGNORE INTO parts VALUES (?,?,?,?,?)",
                               (key, shard, shards, packbits(mask), len(mask)))
        return self.parts(key, shards)

    def parts(self, key: str, shards: int) -> dict[int, torch.Tensor]:
        """The per-image results stored for `key` of its shards of a split into `shards`, by shard
        (rows of another split of the same record are not theirs)."""
        rows = self._read("SELECT shard, mask, n FROM parts WHERE key = ? AND shards = ?", (key, shards))
        return {shard: unpackbits(mask, n) for shard, mask, n in rows}

    def done_parts(self) -> set[tuple[str, int, int]]:
        """(key, shard, shards) of every stored shard result."""
        return set(self._read("SELECT key, shard, shards FROM parts"))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error, the interrupt included), yielding the
        connection; an SQLite failure is one `SoupvizError` naming the store."""
        connection = self._connection()
        with store_errors(self.path, "write"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise


def _reordered(weights: list[float] | None, theirs: list[str], position: dict[str, int]) -> list[float] | None:
    """`weights` over the ingredients `theirs` as weights over the ingredients numbered in
    `position`, or None where it weighs an ingredient not among them."""
    if weights is None or len(weights) != len(theirs):
        return None
    mapped = [0.0] * len(position)
    for ingredient, weight in zip(theirs, weights, strict=True):
        if weight != 0:
            if ingredient not in position:
                return None
            mapped[position[ingredient]] = weight
    return mapped


def write_records(records: list[Record], path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Export records to `path`: CSV for '.csv' (one row per record), JSON with `meta` for '.json'.

    Raises:
        SoupvizError: another extension.
    """
    path = Path(path)
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise SoupvizError(f"The export {path} needs a .json or .csv name (the extension picks the format).")
    if path.suffix.lower() == ".csv":
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


def records_from_upload(data: bytes, names: Sequence[str], filename: str = "The uploaded file",
                        hashes: Sequence[str] | None = None) -> list[Record]:
    """Records from an uploaded `soupviz sweep` JSON export, checked to be of this family, or
    this family's records from an uploaded results store (.sqlite): with the family's ingredient
    content `hashes`, every record of its soups (`ResultStore.soup_records`), else the records
    computed under its ingredient names. Errors name the file as `filename` (the name it was
    uploaded under), never the temporary copy read.

    Raises:
        SoupvizError: not a results file, or results for other ingredients.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results"
        path.write_bytes(data)
        try:
            records, meta = read_records(path)
            if "store" in meta and hashes is not None:
                records = [replace(r, ingredients=list(names)) for r in ResultStore(path).soup_records(hashes)]
        except SoupvizError as error:
            raise SoupvizError(f"{filename} is not a readable soupviz results file; upload the .json export of "
                               "soupviz sweep or eval (--out) or a results store (.sqlite).") from error
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
