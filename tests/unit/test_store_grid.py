"""A stored grid ranks its soups for the explorer's list; a family's records give one grid per metric,
the most complete where a metric was stored on several image subsets, and the clean and robust grids
a trade-off draws; a store says when it was last written, so pages reread it often only while a
sweep writes to it."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from soupviz.store import ResultStore, record_key
from soupviz.store_grid import StoredGrid, being_written, stored_grids, tradeoff_grids
from soupviz.weights import grid_weights
from tests.unit.test_figures import CLEAN, L2, LINF, measured, record
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


def test_each_metric_keeps_its_most_complete_grid_and_metrics_off_their_grid_are_left_out() -> None:
    grid = grid_weights(4, 0.5)
    few = [replace(record(w), images="50 images of test") for w in grid[:3]]
    full = [record(w) for w in grid]
    robust = [record(w, LINF) for w in grid[:4]] + [replace(record(w, LINF), images="50 images") for w in grid[:4]]
    off_grid = [record([1.5, -0.5, 0, 0], L2)]  # extrapolated only: no soup of any grid
    grids = stored_grids(few + full + robust + off_grid, 4)
    assert set(grids) == {CLEAN[1].key, LINF[1].key}
    assert grids[CLEAN[1].key].records == full and grids[CLEAN[1].key].share == 1.0
    assert grids[LINF[1].key].records == robust[:4]  # a tie: the first stored subset
    assert stored_grids([], 4) == {}


def test_a_tradeoff_draws_the_clean_grid_and_the_first_robust_grid_of_its_threat() -> None:
    grid = grid_weights(4, 0.5)
    grids = stored_grids([record(w, m) for m in (LINF, CLEAN) for w in grid[:5]], 4)
    clean, robust = tradeoff_grids(grids, "linf")
    assert clean.records[0].kind == "clean" and robust.records[0].spec == LINF[1].key
    assert tradeoff_grids(grids, "l2") is None
    assert tradeoff_grids({CLEAN[1].key: StoredGrid([], 0, 10), LINF[1].key: grids[LINF[1].key]}, "linf") is None


def test_a_tradeoff_prefers_a_stronger_attack_than_the_preview_even_on_fewer_soups() -> None:
    grid = grid_weights(4, 0.5)
    preview, default = measured("linf::pgd:10"), measured("linf::pgd+pgd-t:10:t3")
    records = [record(w, m) for w in grid for m in (CLEAN, preview)] + [record(w, default) for w in grid[:4]]
    clean, robust = tradeoff_grids(stored_grids(records, 4), "linf")
    assert robust.records[0].spec == default[1].key and robust.found == 4
    clean, robust = tradeoff_grids(stored_grids([r for r in records if r.spec != default[1].key], 4), "linf")
    assert robust.records[0].spec == preview[1].key and robust.found == len(grid)
