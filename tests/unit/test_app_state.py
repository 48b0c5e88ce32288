"""The dashboard's state without Streamlit: presets, keeping slider weights on the simplex,
the soup in a query string, and the environment the app reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from soupviz.app_state import (
    Keys,
    bounds,
    default_settings,
    is_extrapolated,
    presets,
    project,
    rebalance,
    shipped_family_folder,
    tidy,
    uniform,
    weights_from_query,
    weights_to_query,
)
from soupviz.errors import SoupWeightsError


def test_tidy_rounds_to_three_decimals_and_keeps_the_sum_at_one() -> None:
    assert tidy([1 / 3, 1 / 3, 1 / 3]) == [0.334, 0.333, 0.333]
    assert sum(tidy([0.1234, 0.4567, 0.4199])) == pytest.approx(1, abs=1e-12)
    assert tidy([0.3333, 0.3333, 0.3334], keep=0)[0] == 0.333  # the residue never goes to the kept weight


def test_rebalance_keeps_the_others_in_proportion() -> None:
    assert rebalance([0.5, 0.5, 0.0], 0, 0.8) == [0.8, 0.2, 0.0]
    assert rebalance([0.2, 0.4, 0.4], 0, 0.6) == [0.6, 0.2, 0.2]


def test_rebalance_shares_equally_when_the_others_are_all_zero() -> None:
    weights = rebalance([1.0, 0.0, 0.0, 0.0], 0, 0.4)
    assert weights[0] == 0.4 and sum(weights) == pytest.approx(1) and max(weights[1:]) - min(weights[1:]) <= 0.001


def test_rebalance_stays_on_the_simplex_without_extrapolation() -> None:
    for value in (0.0, 0.37, 1.0, 1.3, -0.2):
        weights = rebalance([0.1, 0.2, 0.3, 0.4], 2, value)
        assert min(weights) >= 0 and max(weights) <= 1 and sum(weights) == pytest.approx(1, abs=1e-9)


def test_rebalance_extrapolates_along_the_pair_within_the_margin() -> None:
    low, high = bounds(True, 0.4)
    assert rebalance([0.5, 0.5, 0.0], 0, 1.3, low, high) == [1.3, -0.3, 0.0]
    weights = rebalance([0.5, 0.5, 0.0], 0, 1.4, low, high)
    assert min(weights) >= -0.4 and sum(weights) == pytest.approx(1)


def test_rebalance_limits_a_value_the_others_cannot_balance() -> None:
    assert rebalance([0.5, 0.5], 0, 1.6, *bounds(True, 0.4)) == [1.4, -0.4]


def test_project_brings_extrapolated_weights_back_onto_the_simplex() -> None:
    weights = project([1.3, -0.3, 0.0])
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1)
    assert weights == [1.0, 0.0, 0.0]
    assert project([0.2, 0.3, 0.5]) == [0.2, 0.3, 0.5]


def test_presets_name_each_ingredient_the_uniform_soup_and_the_papers_pairs() -> None:
    named = dict(presets(["none", "linf", "l2", "l1"], ["nominal", "L∞", "L2", "L1"]))
    assert named["nominal"] == [1, 0, 0, 0] and named["L1"] == [0, 0, 0, 1]
    assert named["uniform soup"] == uniform(4) == [0.25] * 4
    assert named["½ L∞ + ½ L2"] == [0, 0.5, 0.5, 0]
    assert len(named) == 4 + 1 + 3


def test_the_query_string_round_trips_a_soup() -> None:
    assert weights_to_query([0.5, 0.5, 0, 0]) == "0.5,0.5,0,0"
    assert weights_from_query("0.5,0.5,0,0", 4) == [0.5, 0.5, 0, 0]
    assert weights_from_query("1.2,-0.2,0,0", 4) == [1.2, -0.2, 0, 0]
    assert weights_from_query("2,2,0,0", 4) == [0.5, 0.5, 0, 0]  # normalised


@pytest.mark.parametrize(("text", "message"), [
    ("0.5,0.5", "has 2 weights but this family has 4"),
    ("a,b,c,d", "not numbers"),
    ("0,0,0,0", "all zero"),
    ("3,-2,0,0", "outside"),
])
def test_a_bad_query_string_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SoupWeightsError, match=message):
        weights_from_query(text, 4)


def test_is_extrapolated() -> None:
    assert is_extrapolated([1.2, -0.2]) and not is_extrapolated([0.0, 1.0])


def test_environment_overrides_the_family_and_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUPVIZ_FAMILY", str(tmp_path))
    monkeypatch.setenv("SOUPVIZ_EVAL_IMAGES", "64")
    monkeypatch.setenv("SOUPVIZ_EVAL_STEPS", "3")
    assert shipped_family_folder() == tmp_path
    settings = default_settings()
    assert (settings.images, settings.steps) == (64, 3)
    monkeypatch.setenv("SOUPVIZ_EVAL_IMAGES", "many")
    assert default_settings().images == 200


def test_slider_keys_are_distinct_per_ingredient() -> None:
    assert len({Keys.slider(i) for i in range(5)}) == 5
    assert Keys.FAMILY_SOURCE in Keys.KEPT
