"""A stored grid ranks its soups for the explorer's list, and a store says when it was last
written, so pages reread it often only while a sweep writes to it."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from soupviz.store import ResultStore, record_key
from soupviz.store_grid import StoredGrid, being_written
from tests.unit.test_store import make_record


def test_a_grid_ranks_its_soups_inside_the_simplex_best_first() -> None:
    records = [replace(make_record(0), weights=[0.5, 0.5], accuracy=0.4),
               replace(make_record(0), weights=[1.0, 0.0], accuracy=0.7),
               replace(make_record(0), weights=[1.2, -0.2], accuracy=0.9),  # extrapolated: not listed
               replace(make_record(0), weights=[0.0, 1.0], accuracy=0.4)]
    ranked = StoredGrid(records, 4, 4).ranked()
    assert [r.weights for r in ranked] == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]


def test_a_store_tells_when_it_was_last_written(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    assert store.modified() == 0.0
    before = time.time()
    store.put(record_key(index=0), make_record(0), family="f")
    written = store.modified()
    assert written >= before - 1
    assert being_written(store, within=60, now=written + 30)
    assert not being_written(store, within=60, now=written + 61)
    assert not being_written(ResultStore(tmp_path / "none.sqlite"), now=written)


