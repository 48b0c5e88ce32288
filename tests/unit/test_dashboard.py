"""Page-side dashboard logic: uploads, specs,
heatmap rows, tables with intervals, and clicked ternary points back to weights."""

from __future__ import annotations

import pytest

from soupviz.dashboard import ingredient_titles, row_soups
from soupviz.evaluate.comparison import paired_difference, verdict_label
from soupviz.evaluate.metrics import MetricSpec
from soupviz.report import ingredient_table, records_table, soup_vs_ensemble
from soupviz.settings import EvalSettings
from soupviz.weights import grid_weights

SETTINGS = EvalSettings(images=40, steps=1, batch_size=20)
OLD_CARD_FIELDS = {"weights": None, "ingredients": None, "n": 1000, "correct": 0, "seed": None, "batchnorm": "mixed"}


def test_heatmap_rows_name_each_soup_once(family) -> None:
    rows = row_soups(["ingredients", "current soup", "presets", "grid"], family, [1.0, 0.0, 0.0, 0.0], grid_step=0.5)
    names = [name for name, _ in rows]
    assert names[:4] == family.labels  # the current soup is the first ingredient: named after it, once
    assert "uniform soup" in names and len(rows) == len({tuple(w) for _, w in rows})
    assert len(rows) == 4 + 1 + 3 + (10 - 4 - 3)  # the grid adds its 10 soups minus those already named


def test_tables_show_accuracy_with_intervals(evaluator, family) -> None:
    specs = [MetricSpec("clean"), MetricSpec("attack", threat="l2", attack="pgd", steps=1)]
    records = evaluator.evaluate(evaluator.ingredient_weights(), specs)
    rows, methods = ingredient_table(family, records)
    assert [r["ingredient"] for r in rows] == family.labels
    record = records[0]
    assert rows[0]["clean"] == f"{100 * record.accuracy:.1f}% [{100 * record.ci_low:.1f}, {100 * record.ci_high:.1f}]"
    assert "L2 0.5 ≤" in rows[0]
    assert methods == [f"on {record.images} (seed 0): clean accuracy; PGD-1 L2 0.5"]
    table = records_table(records, [("first", [1, 0, 0, 0]), ("missing", [0.5, 0.5, 0, 0])])
    assert table[0]["clean"] == rows[0]["clean"] and table[1]["clean"] == "—"


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
