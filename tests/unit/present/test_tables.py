"""What people read about records (soupviz.present.labels and soupviz.present.tables): intervals, metric names, the
upper-bound note and tables, all made from the records' data; tables of ingredients (also from
their cards), soups against ensembles, and the titles of the weight sliders."""

from __future__ import annotations

from dataclasses import replace

import pytest

from soupviz.evaluate.comparison import paired_difference, verdict_label
from soupviz.evaluate.methods import attack_label, method_label
from soupviz.insight.adapt import Outcome
from soupviz.present.labels import (
    BOUND_LEGEND,
    UPPER_BOUND_NOTE,
    bounded,
    ingredient_titles,
    interval,
    interval_text,
    method_text,
    metric_name,
    record_choices,
    stored_grid_caption,
)
from soupviz.present.tables import (
    ingredient_caption,
    ingredient_table,
    markdown_table,
    outcome_table,
    soup_vs_ensemble,
    text_table,
)
from soupviz.results.grids import StoredGrid
from soupviz.results.metric_specs import MetricSpec, wilson_interval
from soupviz.results.records import Record
from soupviz.soups.weights import grid_weights

NAMES = ["a", "b"]
OLD_CARD_FIELDS = {"weights": None, "ingredients": None, "n": 1000, "correct": 0, "seed": None, "batchnorm": "mixed"}


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


def test_text_table_names_attacks_averages_corruptions_and_says_how_each_was_measured() -> None:
    records = [result("clean", correct=90), result("l2::pgd:3", correct=40), result("linf::pgd:3", correct=35),
               result("fog:1", correct=60), result("snow:1", correct=40)]
    text = text_table(records, NAMES)
    header, first = text.splitlines()[:2]
    assert header.split("  ")[0] == "soup (a, b)"
    for column in ("clean", "L2 0.5 PGD-3", "L∞ 8/255 PGD-3", "corruption mean"):
        assert column in header
    assert "Fog" not in header and first.startswith("1 0 ")
    assert "90.0% [" in first and "50.0% [" in first  # the mean of 60% and 40%
    assert f"L2 0.5 PGD-3: PGD-3 L2 0.5 ({UPPER_BOUND_NOTE})" in text
    assert "corruption mean: mean over 2 corruptions × severity 1" in text
    assert "not shown" not in text
    assert text.endswith("(100 images of test; BatchNorm: mixed)")


def test_text_table_prints_the_record_that_speaks_and_marks_the_preview() -> None:
    strong = result("l2::autoattack-apgd:3", correct=30)
    records = [result("clean", correct=90), result("l2::pgd:10", correct=45), result("l2::pgd-dlr:3", correct=40),
               strong, result("linf::pgd:10", weights=(0.0, 1.0), correct=20)]
    text = text_table(records, NAMES)
    header, first, second = text.splitlines()[:3]
    assert metric_name(strong) in header and "L2 0.5 PGD-DLR-3" not in header and "L2 0.5 PGD-10" not in header
    assert "30.0% [" in first and "45.0% [" not in first and "40.0% [" not in first
    assert "L∞ 8/255 PGD-10 (preview)" in header and "20.0% [" in second  # the preview speaks: nothing stronger
    assert "speaks: L2 0.5 PGD-10 (preview), L2 0.5 PGD-DLR-3" in text
    assert f"{metric_name(strong)}: {strong.method}" in text
    mixed = text_table([result("clean", correct=90), replace(strong, images="1000 images of test")], NAMES)
    assert "clean: " in mixed and f"{strong.method} ({UPPER_BOUND_NOTE}) on 1000 images of test" in mixed
    assert mixed.endswith("(100 images of test; 1000 images of test; BatchNorm: mixed)")


def test_markdown_tables_keep_column_order_and_put_notes_below() -> None:
    table = markdown_table([{"x": 1, "y": "a"}, {"x": 2, "y": "b"}], [BOUND_LEGEND])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| 1 | a |", "| 2 | b |", "", BOUND_LEGEND]


@pytest.mark.parametrize("text", ["linf::pgd:7", "clean", "fog:2"])
def test_texts_follow_the_spec_not_a_stored_method(text: str) -> None:
    record = result(text)
    relabelled = replace(record, method="something else")
    assert metric_name(relabelled) == metric_name(record)


