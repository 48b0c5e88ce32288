"""The results store: idempotent inserts, readers beside a writer, shard parts, JSON/CSV export,
and uploaded results files read back only for their own family."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
import torch

from soupviz.errors import SoupvizError
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record
from soupviz.results.store import (
    ResultStore,
    family_fingerprint,
    packbits,
    read_records,
    record_key,
    records_from_upload,
    records_to_csv,
    unpackbits,
    write_records,
)
from soupviz.soups.weights import grid_weights


def make_record(index: int, n: int = 12) -> Record:
    mask = torch.arange(n) % (index + 2) == 0
    correct = int(mask.sum())
    return Record(
        weights=[index / 10, 1 - index / 10], ingredients=["a", "b"], measure=MetricSpec("clean"), n=n,
        correct=correct, accuracy=correct / n, ci_low=0.0, ci_high=1.0, method="clean accuracy",
        images=f"{n} images of synthetic", seed=0, batchnorm="mix", family="pair", mask=packbits(mask),
        code_fingerprint="abc",
    )


def test_a_record_round_trips_and_a_second_insert_of_its_key_changes_nothing(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    record = make_record(1)
    assert store.get("k1") is None
    assert store.put("k1", record, family="f")
    assert not store.put("k1", make_record(2), family="f")
    assert store.get("k1") == record and len(store) == 1
    assert store.records(family="f") == [record] and store.records(family="other") == []


def test_keys_differ_whenever_a_part_differs() -> None:
    assert record_key(a=1, weights=[0.5, 0.5]) == record_key(weights=[0.5, 0.5], a=1)
    assert record_key(a=1, weights=[0.5, 0.5]) != record_key(a=1, weights=[0.5, 0.50001])
    assert family_fingerprint(["h1", "h2"]) != family_fingerprint(["h2", "h1"])


def _insert_all(path: str, offset: int) -> None:
    store = ResultStore(path)
    for index in range(40):  # the same keys from both writers, in a different order
        key = (index + offset) % 40
        store.put(f"k{key}", make_record(key % 7), family="f")


def test_two_writers_inserting_the_same_keys_never_duplicate_them(tmp_path: Path) -> None:
    path = str(tmp_path / "results.sqlite")
    ResultStore(path).put("k0", make_record(0), family="f")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_insert_all, args=(path, offset)) for offset in (0, 20)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    store = ResultStore(path)
    assert len(store) == 40
    assert sorted(store.get_many(f"k{i}" for i in range(40))) == sorted(f"k{i}" for i in range(40))
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_reader_sees_committed_records_while_a_writer_holds_its_transaction(tmp_path: Path) -> None:
    writer, reader = ResultStore(tmp_path / "results.sqlite"), ResultStore(tmp_path / "results.sqlite")
    writer.put("k1", make_record(1), family="f")
    with writer._transaction() as connection:
        connection.execute("INSERT INTO parts VALUES ('k2', 0, 2, '00', 4)")
        assert len(reader) == 1 and reader.parts("k2", 2) == {}  # not blocked, and sees only what is committed
    assert set(reader.parts("k2", 2)) == {0}


def test_a_failed_transaction_leaves_no_trace(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    with pytest.raises(KeyboardInterrupt):
        with store._transaction() as connection:
            connection.execute("INSERT INTO parts VALUES ('k', 0, 2, '00', 4)")
            raise KeyboardInterrupt
    assert store.done_parts() == set()


def test_shard_parts_are_kept_per_split_until_their_record_is_stored(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    masks = [torch.tensor([True, False, True]), torch.tensor([False, True])]
    for shard, mask in enumerate(masks):
        store.put_part("k", shard, 2, mask)
    store.put_part("k", 0, 2, torch.tensor([False, False, False]))  # a repeated shard keeps the first
    assert store.put_part("k", 0, 4, torch.tensor([True])) == {0: torch.tensor([True])}  # another split's own
    parts = store.parts("k", 2)
    assert [parts[0].tolist(), parts[1].tolist()] == [m.tolist() for m in masks]
    assert store.done_parts() == {("k", 0, 2), ("k", 1, 2), ("k", 0, 4)}
    store.put("k", make_record(1, n=5), family="f")  # the record and the end of its parts: one transaction
    assert store.parts("k", 2) == {} and store.done_parts() == set()


def test_a_store_of_the_older_schema_is_migrated_keeping_its_shard_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE records (key TEXT PRIMARY KEY, family TEXT NOT NULL, weights TEXT NOT NULL,
                spec TEXT NOT NULL, images TEXT NOT NULL, seed INTEGER NOT NULL, batchnorm TEXT NOT NULL,
                code TEXT NOT NULL, layout TEXT NOT NULL, record TEXT NOT NULL, created REAL NOT NULL);
            CREATE TABLE parts (key TEXT NOT NULL, shard INTEGER NOT NULL, shards INTEGER NOT NULL,
                mask TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (key, shard));
            INSERT INTO parts VALUES ('k', 0, 2, 'a0', 3);
        """)
        connection.execute("INSERT INTO records VALUES ('r', 'f', '[0.1, 0.9]', 'clean', '', 0, '', '', '', ?, 0)",
                           (json.dumps(make_record(1).to_dict()),))
    store = ResultStore(path)
    assert store.get("r") == make_record(1) and store.done_parts() == {("k", 0, 2)}
    store.put_part("k", 0, 4, torch.tensor([True]))  # a row the old key would have refused
    assert store.done_parts() == {("k", 0, 2), ("k", 0, 4)}


