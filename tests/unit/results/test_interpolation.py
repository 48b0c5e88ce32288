"""Interpolating a metric from stored soups: exact at a stored soup, linear between them, nothing
outside their hull, the stored soups it rests on named; leave-one-out recovers a linear metric
exactly and measures the error of a curved one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from soupviz.results.interpolation import SimplexInterpolator, leave_one_out
from soupviz.soups.weights import grid_weights
from tests.unit.results.test_store import make_record


def records_of(metric, k: int = 4, step: float = 0.25, n: int = 12) -> list:
    """A stored grid whose accuracy at soup w is metric(w)."""
    base = make_record(0, n=n)
    return [replace(base, weights=[float(v) for v in w], accuracy=metric(list(w)), method="PGD-10 L∞ 8/255")
            for w in grid_weights(k, step)]


def linear(w: list[float]) -> float:
    return 0.1 + 0.2 * w[0] + 0.5 * w[1] + 0.3 * w[3]


def test_a_stored_soup_comes_back_as_stored_from_one_soup() -> None:
    grid = SimplexInterpolator(records_of(linear))
    estimate = grid.at([0.25, 0.25, 0.5, 0.0])
    assert estimate.accuracy == pytest.approx(linear([0.25, 0.25, 0.5, 0.0]))
    assert estimate.soups == 1 and estimate.sources[0].weights == [0.25, 0.25, 0.5, 0.0]
    assert estimate.caption().startswith("interpolated from 1 stored soup · PGD-10 L∞ 8/255 on 12 images")


def test_between_stored_soups_a_linear_metric_is_recovered_from_the_cell_around_the_soup() -> None:
    grid = SimplexInterpolator(records_of(linear))
    for soup in ([0.4, 0.3, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7], [0.33, 0.33, 0.34, 0.0]):
        estimate = grid.at(soup)
        assert estimate.accuracy == pytest.approx(linear(soup))
        assert 2 <= estimate.soups <= 4 and sum(estimate.shares) == pytest.approx(1.0)
        assert f"interpolated from {estimate.soups} stored soups" in estimate.caption()


def test_a_curved_metric_stays_within_its_cells_corners() -> None:
    grid = SimplexInterpolator(records_of(lambda w: w[0] ** 2))
    estimate = grid.at([0.4, 0.3, 0.2, 0.1])
    corners = [r.accuracy for r in estimate.sources]
    assert min(corners) <= estimate.accuracy <= max(corners)
    assert estimate.accuracy > 0.4 ** 2  # a chord lies above a convex curve


def test_soups_outside_the_stored_hull_get_nothing() -> None:
    half = [r for r in records_of(linear) if r.weights[3] == 0.0]  # the face without ingredient 3
    grid = SimplexInterpolator(half)
    assert grid.at([0.4, 0.3, 0.2, 0.1]) is None  # needs ingredient 3: off the stored face
    assert grid.at([1.2, -0.2, 0.0, 0.0]) is None  # extrapolated
    assert SimplexInterpolator(records_of(linear)).at([1.2, -0.2, 0.0, 0.0]) is None
    assert SimplexInterpolator(records_of(linear)[:3]).at([0.4, 0.3, 0.2, 0.1]) is None  # too few to span


def test_leave_one_out_is_exact_for_a_linear_metric_and_measures_a_curved_one() -> None:
    exact = leave_one_out(records_of(linear))
    assert exact.mean_abs == pytest.approx(0.0, abs=1e-9) and exact.tested > 0
    curved = leave_one_out(records_of(lambda w: w[0] ** 2))
    assert curved.mean_abs > 0 and curved.max_abs >= curved.mean_abs
    assert curved.tested < curved.soups  # the corners have no hull of the others around them
    assert curved.n == 12 and curved.method == "PGD-10 L∞ 8/255"
    assert "leave-one-out error" in curved.sentence()
