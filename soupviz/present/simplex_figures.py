"""Views of the whole weight simplex: a ternary face as a smooth filled map interpolated from a
grid's records, and the 3-D tetrahedron of four ingredients coloured by a metric; a point clicked
on a simplex view maps back to its soup's weights (`picked_weights`).

Builders only arrange `Record`s (interpolation is linear between grid soups, so the map is exact
at every evaluated soup and never leaves their range); each figure keeps the evaluated rows it
shows in `layout.meta` and exports like the others (`export.figure_csv`, `export_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from soupviz.errors import SoupvizError
from soupviz.present.figure_export import apply_style, attach_rows
from soupviz.present.labels import metric_name, metric_title, soup_label
from soupviz.present.soup_figures import Metric, _off_simplex, family_of, hover_text, percent, select

# first corner on top, second bottom left, third bottom right: Plotly's own ternary plots (a, b, c),
# so the live map (`present.soup_figures.ternary_figure`) and this one put the same corners in the same places
TRIANGLE = np.array([[0.5, math.sqrt(3) / 2], [0.0, 0.0], [1.0, 0.0]])
TETRAHEDRON = np.array([
    [1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0],
]) / math.sqrt(3)
# where each tetrahedron corner's name sits, for the camera below: the third corner lies behind the
# points, so its name goes to the right of it, clear of them
CORNER_TEXT = ("top center", "bottom center", "middle right", "top center")
CURRENT_MARKER = {"color": "#D55E00", "line": {"width": 1, "color": "black"}}


def to_cartesian(weights: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Barycentric `weights` (N, V) as points (N, D) of the simplex whose corners are `vertices` (V, D)."""
    return np.asarray(weights, dtype=float) @ vertices


def face_points(records: Sequence, corners: Sequence[int]) -> list:
    """The records whose soups are convex soups of the three `corners` (a ternary face)."""
    return [r for r in records if not _off_simplex(r.weights, corners)]


