"""Soup-weight maths: checking weight vectors, the extrapolation bounds, the capped-simplex
projection, tidy slider weights (rebalancing when one moves), presets, weight grids and lines,
and the soup as a URL query string. Plain numbers and tensors only: no models, no Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from soupviz.errors import SoupWeightsError, WeightOutOfRangeError

Weights = Sequence[float] | torch.Tensor
SUM_TOLERANCE = 1e-6
DEFAULT_MARGIN = 0.4  # the paper's natural-shift grid spans [-0.4, 1.4]
EXTRAPOLATION_LIMIT = 10.0  # the widest extrapolation any evaluation accepts
DECIMALS = 3  # slider weights are kept to 3 decimals, so a soup reads (and caches) the same way
F64 = torch.float64



def weights_text(weights: Sequence[float] | torch.Tensor | None) -> str:
    """Weights as records, tables and CSV files write them: '0.2 0.8 0 0' (each `:g`, spaces),
    rounded to 10 decimals so that float noise such as -5.55e-16 (a soup whose weights were
    computed) reads 0; '' for none (a baseline)."""
    return " ".join(f"{round(float(w), 10) + 0.0:g}" for w in (weights if weights is not None else []))


def weights_key(weights: Sequence[float]) -> tuple[float, ...]:
    """The key of a soup: its weights rounded to 8 decimals, so the same soup reached by different
    float arithmetic (a slider, a grid, a link) finds the same records, lanes and cached numbers."""
    return tuple(round(float(w), 8) for w in weights)


def bounds(extrapolate: bool, margin: float = DEFAULT_MARGIN) -> tuple[float, float]:
    """The range a weight may take: [0, 1], or [-margin, 1 + margin] when extrapolating."""
    return (-margin, 1.0 + margin) if extrapolate else (0.0, 1.0)


def is_extrapolated(weights: Weights) -> bool:
    """Whether any weight lies outside [0, 1]."""
    return any(float(w) < -1e-12 or float(w) > 1 + 1e-12 for w in weights)


def margin_for(weights: Weights, margins: Sequence[float]) -> float:
    """The smallest of the offered `margins` whose bounds hold `weights` (else the largest)."""
    reach = max(max(float(w) for w in weights) - 1, -min(float(w) for w in weights))
    return next((m for m in sorted(margins) if m >= reach - 1e-9), max(margins))


def check_weights(
    weights: Weights,
    k: int,
    *,
    extrapolate: bool = False,
    margin: float = DEFAULT_MARGIN,
    normalise: bool = False,
) -> torch.Tensor:
    """Validate soup weights and return them as float64 (K,) or (S, K) on the CPU.

    Args:
        weights: one weight per ingredient, or S rows of them.
        k: the number of ingredients.
        extrapolate: allow weights outside [0, 1], within [-margin, 1 + margin].
        normalise: divide by the sum instead of requiring a sum of 1 (within 1e-6).

    Raises:
        SoupWeightsError: one sentence naming the weight (and soup) at fault.
    """
    w = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
    if w.dim() not in (1, 2) or w.shape[-1] != k or w.numel() == 0:
        raise SoupWeightsError(
            f"The soup weights have shape {tuple(w.shape)} but there are {k} ingredients; "
            "give one weight per ingredient."
        )
    rows, several = w.reshape(-1, k), w.dim() == 2
    _check_numbers(rows, several)
    rows = _normalised(rows, several) if normalise else _summing_to_one(rows, several)
    _check_range(rows, several, extrapolate, margin)
    return rows.reshape(w.shape)


def _of_soup(s: int | torch.Tensor, several: bool) -> str:
    """' of soup S' where the weights are several soups' rows, for the sentences below."""
    return f" of soup {s}" if several else ""


def _check_numbers(rows: torch.Tensor, several: bool) -> None:
    """Refuse a soup (S, K) with a NaN or infinite weight, or with no nonzero weight."""
    bad = (~torch.isfinite(rows)).any(1).nonzero()
    if len(bad):
        raise SoupWeightsError(f"The weights{_of_soup(bad[0, 0], several)} hold NaN or infinity; give numbers.")
    bad = (rows == 0).all(1).nonzero()
    if len(bad):
        raise SoupWeightsError(f"The weights{_of_soup(bad[0, 0], several)} are all zero; give a nonzero weight.")