def test_a_store_pickles_to_its_path_and_reopens(tmp_path: Path) -> None:
    import pickle

    store = ResultStore(tmp_path / "results.sqlite")
    store.put("k1", make_record(1), family="f")
    assert pickle.loads(pickle.dumps(store)).get("k1") == make_record(1)


def test_records_export_to_json_and_csv_and_read_back(tmp_path: Path) -> None:
    records = [make_record(i) for i in range(3)]
    path = write_records(records, tmp_path / "out.json", {"family": "pair"})
    assert read_records(path) == (records, {"family": "pair"})
    rows = records_to_csv(records).splitlines()
    assert rows[0].endswith(",mask") and len(rows) == 4
    first = rows[1].split(",")
    assert torch.equal(unpackbits(first[-1], 12), unpackbits(records[0].mask, 12))


def test_a_store_file_reads_as_a_results_file(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    store.put("k1", make_record(1), family="f")
    records, meta = read_records(store.path)
    assert records == [make_record(1)] and meta == {"store": str(store.path)}


@pytest.mark.parametrize("text", ["{", json.dumps({"format": "other"}), json.dumps([1])])
def test_a_file_that_is_not_results_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SoupvizError, match="bad.json"):
        read_records(path)


def test_a_sweep_file_loads_only_for_its_family(evaluator, family, tmp_path: Path) -> None:
    records = evaluator.evaluate(grid_weights(4, 0.5), [MetricSpec("clean")])
    path = write_records(records, tmp_path / "sweep.json")
    assert len(records_from_upload(path.read_bytes(), family.names)) == len(records)
    with pytest.raises(SoupvizError, match="not this family"):
        records_from_upload(path.read_bytes(), ["a", "b", "c", "d"])
    with pytest.raises(SoupvizError, match="not a readable soupviz results file"):
        records_from_upload(json.dumps({"records": []}).encode(), family.names)


@pytest.mark.parametrize("data", [b"{not json", b"\x00\x01 binary", json.dumps({"format": "other"}).encode(),
                                  b"SQLite format 3\x00" + b"\x00" * 200])
def test_an_unreadable_upload_is_one_sentence_naming_the_uploaded_file(family, data: bytes) -> None:
    with pytest.raises(SoupvizError) as caught:
        records_from_upload(data, family.names, "sweep.json")
    message = str(caught.value)
    assert message.startswith("sweep.json is not a readable soupviz results file; upload")
    assert "/tmp" not in message and "Expecting" not in message and message.count(". ") == 0


