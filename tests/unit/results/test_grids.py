"""A stored grid ranks its soups for the explorer's list; a family's records give one grid per metric,
the most complete where a metric was stored on several image subsets, and the clean and robust grids
a trade-off draws; a store says when it was last written, so pages reread it often only while a
sweep writes to it."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from soupviz.attacks.defaults import measured_gaps
from soupviz.present.heatmap_figures import accuracy_heatmap
from soupviz.present.labels import stored_heatmap_caption
from soupviz.present.simplex_figures import filled_ternary_figure, tetrahedron_figure
from soupviz.present.tradeoff_figures import tradeoff_figure
from soupviz.results.grids import (
    StoredGrid,
    being_written,
    family_records,
    stored_grids,
    strongest_grids,
    summary_grids,
    tradeoff_grids,
)
from soupviz.results.records import corruption_mean
from soupviz.results.store import ResultStore, family_fingerprint, record_key
from soupviz.soups.weights import grid_weights
from tests.unit.present.test_soup_figures import CLEAN, L2, LINF, NAMES, measured, record
from tests.unit.results.test_store import make_record


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


def test_reading_the_records_of_a_few_soups_gives_what_filtering_all_of_them_gives(tmp_path: Path) -> None:
    store, hashes = ResultStore(tmp_path / "results.sqlite"), ["a", "b"]
    for index in range(6):
        store.put(record_key(index=index), make_record(index), family=family_fingerprint(hashes), hashes=hashes)
    store.put(record_key(index=9), replace(make_record(9), weights=None), family=family_fingerprint(hashes))
    store.put(record_key(index=7), make_record(2), family="other")
    soups = [[0.2, 0.8], [0.5, 0.5000000001], [0.9, 0.1]]  # the last is not stored; the second within rounding
    few = family_records(store, hashes, soups=soups)
    assert [r.weights for r in few] == [[0.2, 0.8], [0.5, 0.5]]
    assert [r.to_dict() for r in few] == [r.to_dict() for r in family_records(store, hashes) if r.weights in soups[:1]
                                          or r.weights == [0.5, 0.5]]


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
    # equally complete, stored first on fewer images: the subset with more images per soup speaks
    small = [replace(record(w, LINF, correct=20, n=40), images="40 images of test") for w in grid]
    large = [record(w, LINF) for w in grid]
    assert stored_grids(small + large, 4)[LINF[1].key].records == large


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


FOG, SNOW = measured("fog:3"), measured("snow:3")


def test_corruption_conditions_fold_into_a_mean_over_the_soups_that_have_them_all() -> None:
    grid = grid_weights(4, 0.5)
    fog = [record(w, FOG, correct=40 + i) for i, w in enumerate(grid)]
    snow = [record(w, SNOW, correct=60) for w in grid[:-2]]  # a sweep still writing: two soups lack snow
    grids = stored_grids([record(w) for w in grid] + fog + snow + [record(w, LINF) for w in grid], 4)
    assert list(grids) == [CLEAN[1].key, "corruption-mean:2", FOG[1].key, SNOW[1].key, LINF[1].key]
    mean = grids["corruption-mean:2"]
    assert (mean.found, mean.expected) == (len(grid) - 2, len(grid))
    assert [m.weights for m in mean.records] == [r.weights for r in fog[:-2]]
    assert mean.records[1] == corruption_mean([fog[1], snow[1]])
    assert mean.records[1].accuracy == (0.41 + 0.60) / 2
    assert list(summary_grids(grids)) == [CLEAN[1].key, "corruption-mean:2", LINF[1].key]
    transferred = measured("linf::apgd-ce:20@linf")
    with_transfer = stored_grids([record(w) for w in grid] + [record(w, transferred) for w in grid], 4)
    assert list(with_transfer) == [CLEAN[1].key, transferred[1].key]
    assert list(summary_grids(with_transfer)) == [CLEAN[1].key], "a transfer column is the Merge lab's"
    assert list(summary_grids({k: g for k, g in grids.items() if k != "corruption-mean:2"})) == \
        [CLEAN[1].key, FOG[1].key, SNOW[1].key, LINF[1].key]
    assert tradeoff_grids(grids, "linf")[1].records[0].spec == LINF[1].key


def test_the_corruption_mean_draws_and_exports_like_a_metric() -> None:
    grid = grid_weights(4, 0.25)
    records = [record(w, metric, correct=30 + round(40 * w[0])) for metric in (FOG, SNOW) for w in grid]
    mean = stored_grids(records, 4)["corruption-mean:2"]
    spec = mean.records[0].spec
    for fig in (filled_ternary_figure(mean.records, spec, (0, 1, 2), labels=NAMES),
                tetrahedron_figure(mean.records, spec, labels=NAMES),
                accuracy_heatmap(mean.records, [("a", grid[0])], labels=NAMES)):
        assert "corruption mean" in fig.to_json()
    row = mean.records[0].row()
    assert list(row) == list(records[0].row()) and row["kind"] == "corruption-mean"
    assert row["method"].startswith("mean over 2 corruptions × severity 3")


def test_a_heatmap_keeps_the_strongest_attack_per_threat_and_budget_in_reading_order() -> None:
    soups = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.25] * 4]
    preview, default, at4 = measured("linf::pgd:10"), measured("linf::pgd+pgd-t:10:t3"), measured("linf:4/255::")
    l2 = measured("l2::pgd+pgd-t:10:t3")
    records = ([record(w, preview) for w in soups] + [record(w, l2) for w in soups] + [record(w, FOG) for w in soups]
               + [record(w, default) for w in soups[:2]] + [record(w, at4) for w in soups] + [record(w) for w in soups]
               + [record([0.5, 0.5, 0, 0], default)])  # not a row
    grids = stored_grids(records, 4, soups)
    assert grids[default[1].key].found == 2
    columns = strongest_grids(grids)
    assert list(columns) == [CLEAN[1].key, at4[1].key, default[1].key, l2[1].key, "corruption-mean:1", FOG[1].key]
    assert stored_heatmap_caption(list(summary_grids(columns).values()), 3) == \
        "Precomputed: 3 soups × 5 metrics on 100 images; blank cells are not in the store yet."
    assert strongest_grids(stored_grids(records[:3], 4, soups)) == {preview[1].key: grids[preview[1].key]}
    alone = strongest_grids(stored_grids(records[:3], 4, soups))
    assert stored_heatmap_caption(list(alone.values()), 3) == (
        "Precomputed: 3 soups × 1 metrics on 100 images. L∞ 8/255 by PGD-10, preview, overstates robustness: up to "
        f"{measured_gaps()['linf']['pgd-10'].points:.1f} points above AutoAttack at L∞ 8/255 on the shipped "
        "ingredients (1000 images each).")


def test_a_tradeoff_can_set_one_threat_or_the_corruption_mean_against_another() -> None:
    grid = grid_weights(4, 0.5)
    records = [record(w, m) for m in (CLEAN, LINF, L2, FOG, SNOW) for w in grid]
    grids = stored_grids(records, 4)
    x, y = tradeoff_grids(grids, "linf", "l2")
    assert (x.records[0].spec, y.records[0].spec) == (L2[1].key, LINF[1].key)
    x, y = tradeoff_grids(grids, "l2", "corruption-mean")
    assert x.records[0].kind == "corruption-mean" and y.records[0].spec == L2[1].key
    assert tradeoff_grids(grids, "linf", "l1") is None
    fig = tradeoff_figure(x.records + y.records, y.records[0].spec, x.records[0].spec)
    assert "corruption mean" in fig.layout.xaxis.title.text


def test_a_stored_record_speaks_for_a_measured_one_by_a_stronger_attack_on_the_same_soup_and_rule(tmp_path) -> None:
    from soupviz.results.grids import speaking_records
    from soupviz.results.metric_specs import MetricSpec

    store, hashes = ResultStore(tmp_path / "results.sqlite"), ["a", "b"]

    def put(key: str, record) -> None:
        store.put(key, record, family=family_fingerprint(hashes), hashes=hashes)

    live = replace(make_record(2), measure=MetricSpec.parse("linf::pgd:10"))  # the preview, on soup 0.2 0.8
    strong = replace(live, measure=MetricSpec.parse("linf::autoattack-apgd:10"), correct=1, accuracy=1 / 12)
    put("rule", replace(strong, batchnorm="reestimate"))  # another BatchNorm rule: another model
    put("soup", replace(strong, weights=[0.5, 0.5]))  # another soup
    assert [r.to_dict() for r in speaking_records(store, hashes, [live])] == [live.to_dict()]
    put("strong", strong)
    fog = replace(make_record(2), measure=MetricSpec.parse("fog:1"))
    put("fog", replace(fog, n=100))  # more images, but a corruption condition stays this run's
    spoken = speaking_records(store, hashes, [live, fog])
    assert [r.to_dict() for r in spoken] == [strong.to_dict(), fog.to_dict()]
    assert speaking_records(None, hashes, [live]) == [live]