def interpolate_face(
    records: Sequence, corners: tuple[int, int, int], resolution: int = 60,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy (%) linearly interpolated over a ternary face from the records on it.

    The face is drawn as the cartesian triangle `TRIANGLE`; the records' soups are triangulated
    (Delaunay) and the value at each point of a (resolution + 1)² grid is the barycentric mix of
    its triangle's corner values, so it equals the record at an evaluated soup and stays within
    the records' range. Points outside the triangle or the evaluated hull are NaN.

    Returns:
        x (resolution + 1,), y (resolution + 1,) and z (resolution + 1, resolution + 1), z[i, j]
        at (x[j], y[i]).

    Raises:
        SoupvizError: fewer than three non-collinear soups lie on the face.
    """
    chosen = face_points(records, corners)
    weights = np.array([[r.weights[c] for c in corners] for r in chosen]).reshape(-1, 3)
    points = to_cartesian(weights, TRIANGLE)
    if len(points) < 3 or np.linalg.matrix_rank(points[1:] - points[0]) < 2:
        raise SoupvizError("A filled ternary map needs at least three soups spanning the face; "
                           "evaluate a grid of its soups first.")
    from scipy.interpolate import LinearNDInterpolator  # scipy loads in seconds on a busy CPU: only when drawn

    values = np.array([percent(r.accuracy) for r in chosen])
    x = np.linspace(0.0, 1.0, resolution + 1)
    y = np.linspace(0.0, TRIANGLE[:, 1].max(), resolution + 1)
    grid_x, grid_y = np.meshgrid(x, y)
    z = LinearNDInterpolator(points, values)(grid_x, grid_y)
    return x, y, z


def filled_ternary_figure(
    records: Sequence, metric: Metric, corners: tuple[int, int, int],
    current: Sequence[float] | None = None, labels: Sequence[str] | None = None,
    resolution: int = 60, note: str | Sequence[str] = "", paper: bool = False,
) -> go.Figure:
    """A ternary face as a filled map of `metric` (%) interpolated from the grid's records.

    Evaluated soups are dots (hover: the record with its interval); `current` (K,) is a star
    when it lies on the face. `note` (e.g. the store's share done) is written under the map.
    """
    chosen = select(records, metric)
    labels = list(labels or chosen[0].ingredients)
    if len(set(corners)) != 3 or not all(0 <= c < len(labels) for c in corners):
        raise SoupvizError(f"A ternary map needs three different ingredients among 0..{len(labels) - 1}, "
                           f"got {corners}.")
    x, y, z = interpolate_face(chosen, corners, resolution)
    shown = face_points(chosen, corners)
    dots = to_cartesian([[r.weights[c] for c in corners] for r in shown], TRIANGLE)
    fig = go.Figure(go.Contour(
        x=x, y=y, z=z, coloraxis="coloraxis", contours={"coloring": "fill", "showlines": False},
        ncontours=24, hovertemplate="interpolated: %{z:.1f}%<extra></extra>", connectgaps=False,
    ))
    edge = np.vstack([TRIANGLE, TRIANGLE[:1]])
    fig.add_trace(go.Scatter(x=edge[:, 0], y=edge[:, 1], mode="lines", line={"color": "black", "width": 1.5},
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=dots[:, 0], y=dots[:, 1], mode="markers", name="evaluated soups",
        marker={"size": 5, "color": "white", "line": {"width": 0.5, "color": "black"}},
        hovertext=[hover_text(r, labels) for r in shown], hovertemplate="%{hovertext}<extra></extra>",
    ))
    if current is not None and not _off_simplex(current, corners):
        star = to_cartesian([[current[c] for c in corners]], TRIANGLE)
        fig.add_trace(go.Scatter(x=star[:, 0], y=star[:, 1], mode="markers", name="current soup",
                                 marker={"symbol": "star", "size": 18, **CURRENT_MARKER},
                                 hovertext=[soup_label(current, labels)],
                                 hovertemplate="%{hovertext}<extra>current soup</extra>"))
    for (cx, cy), corner, anchor in zip(TRIANGLE, corners, ("bottom center", "top right", "top left"), strict=True):
        fig.add_annotation(x=cx, y=cy, text=f"<b>{labels[corner]}</b>", showarrow=False,
                           xanchor=anchor.split()[1] if anchor != "bottom center" else "center",
                           yanchor=anchor.split()[0], font={"size": 14})
    hidden = {"visible": False, "showgrid": False, "zeroline": False}
    fig.update_layout(
        xaxis={**hidden, "range": [-0.12, 1.12]}, yaxis={**hidden, "range": [-0.1, 0.96], "scaleanchor": "x"},
        coloraxis={"colorbar": {"title": {"text": f"{chosen[0].metric} (%)"}, "len": 0.75, "thickness": 16}},
        title={"text": metric_title(chosen[0], shown)}, showlegend=False,
    )
    text = "<br>".join([f"{len(shown)} evaluated soups (dots), linear interpolation between them", *_lines(note)])
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=-0.02,
                       yanchor="top", font={"size": 11})
    rows = [r.row() for r in shown]
    attach_rows(fig, "ternary-map", rows, family_of(chosen), metric_name(chosen[0]), current)
    return apply_style(fig, paper)


def tetrahedron_figure(
    records: Sequence, metric: Metric, current: Sequence[float] | None = None,
    labels: Sequence[str] | None = None, note: str | Sequence[str] = "", paper: bool = False,
) -> go.Figure:
    """All convex soups of four ingredients as points in a 3-D tetrahedron coloured by `metric` (%).

    A soup sits at the weighted mean of the corners (`TETRAHEDRON`), each corner labelled with
    its ingredient; edges are drawn; extrapolated soups are left out and counted in the note.
    Each point's `customdata` holds its weights; `current` (4,) is a diamond. (Streamlit does not
    pass clicks on 3-D charts back to a page, so the explorer offers the stored soups in a list.)
    """
    chosen = select(records, metric)
    labels = list(labels or chosen[0].ingredients)
    if len(labels) != 4:
        raise SoupvizError(f"A tetrahedron shows soups of exactly four ingredients; this family has {len(labels)}.")
    shown = [r for r in chosen if not _off_simplex(r.weights, range(4))]
    xyz = to_cartesian([r.weights for r in shown], TETRAHEDRON).reshape(-1, 3)
    fig = go.Figure(go.Scatter3d(
        x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers", name="evaluated soups",
        marker={"size": 5, "color": [percent(r.accuracy) for r in shown], "coloraxis": "coloraxis"},
        customdata=[r.weights for r in shown], hovertext=[hover_text(r, labels) for r in shown],
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    for i in range(4):
        for j in range(i + 1, 4):
            ends = TETRAHEDRON[[i, j]]
            fig.add_trace(go.Scatter3d(x=ends[:, 0], y=ends[:, 1], z=ends[:, 2], mode="lines",
                                       line={"color": "grey", "width": 3}, hoverinfo="skip", showlegend=False))
    outside = TETRAHEDRON * 1.3  # corner names well outside the points, whichever way the camera turns
    fig.add_trace(go.Scatter3d(
        x=outside[:, 0], y=outside[:, 1], z=outside[:, 2],
        mode="text", text=[f"<b>{name}</b>" for name in labels], hoverinfo="skip", showlegend=False,
        textposition=CORNER_TEXT,
    ))
    if current is not None and not _off_simplex(current, range(4)):
        point = to_cartesian([current], TETRAHEDRON)
        fig.add_trace(go.Scatter3d(x=point[:, 0], y=point[:, 1], z=point[:, 2], mode="markers",
                                   name="current soup", customdata=[list(current)],
                                   marker={"symbol": "diamond", "size": 9, **CURRENT_MARKER},
                                   hovertext=[soup_label(current, labels)],
                                   hovertemplate="%{hovertext}<extra>current soup</extra>"))
    hidden = {"visible": False, "showbackground": False}
    skipped = len(chosen) - len(shown)
    notes = "; ".join([f"{len(shown)} soups"] + ([f"{skipped} extrapolated soups not shown"] if skipped else []))
    fig.update_layout(
        scene={"xaxis": hidden, "yaxis": hidden, "zaxis": hidden, "aspectmode": "cube",
               "camera": {"eye": {"x": 1.9, "y": 0.0, "z": 0.5}}},  # corners and edges apart on screen
        coloraxis={"colorbar": {"title": {"text": f"{chosen[0].metric} (%)"}, "len": 0.75, "thickness": 16}},
        title={"text": metric_title(chosen[0], shown)}, height=600, showlegend=True,
        legend={"x": 1.0, "y": 0.02, "xanchor": "right", "yanchor": "bottom"},  # under the colour bar
    )
    fig.add_annotation(text="<br>".join([notes, *_lines(note)]), showarrow=False, xref="paper", yref="paper",
                       x=0.5, y=0, yanchor="top", font={"size": 11})
    attach_rows(fig, "tetrahedron", [r.row() for r in shown], family_of(chosen), metric_name(chosen[0]), current)
    return apply_style(fig, paper)


def picked_weights(selection: object, points: Sequence[Sequence[float]]) -> list[float] | None:
    """The soup of the first clicked grid point in a Plotly selection state, else None; `points`
    are the clicked trace's weights in point order (`soups.ternary_points`)."""
    chosen = (getattr(selection, "points", None) or (selection or {}).get("points") or []) if selection else []
    for point in chosen:
        index = point.get("point_index", point.get("point_number"))
        if point.get("curve_number", 0) == 0 and index is not None and 0 <= int(index) < len(points):
            return list(points[int(index)])
    return None


def _lines(note: str | Sequence[str]) -> list[str]:
    """A figure's note as lines: one text, or several (e.g. `present.labels.stored_grid_notes`)."""
    return ([note] if note else []) if isinstance(note, str) else list(note)
