"""A metric for any soup at once, from the stored soups around it: linear interpolation over the
Delaunay triangulation of a stored grid's soups in weight space (the same piecewise-linear
interpolation the filled ternary map draws, `present.simplex_figures.interpolate_face`, in all K - 1
dimensions of the simplex), and its error measured by leaving each stored soup out in turn.

An interpolated number is an estimate, not a measurement: it names the stored soups it rests on,
their attack and image count, and is replaced by the live measurement when that is done.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from soupviz.results.records import Record

TOLERANCE = 1e-9  # barycentric coordinates this far below 0 still count as inside (grid soups on faces)


@dataclass(frozen=True)
class Interpolated:
    """A metric of one soup interpolated from stored soups.

    Attributes:
        accuracy: the interpolated accuracy, a fraction.
        sources: the stored records it mixes (the corners of the cell holding the soup, those
            with a nonzero share), with `shares` (summing to 1) in the same order.
    """

    accuracy: float
    sources: tuple[Record, ...]
    shares: tuple[float, ...]

    @property
    def soups(self) -> int:
        """How many stored soups the number rests on."""
        return len(self.sources)

    @property
    def n(self) -> int:
        """The stored records' image count (the smallest where they differ)."""
        return min(r.n for r in self.sources)

    def caption(self) -> str:
        """What the number rests on, e.g. 'interpolated from 4 stored soups · PGD-10 L∞ 8/255 on 500
        images · an estimate until measured'."""
        methods = " / ".join(dict.fromkeys(r.method for r in self.sources))
        soups = "1 stored soup" if self.soups == 1 else f"{self.soups} stored soups"
        return f"interpolated from {soups} · {methods} on {self.n} images · an estimate until measured"


class SimplexInterpolator:
    """Piecewise-linear interpolation of one metric over a grid of stored soups of K ingredients.

    Soups are points of the (K - 1)-simplex; the first K - 1 weights are their coordinates (the
    last is 1 minus their sum), so any K - 1 of them would give the same triangulation up to an
    affine map, hence the same interpolation. Soups outside the stored soups' hull get None.

    Example:
        >>> grid = SimplexInterpolator(records)  # e.g. a StoredGrid's records of one spec
        >>> grid.at([0.3, 0.3, 0.2, 0.2]).accuracy
    """

    def __init__(self, records: Sequence[Record]) -> None:
        from scipy.spatial import Delaunay, QhullError  # here: pages that only name `Interpolated` load without scipy

        self.records = [r for r in records if r.weights]
        points = np.array([r.weights[:-1] for r in self.records], dtype=float)
        self.values = np.array([r.accuracy for r in self.records], dtype=float)
        self.triangulation = None
        if points.ndim == 2 and points.shape[1] >= 1 and len(points) > points.shape[1]:
            try:
                self.triangulation = Delaunay(points)
            except QhullError:  # the stored soups lie in a lower-dimensional slice: no hull to fill
                self.triangulation = None

    def at(self, weights: Sequence[float]) -> Interpolated | None:
        """The metric at soup `weights`, or None outside the stored soups' hull."""
        if self.triangulation is None:
            return None
        point = np.asarray(weights[:-1], dtype=float)[None, :]
        cell = int(self.triangulation.find_simplex(point, tol=TOLERANCE)[0])
        if cell < 0:
            return None
        transform = self.triangulation.transform[cell]
        partial = transform[:-1] @ (point[0] - transform[-1])
        shares = np.clip(np.append(partial, 1.0 - partial.sum()), 0.0, None)
        shares /= shares.sum()
        corners = self.triangulation.simplices[cell]
        used = [(int(c), float(s)) for c, s in zip(corners, shares, strict=True) if s > TOLERANCE]
        accuracy = float(sum(self.values[c] * s for c, s in used))
        return Interpolated(accuracy, tuple(self.records[c] for c, _ in used), tuple(s for _, s in used))


@dataclass(frozen=True)
class LeaveOneOut:
    """How far interpolation lands from stored measurements: each stored soup inside the hull of
    the others, interpolated from them and compared with its own record. Errors in points (%)."""

    metric: str
    method: str
    soups: int  # stored soups in the grid
    tested: int  # of them, inside the others' hull
    mean_abs: float
    rmse: float
    max_abs: float
    n: int  # the records' image count
    sampling: float  # the records' mean 95% interval half-width in points, for scale

    def sentence(self) -> str:
        return (f"leave-one-out error {self.mean_abs:.1f} points on average (max {self.max_abs:.1f}, "
                f"{self.tested} of {self.soups} stored soups)")


def leave_one_out(records: Sequence[Record]) -> LeaveOneOut | None:
    """Interpolate each stored soup from all the others (`SimplexInterpolator`) and compare; None
    when no stored soup lies inside the others' hull."""
    records = [r for r in records if r.weights]
    errors = []
    for i, record in enumerate(records):
        estimate = SimplexInterpolator(records[:i] + records[i + 1:]).at(record.weights)
        if estimate is not None:
            errors.append(100 * (estimate.accuracy - record.accuracy))
    if not errors:
        return None
    first = records[0]
    return LeaveOneOut(
        metric=first.metric, method=first.method, soups=len(records), tested=len(errors),
        mean_abs=statistics.fmean(abs(e) for e in errors), rmse=statistics.fmean(e * e for e in errors) ** 0.5,
        max_abs=max(abs(e) for e in errors), n=min(r.n for r in records),
        sampling=statistics.fmean(50 * (r.ci_high - r.ci_low) for r in records),
    )
