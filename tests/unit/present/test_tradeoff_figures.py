"""What the trade-off shows, decided from records before any drawing (`tradeoff_data`): pairs and
fronts per group, named points, the current soup, titles naming attack and n, and the CSV rows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from soupviz.errors import SoupvizError
from soupviz.present.tradeoff_figures import BARS_ON_ALL_UP_TO, tradeoff_data
from soupviz.soups.weights import grid_weights
from tests.unit.present.test_soup_figures import CLEAN, LABELS, LINF, measured, one_hot, record

PREVIEW = measured("linf::pgd:10")
GRID = [one_hot(0), one_hot(1), [0.5, 0.5, 0, 0], [0.8, 0.2, 0, 0]]


def grid_records(robust=LINF, n=100):
    return ([record(w, CLEAN, c, n=n) for w, c in zip(GRID, [90, 50, 75, 70], strict=True)]
            + [record(w, robust, r, n=n) for w, r in zip(GRID, [0, 45, 30, 10], strict=True)])


def test_rows_and_titles_carry_each_metrics_attack_and_image_count():
    data = tradeoff_data(grid_records(n=250), LINF[0], labels=LABELS)
    assert [(row["soup"], row["n"]) for row in data.rows] == [
        ("nominal", 250), ("L∞ 8/255", 250), ("0.5·nominal + 0.5·L∞ 8/255", 250), ("0.8·nominal + 0.2·L∞ 8/255", 250)]
    assert {row["y_method"] for row in data.rows} == {LINF[2].removesuffix(" (upper bound on robust accuracy)")}
    assert "APGD-CE-20" in data.y_title and "upper bound" in data.y_title and "n=250" in data.y_title
    assert data.x_title == "Clean accuracy (%), n=250"
    assert data.metric == "clean vs L∞ 8/255 APGD-CE-20" and data.family == "fam"


def test_a_preview_axis_says_it_overstates_robustness():
    assert "PGD-10 (preview, overstates robustness)" in tradeoff_data(grid_records(PREVIEW), PREVIEW[0]).y_title
    assert "preview" not in tradeoff_data(grid_records(), LINF[0]).y_title


def test_ingredients_are_named_before_baselines_and_the_current_soup_is_found_by_its_weights():
    sat = [record([1.0], m, c, family="fam/baselines/sat") for m, c in ((CLEAN, 60), (LINF, 40))]
    other = [replace(record([1.0], m, c, family="fam/baselines/x"), ingredients=["x"]) for m, c in ((CLEAN, 55),)]
    data = tradeoff_data(grid_records(), LINF[0], current=GRID[2], labels=LABELS, baselines=sat + other,
                         baseline_labels={"fam/baselines/sat": "SAT"})
    assert [(p.name, p.baseline) for p in data.named] == [("nominal", False), ("L∞ 8/255", False), ("SAT", True)]
    assert [r.accuracy for r in data.current] == [0.75, 0.30] and data.weights == GRID[2]
    assert [row["group"] for row in data.rows] == ["soups"] * 4 + ["baselines"]
    assert tradeoff_data(grid_records(), LINF[0], current=[0.1, 0.9, 0, 0]).current is None


def test_each_group_has_its_own_front_and_a_large_group_bars_only_its_front():
    ensembles = [record(w, CLEAN, 60) for w in GRID[2:]] + [record(w, LINF, 20) for w in GRID[2:]]
    small = tradeoff_data(grid_records(), LINF[0], ensembles=ensembles)
    assert [(g.key, g.front) for g in small.groups] == [("soups", [1, 2, 0]), ("ensembles", [0, 1])]
    assert small.groups[0].barred == {0, 1, 2, 3} and "Pareto fronts only" not in small.x_title
    grid = grid_weights(4, 0.1)
    assert len(grid) > BARS_ON_ALL_UP_TO
    many = [record(w, CLEAN, 40 + round(50 * w[0])) for w in grid]
    many += [record(w, LINF, 50 - round(40 * w[0]) - round(10 * w[3])) for w in grid]
    large = tradeoff_data(many, LINF[0]).groups[0]
    assert large.barred == set(large.front) and 0 < len(large.front) < len(grid)
    assert "Pareto fronts only" in tradeoff_data(many, LINF[0]).x_title


def test_soups_without_both_metrics_are_refused():
    with pytest.raises(SoupvizError, match="No soup has both 'clean' and"):
        tradeoff_data([record(one_hot(0)), record(one_hot(1), LINF)], LINF[0])
    with pytest.raises(SoupvizError, match="evaluate it first"):
        tradeoff_data([record(one_hot(0))], LINF[0])
