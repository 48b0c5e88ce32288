"""Weight grids over soups: simplex grids (any step, any subset, optional extrapolation
margin) and the two-ingredient interpolation line, in exact integer units of the step."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from soupviz.errors import SoupWeightsError


def simplex_grid(
    k: int,
    step: float,
    *,
    subset: Sequence[int] | None = None,
    margin: float = 0.0,
    max_points: int = 1_000_000,
) -> torch.Tensor:
    """All weight vectors (G, k) of multiples of `step` in [-margin, 1 + margin] summing to 1.

    Enumeration is exact, in integer units of `step` (which must divide 1 and `margin`).
    Ingredients outside `subset` (indices) stay at 0; rows are in lexicographic order. The
    paper's grids: `simplex_grid(3, 0.2)` has 21 soups, `simplex_grid(4, 0.2, margin=0.4)` 480.
    """
    n, m = _units(1.0, step, "1"), _units(margin, step, "margin")
    free = sorted(set(range(k) if subset is None else subset))
    if not free or not all(0 <= i < k for i in free):
        raise SoupWeightsError(f"The grid's subset {subset} must name indices in 0..{k - 1}.")
    low, high = -m, n + m
    if _grid_size(len(free), n - len(free) * low, high - low) > max_points:
        raise SoupWeightsError(
            f"A grid with step {step:g} has over {max_points} soups; use a coarser step."
        )
    rows: list[list[int]] = []

    def extend(prefix: list[int], remaining: int) -> None:
        left = len(free) - len(prefix) - 1
        if left == 0:
            rows.append(prefix + [remaining])
            return
        first, last = max(low, remaining - left * high), min(high, remaining - left * low)
        for value in range(first, last + 1):
            extend(prefix + [value], remaining - value)

    extend([], n)
    grid = torch.zeros(len(rows), k, dtype=torch.float64)
    grid[:, free] = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(free)) / n
    return grid


def _grid_size(slots: int, total: int, width: int) -> int:
    """How many vectors of `slots` integers in [0, width] sum to `total` (inclusion-exclusion)."""
    return sum(
        (-1) ** j * math.comb(slots, j) * math.comb(total - j * (width + 1) + slots - 1, slots - 1)
        for j in range(slots + 1)
        if total - j * (width + 1) >= 0
    )


def _units(value: float, step: float, what: str) -> int:
    if not 0 < step <= 1:
        raise SoupWeightsError(f"The grid step {step:g} must be in (0, 1].")
    units = round(value / step)
    if value < 0 or abs(units * step - value) > 1e-9:
        raise SoupWeightsError(
            f"The grid step {step:g} does not divide the {what} ({value:g}); "
            "pick a step such as 0.1, 0.2 or 0.25."
        )
    return units


def interpolation_line(k: int, i: int, j: int, points: int, margin: float = 0.0) -> torch.Tensor:
    """Weights (points, k) from ingredient j (alpha = 0) to ingredient i (alpha = 1).

    Row r puts alpha_r on i and 1 - alpha_r on j, alphas evenly spaced over [-margin,
    1 + margin]; alphas within 1e-12 of 0 or 1 are snapped there so the ends are exact.
    """
    if not (0 <= i < k and 0 <= j < k) or i == j:
        raise SoupWeightsError(f"A line needs two different ingredients in 0..{k - 1}: {i}, {j}.")
    if points < 2 or margin < 0:
        raise SoupWeightsError(f"A line needs 2+ points and a margin >= 0: {points}, {margin:g}.")
    alpha = torch.linspace(-margin, 1 + margin, points, dtype=torch.float64)
    for end in (0.0, 1.0):
        alpha[(alpha - end).abs() < 1e-12] = end
    line = torch.zeros(points, k, dtype=torch.float64)
    line[:, i], line[:, j] = alpha, 1 - alpha
    return line
