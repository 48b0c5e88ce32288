"""A shared link's soup: honoured as given, normalised with a note, or refused with one sentence
naming the weight at fault and what to do (never replaced quietly by another soup)."""

from __future__ import annotations

import pytest

from soupviz.soups.links import read_soup_link

NAMES = ["nominal", "L∞ 8/255", "L2 0.5", "L1 12"]


def test_a_link_written_by_the_explorer_is_read_back_unchanged() -> None:
    link = read_soup_link("0.5,0.5,0,0", NAMES, margin=1.0)
    assert link.weights == [0.5, 0.5, 0.0, 0.0] and not link.problem and not link.note
    assert read_soup_link("1.2,-0.2,0,0", NAMES, margin=0.4).weights == [1.2, -0.2, 0.0, 0.0]


def test_weights_not_summing_to_one_are_normalised_and_say_so() -> None:
    link = read_soup_link("2,2,0,0", NAMES, margin=1.0)
    assert link.weights == [0.5, 0.5, 0.0, 0.0]
    assert "summed to 4" in link.note and "divided by their sum" in link.note


@pytest.mark.parametrize(("text", "words"), [
    ("a,b,c,d", ["'a'", "nominal", "not a number"]),
    ("nan,1,0,0", ["'nan'", "nominal", "not a finite number"]),
    ("1,inf,0,0", ["'inf'", "L∞ 8/255", "not a finite number"]),
    ("0.5,0.5", ["holds 2 weights", "4 ingredients", "nominal, L∞ 8/255, L2 0.5, L1 12"]),
    ("1,-1,0,0", ["sum to 0"]),
    ("5,-4,0,0", ["weight 5 for nominal", "outside [-1, 2]"]),
    ("", ["holds 1 weights"]),
])
def test_a_link_that_cannot_be_honoured_names_its_fault(text: str, words: list[str]) -> None:
    link = read_soup_link(text, NAMES, margin=1.0)
    assert link.weights is None and link.given == text
    for word in words:
        assert word in link.problem
    assert "; give " in link.problem  # and says what to do
