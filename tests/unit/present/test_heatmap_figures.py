"""What a heatmap shows, decided from records before any drawing (`heatmap_data`): its cells,
soups then baselines, column names with the '≤' and attack where needed, and the footnote."""

from __future__ import annotations

import pytest

from soupviz.errors import SoupvizError
from soupviz.present.heatmap_figures import FOOTNOTE_CHARS, draw_heatmap, heatmap_data
from soupviz.present.labels import wrapped
from soupviz.results.records import corruption_mean
from tests.unit.present.test_soup_figures import CLEAN, LABELS, LINF, NAMES, measured, one_hot, record

PREVIEW = measured("linf::pgd:10")


def test_cells_are_the_records_and_blank_where_a_soup_was_not_evaluated():
    soups = [("nominal", one_hot(0)), ("half", [0.5, 0.5, 0, 0])]
    records = [record(one_hot(0), CLEAN, 90), record(one_hot(0), LINF, 5), record([0.5, 0.5, 0, 0], CLEAN, 70)]
    data = heatmap_data(records, soups=soups, labels=LABELS)
    assert data.columns == ["clean", "L∞ 8/255 ≤"]
    assert [(row.name, row.cells) for row in data.table] == [
        ("nominal", [records[0], records[1]]), ("half", [records[2], None])]
    assert [(row["soup"], row["metric"]) for row in data.rows] == [
        ("nominal", "clean"), ("nominal", "L∞ 8/255"), ("half", "clean")]
    assert "L∞ 8/255: by APGD-CE-20, n=100" in data.footnote and "clean: n=100" in data.footnote


def test_two_attacks_on_one_threat_are_two_columns_named_by_their_attack_and_a_preview_is_flagged():
    records = [record(one_hot(0), LINF, 5, n=500), record(one_hot(0), PREVIEW, 9, n=200)]
    data = heatmap_data(records, labels=LABELS)
    assert data.columns == ["L∞ 8/255 (APGD-CE-20) ≤", "L∞ 8/255 (PGD-10) ≤"]
    assert "by PGD-10 (preview), n=200" in data.footnote and "by APGD-CE-20, n=500" in data.footnote
    assert data.metric == "L∞ 8/255 APGD-CE-20 L∞ 8/255 PGD-10"


def test_baselines_follow_the_soups_named_by_label_or_checkpoint():
    sat = record([1.0], CLEAN, 60, family="fam/baselines/sat")
    data = heatmap_data([record(one_hot(0))], labels=LABELS, baselines=[sat],
                        baseline_labels={"fam/baselines/sat": "SAT"})
    assert [(row.name, row.labels) for row in data.table] == [("nominal", LABELS), ("SAT (baseline)", None)]
    assert data.table[1].cells == [sat]
    unnamed = heatmap_data([record(one_hot(0))], baselines=[sat]).table[1].name
    assert unnamed == "nominal (baseline)"  # the checkpoint's own (ingredient) name


def test_an_empty_heatmap_is_refused():
    with pytest.raises(SoupvizError, match="No results to show in a heatmap"):
        heatmap_data([])


def test_a_transfer_column_names_its_source_by_label_and_a_corruption_mean_column_beside_it_stays():
    transfer = measured("linf::apgd-ce:20@" + NAMES[2])
    fog = [record(one_hot(0), measured(f"{name}:3"), 70) for name in ("fog", "gaussian_noise")]
    data = heatmap_data([record(one_hot(0), transfer, 40), corruption_mean(fog)], labels=LABELS)
    assert data.columns[0] == f"L∞ 8/255 transfer from {LABELS[2]} ≤" and NAMES[2] not in data.columns[0]
    assert data.columns[1] == "corruption mean"
    assert heatmap_data([record(one_hot(0), transfer, 40)]).columns == [f"L∞ 8/255 transfer from {NAMES[2]} ≤"]


def test_a_transfer_cells_hover_names_its_source_by_label_though_the_stored_method_names_the_checkpoint():
    transfer = record(one_hot(0), measured("linf::apgd-ce:20@" + NAMES[2]), 40)
    assert f"transferred from the {NAMES[2]} ingredient" in transfer.method
    hover = draw_heatmap(heatmap_data([transfer], labels=LABELS)).data[0].hovertext[0][0]
    assert f"L∞ 8/255 transfer from {LABELS[2]}: 40.0%" in hover
    assert f"APGD-CE-20 transferred from the {LABELS[2]} ingredient, L∞ 8/255 (upper bound" in hover
    assert f" {NAMES[2]} " not in hover.replace("<br>", " ")
    unnamed = draw_heatmap(heatmap_data([transfer])).data[0].hovertext[0][0]  # no labels: the checkpoint's name
    assert f"transferred from the {NAMES[2]} ingredient" in unnamed


def test_a_transfer_columns_footnote_leaves_its_source_to_the_column_name():
    columns = [record(one_hot(0), measured(f"linf::apgd-ce:20@{name}"), 40) for name in NAMES[1:3]]
    data = heatmap_data(columns, labels=LABELS)
    assert f"L∞ 8/255 transfer from {LABELS[1]} ≤" in data.columns
    assert "by APGD-CE-20 crafted on the column's source, n=100" in data.footnote
    assert not any(f"the {name} ingredient" in data.footnote for name in NAMES)


def test_long_transfer_columns_keep_every_row_labelled_and_the_footnote_within_the_figure():
    sources = [measured(f"linf::apgd-ce:20@{name}") for name in NAMES] + [measured(f"l2::apgd-ce:20@{name}")
                                                                          for name in NAMES]
    soups = [(f"soup {k}", [k / 8, 1 - k / 8, 0, 0]) for k in range(8)]
    records = [record(w, spec, 40) for _, w in soups for spec in sources]
    few = draw_heatmap(heatmap_data(records[: len(sources)], soups[:1], labels=LABELS))
    fig = draw_heatmap(heatmap_data(records, soups, labels=LABELS))
    assert fig.layout.yaxis.dtick == 1  # Plotly drops every other category label when rows are tight
    assert fig.layout.height - few.layout.height == pytest.approx(7 * 2.2 * 13, abs=1)  # room per row
    lines = fig.layout.xaxis.title.text.split("<br>")
    assert max(map(len, lines)) <= FOOTNOTE_CHARS < len(heatmap_data(records, soups, labels=LABELS).footnote)
    assert " ".join(lines).replace(",  ", ", ") == heatmap_data(records, soups, labels=LABELS).footnote.replace(
        "<br>", " ")


def test_wrapping_breaks_after_commas_then_spaces_and_keeps_every_word():
    assert wrapped("a, b, c<br>short", 5) == "a, b,<br>c<br>short"
    assert wrapped("one two three", 8) == "one two<br>three"
    assert wrapped("unbreakable-word, x", 4) == "unbreakable-word,<br>x"
