"""Specification of soupviz.soups.weights: weight checks, the capped-simplex projection, tidy slider
weights and rebalancing, presets, the soup in a query string, and weight grids and lines."""

from __future__ import annotations

import pytest
import torch

from soupviz.errors import SoupWeightsError, WeightOutOfRangeError
from soupviz.soups.links import weights_from_query, weights_to_query
from soupviz.soups.weights import (
    bounds,
    check_weights,
    grid_weights,
    interpolation_line,
    is_extrapolated,
    line_weights,
    margin_for,
    nearest_soup,
    presets,
    project_weights,
    rebalance,
    simplex_grid,
    tidy,
    uniform,
    weights_text,
)

F64 = torch.float64


@pytest.mark.parametrize(
    ("weights", "options", "message"),
    [
        ([0.5, 0.5], {}, "shape"),
        ([0.5, float("nan"), 0.5], {}, "NaN"),
        ([0.0, 0.0, 0.0], {}, "all zero"),
        ([0.5, 0.2, 0.2], {}, "sum to 0.9"),
        ([1.2, -0.2, 0.0], {}, "allow extrapolation"),
        ([1.6, -0.6, 0.0], {"extrapolate": True}, r"outside \[-0.4, 1.4\]"),
        ([1.0, -1.0, 0.0], {"normalise": True}, "cannot be normalised"),
        ([[1.0, 0.0, 0.0], [0.5, 0.4, 0.0]], {}, "of soup 1"),
    ],
)
def test_check_weights_explains_each_weight_vector_that_is_not_a_soup(weights, options, message):
    with pytest.raises(SoupWeightsError, match=message):
        check_weights(weights, 3, **options)


def test_a_weight_out_of_range_is_its_own_error_type():
    with pytest.raises(WeightOutOfRangeError, match="allow extrapolation"):
        check_weights([1.2, -0.2, 0.0], 3)
    with pytest.raises(SoupWeightsError) as raised:
        check_weights([0.5, 0.2, 0.2], 3)
    assert not isinstance(raised.value, WeightOutOfRangeError)


def test_check_weights_accepts_soups_and_normalises_on_request():
    halves = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    assert torch.equal(check_weights([2.0, 1.0, 1.0], 3, normalise=True), halves)
    assert check_weights([1.4, -0.4, 0.0], 3, extrapolate=True).dtype == torch.float64
    assert check_weights([1.8, -0.8], 2, extrapolate=True, margin=0.8).shape == (2,)
    assert check_weights(torch.eye(3), 3).shape == (3, 3)


def test_projection_onto_the_capped_simplex():
    assert torch.allclose(
        project_weights(torch.tensor([0.5, 0.5, 0.5]), 0, 1), torch.full((3,), 1 / 3, dtype=F64)
    )
    assert torch.allclose(
        project_weights(torch.tensor([2.0, 0.0, 0.0]), 0, 1), torch.tensor([1.0, 0, 0], dtype=F64)
    )
    assert torch.allclose(
        project_weights(torch.tensor([3.0, 0.0, 0.0]), -0.4, 1.4),
        torch.tensor([1.4, -0.2, -0.2], dtype=F64),
    )
    v = torch.tensor([0.9, -0.7, 0.3, 0.6], dtype=F64)
    w = project_weights(v, 0, 1)
    assert w.sum() == pytest.approx(1.0) and w.min() >= 0
    torch.manual_seed(0)
    feasible = torch.distributions.Dirichlet(torch.ones(4)).sample((500,)).double()
    assert torch.all((w - v).norm() <= (feasible - v).norm(dim=1) + 1e-9)


def test_projection_meets_any_total_within_the_bounds():
    w = project_weights([0.9, 0.1, 0.0], 0.0, 1.0, total=0.5)
    torch.testing.assert_close(w, torch.tensor([0.5, 0.0, 0.0], dtype=F64))  # clip(v - 0.4)
    w = project_weights([2.0, -3.0], -0.4, 1.4, total=0.6)
    assert w.sum() == pytest.approx(0.6) and w.min() >= -0.4 - 1e-12 and w.max() <= 1.4 + 1e-12


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