def test_exports_are_readable_by_others_and_print_float_noise_as_zero(tmp_path: Path) -> None:
    import os

    record = make_record(1)
    record.weights = [0.5 + 5.55e-16, -5.55e-16, 0.5]
    csv_path = write_records([record], tmp_path / "soups.csv")
    assert csv_path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert "0.5 0 0.5," in csv_path.read_text()
    with pytest.raises(SoupvizError, match=r"soups.txt needs a .json or .csv name"):
        write_records([record], tmp_path / "soups.txt")
    assert not os.path.exists(tmp_path / "soups.txt")


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_uploaded_store_gives_every_record_of_the_familys_soups_by_content(tmp_path: Path) -> None:
    path = tmp_path / "theirs.sqlite"
    ResultStore(path).put("k1", make_record(1), family=family_fingerprint(["a", "b"]), hashes=["a", "b"])
    _checkpointed(path)
    (record,) = records_from_upload(path.read_bytes(), ["x", "y", "z"], "theirs.sqlite", hashes=["c", "a", "b"])
    assert record.weights == [0.0, 0.1, 0.9] and record.ingredients == ["x", "y", "z"]
    with pytest.raises(SoupvizError, match="holds no records of this family"):
        records_from_upload(path.read_bytes(), ["x", "y"], "theirs.sqlite", hashes=["c", "d"])


def _filled(path: Path, count: int = 3) -> ResultStore:
    store = ResultStore(path)
    for i in range(count):
        store.put(f"k{i}", make_record(i), family="f")
    return store


def _checkpointed(path: Path) -> None:
    """Fold the write-ahead log into the file, as closing the last connection does."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_full_disk_is_one_sentence_naming_the_store(tmp_path: Path) -> None:
    store = _filled(tmp_path / "results.sqlite")
    connection = store._connection()
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")  # the disk as full as the file is now
    big = [(f"big{i}", make_record(1, n=4000), "f", "") for i in range(50)]
    with pytest.raises(SoupvizError, match=r"results.sqlite is full \(no space left on its disk\); free space"):
        store.put_many(big)
    assert len(store) == 3  # nothing half-stored


def test_a_read_only_store_is_read_and_a_write_to_it_is_one_sentence(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "results.sqlite"
    _filled(path)
    _checkpointed(path)
    monkeypatch.setattr("soupviz.results.store_connection.os.access", lambda *args: False)
    store = ResultStore(path)
    assert len(store) == 3 and store.get("k1") == make_record(1)
    with pytest.raises(SoupvizError, match=r"results.sqlite is read-only and this step writes to it"):
        store.put("k9", make_record(2), family="f")


def test_a_lock_held_too_long_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    holder, waiter = _filled(path), ResultStore(path, timeout=0.1)
    with holder._transaction():
        with pytest.raises(SoupvizError, match="is locked by another writer for longer than the wait allowed"):
            waiter.put("k9", make_record(2), family="f")
    assert waiter.put("k9", make_record(2), family="f")


def _damage(path: Path, table: str) -> None:
    """Overwrite the root page of `table` (a table or an index) with garbage."""
    with sqlite3.connect(path) as connection:
        page, size = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0], \
            connection.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as handle:
        handle.seek((page - 1) * size + 8)
        handle.write(bytes(range(256)) * 4)


@pytest.mark.parametrize("table", ["records", "records_by_family"])
def test_a_damaged_store_is_found_before_use_even_in_an_index_only(tmp_path: Path, table: str) -> None:
    path = tmp_path / "results.sqlite"
    _filled(path, 40)
    _checkpointed(path)
    _damage(path, table)
    with pytest.raises(SoupvizError, match=r"results.sqlite is damaged .*restore it from a copy"):
        len(ResultStore(path))


def test_a_database_that_is_not_a_store_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    with pytest.raises(SoupvizError, match="not a soupviz results store"):
        ResultStore(path).records()
    with sqlite3.connect(path) as connection:  # and it was left as it was
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