def _normalised(rows: torch.Tensor, several: bool) -> torch.Tensor:
    """Each soup (S, K) divided by its sum; a sum within `SUM_TOLERANCE` of 0 is refused."""
    total = rows.sum(1, keepdim=True)
    bad = (total.abs() < SUM_TOLERANCE).nonzero()
    if len(bad):
        raise SoupWeightsError(
            f"The weights{_of_soup(bad[0, 0], several)} sum to 0, so they cannot be normalised; "
            "give weights with a nonzero sum."
        )
    return rows / total


def _summing_to_one(rows: torch.Tensor, several: bool) -> torch.Tensor:
    """`rows` (S, K), once each soup is checked to sum to 1 within `SUM_TOLERANCE`."""
    total = rows.sum(1, keepdim=True)
    bad = ((total - 1).abs() > SUM_TOLERANCE).nonzero()
    if len(bad):
        s = int(bad[0, 0])
        raise SoupWeightsError(
            f"The weights{_of_soup(s, several)} sum to {float(total[s]):.6g} instead of 1; "
            "make them sum to 1 or let them be normalised."
        )
    return rows


def _check_range(rows: torch.Tensor, several: bool, extrapolate: bool, margin: float) -> None:
    """Refuse a weight outside `bounds(extrapolate, margin)`, naming it, its ingredient and soup."""
    low, high = bounds(extrapolate, margin)
    bad = ((rows < low - 1e-12) | (rows > high + 1e-12)).nonzero()
    if len(bad):
        s, i = int(bad[0, 0]), int(bad[0, 1])
        hint = "widen the extrapolation margin" if extrapolate else "allow extrapolation"
        raise WeightOutOfRangeError(
            f"The weight {float(rows[s, i]):.6g} of ingredient {i}{_of_soup(s, several)} is outside "
            f"[{low:g}, {high:g}]; change it or {hint}."
        )


def project_weights(weights: Weights, low: float = 0.0, high: float = 1.0, total: float = 1.0) -> torch.Tensor:
    """Euclidean projection of `weights` (K,) onto {w : Σw = total, low ≤ w ≤ high}, as float64.

    The projection is clip(v − τ, low, high) for the one τ that meets the sum (found by
    bisection: the sum is monotone in τ); the bisection's last rounding error goes to a free
    coordinate so the sum is exact. Needs K·low ≤ total ≤ K·high.

    Example:
        >>> project_weights([2.0, 0.0, 0.0]).tolist()
        [1.0, 0.0, 0.0]
    """
    v = torch.as_tensor(weights, dtype=F64).detach().cpu().reshape(-1)
    lo, hi = float(v.min()) - high, float(v.max()) - low
    for _ in range(100):
        tau = (lo + hi) / 2
        if float((v - tau).clamp(low, high).sum()) > total:
            lo = tau
        else:
            hi = tau
    w = (v - (lo + hi) / 2).clamp(low, high)
    free = ((w > low) & (w < high)).nonzero()
    if len(free):
        w[free[0, 0]] += total - w.sum()
    return w


def tidy(weights: Weights, keep: int | None = None) -> list[float]:
    """Weights rounded to `DECIMALS` that still sum to 1: the rounding residue goes to the
    largest weight other than `keep` (the one the user just set)."""
    rounded = [round(float(w), DECIMALS) for w in weights]
    residue = round(1.0 - sum(rounded), DECIMALS)
    if residue and len(rounded) > 1:
        others = [i for i in range(len(rounded)) if i != keep] or list(range(len(rounded)))
        target = max(others, key=lambda i: abs(rounded[i]))
        rounded[target] = round(rounded[target] + residue, DECIMALS)
    return [w + 0.0 for w in rounded]  # no -0.0 in labels


def nearest_soup(weights: Weights, low: float = 0.0, high: float = 1.0) -> list[float]:
    """The nearest tidy weights (Euclidean) summing to 1 within [low, high], e.g. when
    extrapolation is switched off with a negative weight on."""
    return tidy(project_weights(weights, low, high).tolist())


