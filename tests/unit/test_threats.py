"""The threat vocabulary: budgets read from text and written back, labels, clear errors."""

from __future__ import annotations

import pytest

from soupviz.errors import SoupvizError
from soupviz.threats import (
    DEFAULT_BUDGETS,
    THREATS,
    check_threat,
    exact_budget,
    format_budget,
    format_budgets,
    parse_budget,
    parse_budgets,
    parse_number,
    threat_label,
)


@pytest.mark.parametrize(("threat", "text", "value"), [
    ("linf", "8/255", 8 / 255), ("linf", "4/255", 4 / 255), ("linf", "0.03", 0.03),
    ("l2", "0.5", 0.5), ("l2", "0.25", 0.25), ("l1", "12", 12.0), ("l1", "6", 6.0),
])
def test_budget_text_round_trips_for_every_threat(threat: str, text: str, value: float) -> None:
    assert parse_budget(text, threat) == pytest.approx(value, rel=1e-12)
    assert format_budget(threat, parse_budget(text, threat)) == text


def test_default_budgets_are_labelled_as_papers_write_them() -> None:
    assert [threat_label(t, DEFAULT_BUDGETS[t]) for t in THREATS] == ["L∞ 8/255", "L2 0.5", "L1 12"]
    assert threat_label("linf") == "L∞"
    assert threat_label("sat") == "sat"
    assert format_budget("l2", 8 / 255) != "8/255"  # fractions of 255 are an L∞ convention


def test_budget_lists_parse_sorted_without_repeats_and_format_back() -> None:
    assert parse_budgets("8/255, 2/255 4/255 8/255", "linf") == [2 / 255, 4 / 255, 8 / 255]
    assert format_budgets("linf", parse_budgets("8/255 2/255", "linf")) == "2/255, 8/255"
    assert parse_budgets("", "l2") == []


@pytest.mark.parametrize(("text", "match"), [("half", "L2 budget 'half' is not a number"),
                                               ("1/0", "not a number"), ("0", "must be positive"),
                                               ("-0.5", "must be positive"), ("nan", "not a number")])
def test_bad_budgets_raise_one_clear_error(text: str, match: str) -> None:
    with pytest.raises(SoupvizError, match=match):
        parse_budget(text, "l2")


def test_numbers_accept_decimals_and_fractions_only() -> None:
    assert parse_number(" 3/4 ") == 0.75
    assert parse_number("-2") == -2.0
    with pytest.raises(SoupvizError, match="not a number"):
        parse_number("inf")


def test_unknown_threats_are_refused_by_name() -> None:
    assert check_threat("l1") == "l1"
    with pytest.raises(SoupvizError, match="use one of linf, l2, l1"):
        check_threat("l3")


def test_budgets_stored_with_six_digits_regain_their_fraction() -> None:
    assert exact_budget("linf", float(f"{8 / 255:.6g}")) == 8 / 255
    assert exact_budget("linf", 0.03) == 0.03
    assert exact_budget("l2", 0.5) == 0.5
