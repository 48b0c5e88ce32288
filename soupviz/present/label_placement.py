"""Where the names beside a scatter's points go: a text position per label such that no two labels,
markers or drawn lines overlap, else a spot farther out joined to the point by a line. Pure
geometry in estimated pixels; the trade-off figure uses it for ingredients and baselines."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

TEXT_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "top left",
                  "bottom right", "bottom left")
CHAR_PX, LINE_PX, GAP_PX = 7.5, 16.0, 8.0  # a 13 px label's character width and line height; marker gap
DOT_PX = 4.0  # half the size of an unlabelled soup's marker
# where a label that finds no free spot beside its point goes, joined to it by a line: rings of 45 to
# 105 px, below and to the right first (away from the upper-left Pareto front of accuracy plots)
LEADER_OFFSETS = tuple((round(r * math.cos(math.radians(a)), 1), round(r * math.sin(math.radians(a)), 1))
                       for r in (45, 65, 85, 105) for a in (45, 135, 90, 0, 180, 315, 225, 270))
LINE_STEP_PX = 2.0  # a polyline blocks labels as 2 px boxes at most this far apart

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels, y down


def label_positions(
    points: Sequence[tuple[float, float]], texts: Sequence[str], all_points: Sequence[tuple[float, float]],
    size: tuple[int, int] = (450, 300), lines: Sequence[Sequence[tuple[float, float]]] = (),
    dots: Sequence[tuple[float, float]] = (), leaders: bool = False,
) -> list[str | tuple[float, float]]:
    """Plotly text positions for labelled points such that no two labels overlap, when possible.

    Each label tries `TEXT_POSITIONS` in order and takes the first whose box (estimated from its
    length at 13 px) overlaps neither a label placed before, nor a labelled marker, nor one of
    `lines` (polylines drawn on the plot, e.g. Pareto fronts) or `dots` (unlabelled markers); if
    none is free, with `leaders` the first free spot farther out (`LEADER_OFFSETS`), returned as
    the (dx, dy) pixel offset of a label joined to its point by a line (an arrow annotation's ax,
    ay), else the position overlapping least. Boxes are laid out in pixels of a plot area of `size` (width, height)
    whose axes span `all_points`, as Plotly's autorange roughly does.
    """
    pixels = _pixel_map(all_points, size)
    markers = [pixels(*p) for p in points]
    taken = _obstacles(markers, [pixels(*p) for p in dots], [[pixels(*p) for p in line] for line in lines])
    return [_place(x, y, CHAR_PX * len(text), taken, leaders)
            for (x, y), text in zip(markers, texts, strict=True)]


def overlap(a: tuple[float, ...], boxes: Sequence[tuple[float, ...]]) -> float:
    """The area box `a` (left, top, right, bottom) shares with `boxes`, in square pixels."""
    return sum(max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
               for b in boxes)


def _pixel_map(
    all_points: Sequence[tuple[float, float]], size: tuple[int, int]
) -> Callable[[float, float], tuple[float, float]]:
    """Data coordinates to pixels (y down) of a plot area of `size` whose axes span `all_points`."""
    xs, ys = [p[0] for p in all_points], [p[1] for p in all_points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0

    def pixels(x: float, y: float) -> tuple[float, float]:
        return (x - min(xs)) / span_x * size[0] * 0.9, (max(ys) - y) / span_y * size[1] * 0.9

    return pixels


def _obstacles(
    markers: Sequence[tuple[float, float]], dots: Sequence[tuple[float, float]],
    lines: Sequence[Sequence[tuple[float, float]]],
) -> list[Box]:
    """The boxes no label may cover (all in pixels): labelled markers, unlabelled dots, and each
    polyline as small boxes at most `LINE_STEP_PX` apart."""
    taken = [(x - GAP_PX, y - GAP_PX, x + GAP_PX, y + GAP_PX) for x, y in markers]
    taken += [(x - DOT_PX, y - DOT_PX, x + DOT_PX, y + DOT_PX) for x, y in dots]
    for traced in lines:
        for (x0, y0), (x1, y1) in zip(traced, traced[1:], strict=False):
            pieces = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / LINE_STEP_PX))
            taken += [(x - 1, y - 1, x + 1, y + 1) for t in range(pieces + 1)
                      for x, y in [(x0 + (x1 - x0) * t / pieces, y0 + (y1 - y0) * t / pieces)]]
    return taken


def _place(x: float, y: float, width: float, taken: list[Box], leaders: bool) -> str | tuple[float, float]:
    """Where the label `width` px wide of the marker at pixel (x, y) goes (see `label_positions`);
    its box joins `taken`."""
    def clash(position: str) -> float:
        return overlap(_beside(position, x, y, width), taken)

    best = next((p for p in TEXT_POSITIONS if clash(p) == 0), None)
    if best is None and leaders:
        free = next((o for o in LEADER_OFFSETS if overlap(_centred(x + o[0], y + o[1], width), taken) == 0), None)
        if free is not None:
            taken.append(_centred(x + free[0], y + free[1], width))
            return free
    best = best or min(TEXT_POSITIONS, key=clash)
    taken.append(_beside(best, x, y, width))
    return best


def _beside(position: str, x: float, y: float, width: float) -> Box:
    """The box of a one-line label `width` px wide at a Plotly text `position` of the marker at (x, y)."""
    vertical, horizontal = position.split()
    top = {"top": y - GAP_PX - LINE_PX, "bottom": y + GAP_PX, "middle": y - LINE_PX / 2}[vertical]
    left = {"center": x - width / 2, "right": x + GAP_PX, "left": x - GAP_PX - width}[horizontal]
    return left, top, left + width, top + LINE_PX


def _centred(x: float, y: float, width: float) -> Box:
    """The box of a one-line label `width` px wide centred on pixel (x, y)."""
    return x - width / 2, y - LINE_PX / 2, x + width / 2, y + LINE_PX / 2