def test_the_home_caption_says_what_the_shipped_numbers_come_from_not_the_sidebar_budget() -> None:
    from soupviz.checkpoints.families import load_family
    from soupviz.serve.settings import FAMILIES_DIR

    family = load_family(next(p for p in sorted(FAMILIES_DIR.iterdir()) if any(p.glob("*.safetensors"))))
    _, methods = ingredient_table(family)
    caption = ingredient_caption(methods, False, images=200, attacks="PGD-10")
    for metric in (m for i in family.ingredients for m in i.card.metrics if m.get("kind") in ("clean", "attack")):
        assert f"{metric['images']} (seed {metric['seed']})" in caption
        assert Record.from_dict(metric).method in caption
    assert caption.startswith("From the checkpoint cards: measured on ")
    assert "The sidebar's budget (200 images, PGD-10) applies only to what you measure here" in caption
    measured = ingredient_caption(["on 40 images of x (seed 0): clean accuracy"], True, 40, "PGD-1")
    assert measured.startswith("Measured here on 40 images of x (seed 0): clean accuracy.")
    assert "sidebar" not in measured


def test_the_parent_column_names_a_family_member_by_its_label_and_an_outsider_by_its_name(family) -> None:
    family.ingredients[1].card.parent = {"name": family.names[0], "sha256": "x"}
    family.ingredients[2].card.parent = {"name": "somewhere-else", "sha256": "y"}
    family.ingredients[3].card.parent = None
    rows, _ = ingredient_table(family)
    assert [row["parent"] for row in rows[1:]] == [family.labels[0], "somewhere-else", "—"]
    assert family.labels[0] != family.names[0]


def test_tables_show_accuracy_with_intervals(evaluator, family) -> None:
    specs = [MetricSpec("clean"), MetricSpec("attack", threat="l2", attack="pgd", steps=1)]
    records = evaluator.evaluate(evaluator.ingredient_weights(), specs)
    rows, methods = ingredient_table(family, records)
    assert [r["ingredient"] for r in rows] == family.labels
    record = records[0]
    assert rows[0]["clean"] == f"{100 * record.accuracy:.1f}% [{100 * record.ci_low:.1f}, {100 * record.ci_high:.1f}]"
    assert "L2 0.5 ≤" in rows[0]
    assert methods == [f"on {record.images} (seed 0): clean accuracy; PGD-1 L2 0.5"]


def test_cards_metrics_fill_the_table_when_nothing_is_measured(family) -> None:
    family.ingredients[0].card.metrics = [{"metric": "clean", "spec": "clean", "accuracy": 0.9, "ci_low": 0.85,
                                           "ci_high": 0.94, "method": "clean accuracy", "images": "1000 images",
                                           **OLD_CARD_FIELDS}]
    rows, methods = ingredient_table(family)
    assert rows[0]["clean"] == "90.0% [85.0, 94.0]" and rows[1]["clean"] == "—"
    assert methods == ["on 1000 images: clean accuracy"]


def test_two_attacks_on_one_threat_get_a_column_each(family) -> None:
    def card_metric(spec, method, accuracy):  # the form cards were written in before specs were data
        return {"metric": "L∞ 8/255", "spec": spec, "upper_bound": True, "accuracy": accuracy,
                "ci_low": accuracy - 0.03, "ci_high": accuracy + 0.03,
                "method": f"{method} L∞ 8/255 (upper bound on robust accuracy)",
                "images": "1000 images", **OLD_CARD_FIELDS}

    pgd, apgd = "linf:0.0313725:pgd:20:1", "linf:0.0313725:apgd-t:40:1"
    family.ingredients[1].card.metrics = [card_metric(pgd, "PGD-20", 0.36), card_metric(apgd, "APGD-T-40", 0.32)]
    family.ingredients[2].card.metrics = [card_metric(pgd, "PGD-20", 0.27)]
    rows, methods = ingredient_table(family)
    assert rows[1]["PGD-20 L∞ 8/255 ≤"] == "36.0% [33.0, 39.0]"
    assert rows[1]["APGD-T-40 L∞ 8/255 ≤"] == "32.0% [29.0, 35.0]"
    assert rows[2]["PGD-20 L∞ 8/255 ≤"] == "27.0% [24.0, 30.0]" and rows[2]["APGD-T-40 L∞ 8/255 ≤"] == "—"
    assert methods == ["on 1000 images: PGD-20 L∞ 8/255; APGD-T-40 L∞ 8/255"]