def rebalance(weights: Sequence[float], index: int, value: float, low: float = 0.0, high: float = 1.0) -> list[float]:
    """Weights after the user sets weight `index` to `value`, kept summing to 1 within [low, high].

    The other weights keep their proportions where they can (scaled to fill 1 - value), else
    share it equally; they are then shifted as little as possible to stay within the bounds.
    `value` itself is limited to what the others can balance.

    Example:
        >>> rebalance([0.5, 0.5, 0.0], 0, 0.8)
        [0.8, 0.2, 0.0]
    """
    k = len(weights)
    if k == 1:
        return [1.0]
    value = min(max(value, 1 - (k - 1) * high, low), 1 - (k - 1) * low, high)
    others = [float(w) for i, w in enumerate(weights) if i != index]
    rest, before = 1.0 - value, sum(others)
    targets = [w * rest / before for w in others] if abs(before) > 1e-9 else [rest / (k - 1)] * (k - 1)
    filled = iter(project_weights(targets, low, high, total=rest).tolist())
    return tidy([value if i == index else next(filled) for i in range(k)], keep=index)


def uniform(k: int) -> list[float]:
    """The uniform soup of k ingredients, to `DECIMALS`."""
    return tidy([1.0 / k] * k)


def presets(threats: Sequence[str], labels: Sequence[str]) -> list[tuple[str, list[float]]]:
    """Named soups to start from: each ingredient, the uniform soup, and the paper's pairs,
    half the L∞ base (or the first ingredient) with half of each other ingredient."""
    k = len(labels)
    one_hot = [[1.0 if i == j else 0.0 for i in range(k)] for j in range(k)]
    chosen = [(label, one_hot[j]) for j, label in enumerate(labels)]
    if k > 1:
        chosen.append(("uniform soup", uniform(k)))
        base = list(threats).index("linf") if "linf" in threats else 0
        for j in range(k):
            if j != base:
                pair = [0.5 if i in (base, j) else 0.0 for i in range(k)]
                chosen.append((f"½ {labels[base]} + ½ {labels[j]}", pair))
    return chosen


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
    n, m = _units(1.0, step, "total weight"), _units(margin, step, "margin")
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


def coarse_to_fine(rows: Sequence[Sequence[float]], finest: int = 100) -> list[int]:
    """Indices of the soups `rows` from the coarsest grid to the finest: the soups whose weights are
    all multiples of 1/2 (the ingredients and their halves) first, then of 1/3, 1/4 and so on up to
    1/`finest`, then the rest; within each, the soup farthest from those already ordered next (grid
    order on ties). A sweep run in this order draws the whole simplex early and refines it evenly,
    instead of filling it corner by corner."""

    def level(row: Sequence[float]) -> int:
        for parts in range(1, finest + 1):
            if all(abs(float(w) * parts - round(float(w) * parts)) < 1e-6 for w in row):
                return parts
        return finest + 1

    points = torch.as_tensor(rows, dtype=torch.float64).reshape(len(rows), -1)
    levels = torch.tensor([level(row) for row in rows])
    nearest = torch.full((len(rows),), math.inf, dtype=torch.float64)
    order: list[int] = []
    for value in sorted(set(levels.tolist())):
        waiting = levels == value
        for _ in range(int(waiting.sum())):
            pick = int(torch.where(waiting, nearest, -1.0).argmax())
            order.append(pick)
            waiting[pick] = False
            nearest = torch.minimum(nearest, (points - points[pick]).norm(dim=1))
    return order


def grid_weights(k: int, step: float, subset: Sequence[int] | None = None) -> list[list[float]]:
    """The simplex grid (see `simplex_grid`) as tidy weight lists."""
    return [tidy(row.tolist()) for row in simplex_grid(k, step, subset=subset)]


def line_weights(k: int, i: int, j: int, margin: float, step: float = 0.1) -> torch.Tensor:
    """Soups on the path from ingredient j (α = 0) to i (α = 1), α every `step`, extended by
    `margin` on both sides when extrapolating."""
    points = round((1 + 2 * margin) / step) + 1
    return interpolation_line(k, i, j, points, margin)
