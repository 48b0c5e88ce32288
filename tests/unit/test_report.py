"""What people read about records: intervals, metric names, the upper-bound note and tables, all
made from the records' data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from soupviz.evaluate.metrics import MetricSpec, Record, method_label, wilson_interval
from soupviz.report import (
    BOUND_LEGEND,
    UPPER_BOUND_NOTE,
    bounded,
    ingredient_caption,
    ingredient_table,
    interval,
    interval_text,
    markdown_table,
    method_text,
    metric_name,
    record_choices,
    records_table,
    text_table,
)

NAMES = ["a", "b"]


def result(text: str, weights=(1.0, 0.0), correct: int = 50, n: int = 100) -> Record:
    spec = MetricSpec.parse(text)
    low, high = wilson_interval(correct, n)
    return Record(weights=list(weights), ingredients=NAMES, measure=spec, n=n, correct=correct,
                  accuracy=correct / n, ci_low=low, ci_high=high, method=method_label(spec),
                  images=f"{n} images of test", seed=0, batchnorm="mixed")


def test_intervals_read_as_percent_with_one_decimal() -> None:
    assert interval(0.703, 0.674, 0.7312) == "70.3% [67.4, 73.1]"
    assert interval(-0.05, -0.101, 0.0, unit="") == "-5.0 [-10.1, 0.0]"
    record = result("clean", correct=53)
    assert interval_text(record) == f"53.0% [{100 * record.ci_low:.1f}, {100 * record.ci_high:.1f}]"


def test_only_robust_accuracies_carry_the_upper_bound_note_and_mark() -> None:
    robust, clean = result("linf::pgd:7"), result("clean")
    assert method_text(robust) == f"PGD-7 L∞ 8/255 ({UPPER_BOUND_NOTE})"
    assert method_text(clean) == "clean accuracy"
    assert bounded("L∞ 8/255", True) == "L∞ 8/255 ≤" and bounded("clean", False) == "clean"
    assert metric_name(robust) == "L∞ 8/255 PGD-7" and metric_name(clean) == "clean"
    assert record_choices([robust, clean]) == {"L∞ 8/255 (PGD-7)": robust.spec, "clean": "clean"}


def test_records_table_has_one_row_per_soup_and_a_dash_where_nothing_was_measured() -> None:
    records = [result("clean", correct=80), result("linf::pgd:7", correct=30)]
    rows = records_table(records, [("first", [1, 0]), ("half", [0.5, 0.5])])
    assert rows == [{"soup": "first", "clean": interval_text(records[0]), "L∞ 8/255 ≤": interval_text(records[1])},
                    {"soup": "half", "clean": "—", "L∞ 8/255 ≤": "—"}]


def test_text_table_names_attacks_averages_corruptions_and_says_how_each_was_measured() -> None:
    records = [result("clean", correct=90), result("l2::pgd:3", correct=40), result("l2::pgd-dlr:3", correct=35),
               result("fog:1", correct=60), result("snow:1", correct=40)]
    text = text_table(records, NAMES)
    header, first = text.splitlines()[:2]
    assert header.split("  ")[0] == "soup (a, b)"
    for column in ("clean", "L2 0.5 PGD-3", "L2 0.5 PGD-DLR-3", "corruption mean"):
        assert column in header
    assert "Fog" not in header and first.startswith("1 0 ")
    assert "90.0% [" in first and "50.0% [" in first  # the mean of 60% and 40%
    assert f"L2 0.5 PGD-3: PGD-3 L2 0.5 ({UPPER_BOUND_NOTE})" in text
    assert "corruption mean: mean over 2 corruptions × severity 1" in text
    assert text.endswith("(100 images of test; BatchNorm: mixed)")


def test_markdown_tables_keep_column_order_and_put_notes_below() -> None:
    table = markdown_table([{"x": 1, "y": "a"}, {"x": 2, "y": "b"}], [BOUND_LEGEND])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| 1 | a |", "| 2 | b |", "", BOUND_LEGEND]


@pytest.mark.parametrize("text", ["linf::pgd:7", "clean", "fog:2"])
def test_texts_follow_the_spec_not_a_stored_method(text: str) -> None:
    record = result(text)
    relabelled = replace(record, method="something else")
    assert metric_name(relabelled) == metric_name(record)


def test_the_home_caption_says_what_the_shipped_numbers_come_from_not_the_sidebar_budget() -> None:
    from soupviz.checkpoints import load_family
    from soupviz.settings import FAMILIES_DIR

    family = load_family(next(p for p in sorted(FAMILIES_DIR.iterdir()) if any(p.glob("*.safetensors"))))
    _, methods = ingredient_table(family)
    caption = ingredient_caption(methods, False, images=200, attack="pgd", steps=10)
    for metric in (m for i in family.ingredients for m in i.card.metrics if m.get("kind") in ("clean", "attack")):
        assert f"{metric['images']} (seed {metric['seed']})" in caption
        assert Record.from_dict(metric).method in caption
    assert caption.startswith("From the checkpoint cards: measured on ")
    assert "The sidebar's budget (200 images, PGD-10) applies only to what you measure here" in caption
    measured = ingredient_caption(["on 40 images of x (seed 0): clean accuracy"], True, 40, "pgd", 1)
    assert measured.startswith("Measured here on 40 images of x (seed 0): clean accuracy.")
    assert "sidebar" not in measured