def test_nearest_soup_brings_extrapolated_weights_back_onto_the_simplex() -> None:
    weights = nearest_soup([1.3, -0.3, 0.0])
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1)
    assert weights == [1.0, 0.0, 0.0]
    assert nearest_soup([0.2, 0.3, 0.5]) == [0.2, 0.3, 0.5]


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
    ("0.5,0.5", "holds 2 weights .* this family has 4"),
    ("a,b,c,d", "not a number"),
    ("nan,1,0,0", "not a finite number"),
    ("0,0,0,0", "sum to 0"),
    ("3,-2,0,0", "outside"),
])
def test_a_bad_query_string_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SoupWeightsError, match=message):
        weights_from_query(text, 4)


def test_is_extrapolated() -> None:
    assert is_extrapolated([1.2, -0.2]) and not is_extrapolated([0.0, 1.0])


def test_margin_for_picks_the_smallest_offered_margin_that_holds_the_soup() -> None:
    margins = (0.2, 0.4, 0.6, 1.0)
    assert margin_for([1.3, -0.3], margins) == 0.4 and margin_for([1.2, -0.2], margins) == 0.2
    assert margin_for([-0.5, 1.5], margins) == 0.6 and margin_for([3.0, -2.0], margins) == 1.0


def test_paper_grids_have_21_and_480_soups():
    three = simplex_grid(3, 0.2)
    four = simplex_grid(4, 0.2, margin=0.4)
    assert three.shape == (21, 3) and four.shape == (480, 4)
    for grid in (three, four):
        torch.testing.assert_close(grid.sum(1), torch.ones(len(grid), dtype=torch.float64))
        units = grid / 0.2
        assert torch.allclose(units, units.round(), atol=1e-9)
    assert four.min() == -0.4 and four.max() == 1.4 and three.min() == 0.0
    assert len(torch.unique(four, dim=0)) == 480
    for i in range(3):  # the ingredients themselves are exact grid points
        assert (three == torch.eye(3)[i].double()).all(1).any()


def test_grid_subset_keeps_other_ingredients_at_zero():
    grid = simplex_grid(4, 0.25, subset=[0, 2])
    assert grid.shape == (5, 4)
    assert (grid[:, [1, 3]] == 0).all()
    assert simplex_grid(3, 0.5, subset=[1]).tolist() == [[0.0, 1.0, 0.0]]


@pytest.mark.parametrize(("step", "margin"), [(0.3, 0.0), (0.2, 0.3), (0.0, 0.0)])
def test_grid_refuses_steps_that_do_not_divide_one_or_the_margin(step, margin):
    with pytest.raises(SoupWeightsError, match="step"):
        simplex_grid(3, step, margin=margin)


def test_grid_refuses_huge_grids():
    with pytest.raises(SoupWeightsError, match="coarser"):
        simplex_grid(10, 0.01, max_points=1000)


def test_interpolation_line_runs_from_j_to_i_with_exact_ends():
    line = interpolation_line(3, 0, 2, points=11)
    assert torch.equal(line[0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert torch.equal(line[-1], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    wide = interpolation_line(2, 0, 1, points=10, margin=0.4)
    assert wide[0, 0] == pytest.approx(-0.4) and wide[-1, 0] == pytest.approx(1.4)
    assert (wide[:, 0] == 0).any() and (wide[:, 0] == 1).any()
    with pytest.raises(SoupWeightsError):
        interpolation_line(3, 1, 1, points=5)


def test_grid_weights_are_tidy_lists_of_the_grid():
    weights = grid_weights(4, 0.5, subset=[0, 1, 2])
    assert weights == [tidy(row.tolist()) for row in simplex_grid(4, 0.5, subset=[0, 1, 2])]
    assert [0.5, 0.5, 0.0, 0.0] in weights and len(weights) == 6


def test_line_weights_step_along_the_pair_with_the_margin():
    line = line_weights(3, 0, 1, margin=0.2, step=0.1)
    assert line.shape == (15, 3)
    assert line[0, 0] == pytest.approx(-0.2) and line[-1, 0] == pytest.approx(1.2)
    torch.testing.assert_close(line.sum(1), torch.ones(15, dtype=F64))


def test_weights_text_is_the_form_records_tables_and_files_share():
    assert weights_text([0.2, 0.8, 0.0, 0.0]) == "0.2 0.8 0 0"
    assert weights_text(torch.tensor([1.4, -0.4], dtype=torch.float64)) == "1.4 -0.4"
    assert weights_text([1 / 3, 2 / 3]) == "0.333333 0.666667"