def test_corruption_columns_collapse_into_their_mean(family) -> None:
    family.ingredients[1].card.metrics = [
        {"metric": f"{name} 3", "spec": f"{name}:3", "kind": "corruption", "accuracy": acc, "ci_low": acc - 0.1,
         "ci_high": acc + 0.1, "method": f"{name} at severity 3", "images": "1000 images", **OLD_CARD_FIELDS}
        for name, acc in (("fog", 0.6), ("snow", 0.4))]
    family.ingredients[1].card.metrics.append({"metric": "corruption mean", "spec": "corruption-mean",
                                              "kind": "corruption-mean", "accuracy": 0.1, "ci_low": 0.0,
                                              "ci_high": 0.2})  # a stale stored mean is recomputed
    rows, methods = ingredient_table(family)
    assert "fog 3" not in rows[1] and rows[1]["corruption mean"] == "50.0% [40.0, 60.0]"
    assert rows[0]["corruption mean"] == "—"
    assert any("mean over 2 corruptions × severity 3" in m for m in methods)


def test_soup_against_ensemble_gives_a_verdict_only_beyond_the_noise(evaluator, family) -> None:
    from soupviz.evaluate.ensembles import EnsembleEvaluator

    weights = grid_weights(4, 0.5)
    soups = evaluator.evaluate(weights, [MetricSpec("clean")])
    ensembles = EnsembleEvaluator(evaluator, "logits").evaluate(weights, [MetricSpec("clean")])
    rows = soup_vs_ensemble(soups, ensembles, family.labels)
    assert len(rows) == len(weights)
    for row, soup, ensemble in zip(rows, soups, ensembles, strict=True):
        paired = paired_difference(soup, ensemble)
        low, high = (float(v) for v in row["paired 95% CI"].strip("[]").split(", "))
        assert (low, high) == pytest.approx((100 * paired.ci_low, 100 * paired.ci_high), abs=0.051)
        assert row["verdict"] == verdict_label(paired.verdict, "soup", "ensemble")
        winner = (low > 0 or high < 0) and paired.p_value < 0.05
        assert row["verdict"].endswith(" better") == winner
    one_hot = [row for row in rows if row["soup"] in family.labels]
    assert all(row["soup − ensemble (points)"] == 0 for row in one_hot)


def test_sliders_name_the_checkpoint_only_when_it_says_more_than_the_label(family) -> None:
    pairs = zip(family.labels, family.names, strict=True)
    assert ingredient_titles(family) == [f"{label} · {name}" for label, name in pairs]
    for ingredient, name in zip(family.ingredients, ["nominal", "linf", "L2 0.5", "l1_seed1"], strict=True):
        ingredient.card.name = name
    assert ingredient_titles(family) == ["nominal", "L∞ 8/255", "L2 0.5", "L1 12 · l1_seed1"]


def test_few_shot_outcomes_read_as_rows_with_the_soup_named_and_both_accuracies() -> None:
    outcome = Outcome("grid-search soup", "selected", [0.6, 0.4], "fog 3", 5, 10, 0.8, 100, 70, 0.7, 0.6, 0.78, 0,
                      "grid", batchnorm="mixed statistics")
    assert outcome_table([outcome], NAMES) == [{
        "shift": "fog 3", "candidate": "grid-search soup", "soup": "0.6·a + 0.4·b",
        "held-out accuracy": interval_text(outcome), "n held out": 100, "selection accuracy": "80.0%",
        "n selection": 10, "BatchNorm": "mixed statistics"}]
    assert interval_text(outcome) == "70.0% [60.0, 78.0]"


def test_a_stored_grid_note_names_the_attack_only_for_robust_accuracy() -> None:
    clean, robust = result("clean"), result("linf::apgd-ce:40")
    assert stored_grid_caption(StoredGrid([clean], 9, 10)) == "from the precomputed store: 9 of 10 soups, 100 images"
    assert stored_grid_caption(StoredGrid([robust], 1, 2)) == (
        f"from the precomputed store: 1 of 2 soups, {attack_label(robust.measure)} on 100 images")
