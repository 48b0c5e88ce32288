"""Specification of the layer-swap matrix and its figure: every block group of the base swapped in
from every other ingredient, stored apart from the soups, read back per image set and drawn with the
attack and image count on its face."""

from __future__ import annotations

import math

from soupviz.evaluate.factory import open_evaluator
from soupviz.evaluate.layer_swaps import evaluate_swaps, family_groups, layer_swaps, stored_swaps
from soupviz.present.figure_export import figure_info
from soupviz.present.merge_figures import layer_swap_heatmap
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore

SPECS = [MetricSpec("clean"), MetricSpec.parse("linf:8/255:pgd:2")]


def test_swaps_cover_every_group_and_every_other_ingredient(family):
    swaps = layer_swaps(family, base=1)
    assert family_groups(family) == ["stem", "layer1", "layer2", "head"]  # the test architecture: two stages
    assert len(swaps) == 12 and {s.donor for s in swaps} == {0, 2, 3}
    assert swaps[0].title(family.labels) == f"stem ← {family.labels[0]}"


def test_stored_swaps_are_drawn_with_attack_and_n(family, synthetic_images, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    evaluator = open_evaluator(family, test=synthetic_images, seed=0, batch_size=20, store=store)
    records = evaluate_swaps(evaluator, SPECS)
    assert len(records) == 13 * 2
    swaps = stored_swaps(store, family)
    assert set(swaps.base_records) == {spec.key for spec in SPECS}
    assert records[0].accuracy == swaps.base_records["clean"].accuracy

    fig = layer_swap_heatmap(swaps, family.labels)
    heatmap = fig.data[0]
    assert len(heatmap.y) == 13 and heatmap.y[0].endswith("(base, nothing swapped)")
    assert list(heatmap.x) == ["clean", "L∞ 8/255 ≤"]
    assert heatmap.z[0][0] == 100 * records[0].accuracy
    swapped = {r.family: r for r in records if r.kind == "clean"}
    layer2 = next(r for name, r in swapped.items() if name.endswith("layers-layer2=test-l2"))
    row = list(heatmap.y).index(f"layer2 ← {family.labels[2]}")
    assert heatmap.z[row][0] == 100 * layer2.accuracy and not any(math.isnan(v) for v in heatmap.z[row])
    assert "PGD-2" in fig.layout.xaxis.title.text and "n=40" in fig.layout.xaxis.title.text
    assert len(figure_info(fig)["rows"]) == 26


def test_no_swaps_in_a_store_reads_as_none(family, tmp_path):
    assert stored_swaps(ResultStore(tmp_path / "empty.sqlite"), family) is None


def test_a_metric_stored_for_few_swaps_is_left_out_and_previews_are_named(family, synthetic_images, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    evaluator = open_evaluator(family, test=synthetic_images, seed=0, batch_size=20, store=store)
    evaluate_swaps(evaluator, [MetricSpec("clean"), MetricSpec.parse("linf:8/255:pgd:10")])
    stray = layer_swaps(family, base=1)[0].merge
    from soupviz.evaluate.merges import merge_evaluator

    merge_evaluator(evaluator, stray).evaluate([0, 1, 0, 0], [MetricSpec.parse("l2:0.5:pgd:1")])
    swaps = stored_swaps(store, family)
    assert all(set(records) == {"clean", "linf:0.0313725:pgd:10:1"} for records in swaps.swap_records.values())
    fig = layer_swap_heatmap(swaps, family.labels)
    note = fig.layout.xaxis.title.text.replace("<br>", " ")  # lines wrapped to the figure's width
    assert "L∞ 8/255: by PGD-10 (preview), n=40" in note and "preview, overstates robustness" in note
    assert "up to 4.9 points above AutoAttack at L∞ 8/255" in note


def test_the_strongest_complete_attack_speaks_and_a_partial_metric_shows_as_partial(family, synthetic_images,
                                                                                    tmp_path):
    from soupviz.evaluate.merges import merge_evaluator

    store = ResultStore(tmp_path / "s.sqlite")
    evaluator = open_evaluator(family, test=synthetic_images, seed=0, batch_size=20, store=store)
    preview, stronger, l2 = (MetricSpec.parse(t) for t in ("linf:8/255:pgd:10", "linf:8/255:apgd-ce:2", "l2:0.5:pgd:2"))
    evaluate_swaps(evaluator, [MetricSpec("clean"), preview, stronger])
    evaluator.evaluate([0, 1, 0, 0], [l2])  # the base, then two swaps: a run stopped for time
    for swap in layer_swaps(family, base=1)[:2]:
        merge_evaluator(evaluator, swap.merge).evaluate([0, 1, 0, 0], [l2])
    swaps = stored_swaps(store, family)
    assert set(swaps.base_records) == {"clean", stronger.key, l2.key}  # the preview no longer speaks
    assert sum(l2.key in records for records in swaps.swap_records.values()) == 2
    fig = layer_swap_heatmap(swaps, family.labels)
    column = list(fig.data[0].x).index("L2 0.5 ≤")
    cells = [row[column] for row in fig.data[0].z]
    assert not math.isnan(cells[0]) and sum(not math.isnan(v) for v in cells[1:]) == 2  # blank, never filled in
    assert "partial: L2 0.5 PGD-2: 2 of 12 swaps measured, the rest left blank" in fig.layout.xaxis.title.text


def test_the_swap_summary_is_made_from_the_matrix_records(family, synthetic_images, tmp_path):
    from soupviz.evaluate.comparison import paired_difference
    from soupviz.present.labels import interval_text
    from soupviz.present.merge_figures import swap_summary

    store = ResultStore(tmp_path / "s.sqlite")
    evaluator = open_evaluator(family, test=synthetic_images, seed=0, batch_size=20, store=store)
    evaluate_swaps(evaluator, SPECS)
    swaps = stored_swaps(store, family)
    lines = swap_summary(swaps, family.labels)
    assert len(lines) == 3 * 2  # every other ingredient as donor, clean and L∞
    nominal = [(s.group, swaps.swap_records[(s.group, s.donor)]["clean"]) for s in swaps.swaps if s.donor == 0]
    group, low = min(nominal, key=lambda c: c[1].accuracy)
    below = sum(paired_difference(r, swaps.base_records["clean"]).verdict == "b better" for _, r in nominal)
    head = f"One group from {family.labels[0]}, clean (4 of 4 groups): {interval_text(low)} ({group})"
    assert lines[0].startswith(head)
    assert f"the base {interval_text(swaps.base_records['clean'])}; below the base in {below}," in lines[0]
