"""What the budget curves show, decided from records before any drawing (`budget_data`): a panel
per threat, a line per soup and attack starting at clean accuracy, legends naming attack and n."""

from __future__ import annotations

import pytest

from soupviz.errors import SoupvizError
from soupviz.present.budget_figures import budget_data
from tests.unit.present.test_soup_figures import CLEAN, L2, LABELS, LINF, LINF4, measured, one_hot, record

PREVIEW4 = measured("linf:4/255:pgd:10")


def test_a_panel_per_threat_and_a_line_per_soup_and_attack_from_clean_accuracy_up():
    records = [record(one_hot(1), metric, correct, n=200)
               for metric, correct in ((CLEAN, 160), (LINF, 80), (LINF4, 120), (L2, 100), (PREVIEW4, 140))]
    data = budget_data(records, labels=LABELS)
    linf, l2 = data.panels
    assert (linf.threat, linf.unit, linf.axis_title) == ("linf", 255, "ε (L∞, ×1/255)")
    assert (l2.threat, l2.unit, l2.axis_title) == ("l2", 1, "ε (L2)")
    assert [line.legend for line in linf.lines] == ["L∞ 8/255 (APGD-CE-20, n=200)", "L∞ 8/255 (PGD-10, n=200)"]
    assert [line.eps for line in linf.lines] == [[0.0, 4 / 255, 8 / 255], [0.0, 4 / 255]]
    assert [[p.accuracy for p in line.points] for line in linf.lines] == [[0.8, 0.6, 0.4], [0.8, 0.7]]
    assert linf.ticks == [0.0, 4 / 255, 8 / 255] and l2.ticks == [0.0, 0.5]
    assert [(row["soup"], row["metric"], row["n"]) for row in data.rows][:3] == [
        ("L∞ 8/255", "clean", 200), ("L∞ 8/255", "L∞ 4/255", 200), ("L∞ 8/255", "L∞ 8/255", 200)]
    assert data.metric == "L∞ L2" and "200 test images per soup" in data.title


def test_each_csv_row_names_the_panel_and_budget_it_is_drawn_at_the_clean_one_too():
    records = [record(one_hot(1), metric, 50) for metric in (CLEAN, LINF, LINF4, L2)]
    rows = budget_data(records, labels=LABELS).rows
    assert [(row["metric"], row["threat"], row["eps"]) for row in rows] == [
        ("clean", "linf", 0.0), ("L∞ 4/255", "linf", 4 / 255), ("L∞ 8/255", "linf", 8 / 255),
        ("clean", "l2", 0.0), ("L2 0.5", "l2", 0.5)]
    assert list(rows[0])[:4] == ["soup", "threat", "eps", "weights"]  # the CSV's first columns


def test_named_soups_keep_their_order_and_names_and_mixed_counts_are_a_range():
    records = [record(one_hot(0), LINF, 10, n=100), record(one_hot(1), LINF, 30, n=300),
               record(one_hot(1), LINF4, 60, n=100)]
    data = budget_data(records, soups=[("robust", one_hot(1)), ("absent", [0.5, 0.5, 0, 0]), ("plain", one_hot(0))])
    assert [line.legend for line in data.panels[0].lines] == [
        "robust (APGD-CE-20, n=100 to 300)", "plain (APGD-CE-20, n=100)"]
    assert [line.eps for line in data.panels[0].lines] == [[4 / 255, 8 / 255], [8 / 255]]  # no clean record


def test_records_without_a_robust_accuracy_are_refused():
    with pytest.raises(SoupvizError, match="No robust-accuracy results"):
        budget_data([record(one_hot(0))])
