"""The shipped, xz-packed store: unpacked once per content into the cache folder, also from a
background thread that a later caller waits for instead of unpacking again."""

from __future__ import annotations

import lzma
import threading
import time
from pathlib import Path

import pytest

from soupviz.results import packed
from soupviz.results.grids import family_store
from soupviz.results.packed import PACKED_STORE, SHIPPED_STORE, packed_store, unpack_in_background, unpacked_store


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    unpacked_store.cache_clear()
    family = tmp_path / "family"
    family.mkdir()
    (family / PACKED_STORE).write_bytes(lzma.compress(b"not really sqlite, but bytes to round-trip"))
    return family


def test_a_packed_store_is_unpacked_once_into_the_cache(folder: Path) -> None:
    stat = (folder / PACKED_STORE).stat()
    first = unpacked_store(str(folder / PACKED_STORE), stat.st_size, stat.st_mtime_ns)
    assert first.read_bytes() == b"not really sqlite, but bytes to round-trip"
    assert first.parent == Path(packed.cache_dir()) / "shipped" and family_store(folder).path == first
    (folder / SHIPPED_STORE).write_bytes(b"")  # a sweep's own store in the folder wins over the packed one
    assert packed_store(folder) is None and family_store(folder).path == folder / SHIPPED_STORE


def test_unpacking_in_the_background_leaves_one_unpacking_to_wait_for(folder: Path, monkeypatch) -> None:
    calls, release = [], threading.Event()
    decompress = lzma.decompress

    def slow(data: bytes) -> bytes:
        calls.append(threading.current_thread().name)
        release.wait(5)
        return decompress(data)

    monkeypatch.setattr(packed.lzma, "decompress", slow)
    unpack_in_background(folder)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:  # the background thread is decompressing
        time.sleep(0.01)
    waiter = threading.Thread(target=lambda: calls.append(family_store(folder).path.read_bytes()))
    waiter.start()
    release.set()
    waiter.join(10)
    assert calls[0] == "soupviz-unpack-store" and calls[1:] == [b"not really sqlite, but bytes to round-trip"]
    unpack_in_background(None)  # no folder, nothing to unpack: returns at once
