"""Views of the whole simplex: the filled ternary map is exact at evaluated soups and stays within
their range; the tetrahedron puts corners on its vertices and soups inside; a selection on either
view maps back to weights; the store grid reports its share done."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from soupviz.errors import SoupvizError
from soupviz.present.figure_export import figure_csv, figure_info
from soupviz.present.simplex_figures import (
    TETRAHEDRON,
    TRIANGLE,
    filled_ternary_figure,
    interpolate_face,
    picked_weights,
    tetrahedron_figure,
    to_cartesian,
)
from soupviz.present.soup_figures import ternary_figure, ternary_points
from soupviz.results.grids import family_records, family_store, grid_step, stored_grid
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore, family_fingerprint
from soupviz.soups.weights import grid_weights
from tests.unit.present.test_soup_figures import CLEAN, LINF, record


def face_records(step: float = 0.25) -> list:
    soups = [w for w in grid_weights(4, step) if w[3] == 0]
    return [record(w, correct=int(round(100 * (0.2 + 0.5 * w[0] + 0.1 * w[1] * w[2])))) for w in soups]


def test_filled_map_is_exact_at_evaluated_soups_and_within_their_range():
    records = face_records()
    x, y, z = interpolate_face(records, (0, 1, 2), resolution=40)
    finite = z[np.isfinite(z)]
    values = [100 * r.accuracy for r in records]
    assert finite.size > 0 and min(values) - 1e-9 <= finite.min() and finite.max() <= max(values) + 1e-9
    from scipy.interpolate import LinearNDInterpolator  # same triangulation, queried at the soups themselves
    points = to_cartesian([[r.weights[c] for c in (0, 1, 2)] for r in records], TRIANGLE)
    exact = LinearNDInterpolator(points, values)(points[:, 0], points[:, 1])
    assert np.allclose(exact, values)
    corner = z[0, 0]  # (x, y) = (0, 0), bottom left, is the second corner alone (as on Plotly's ternary plots)
    assert corner == pytest.approx(100 * records[[r.weights[1] for r in records].index(1.0)].accuracy)
    top = z[-1, len(x) // 2]  # the first corner, on top
    assert top == pytest.approx(100 * records[[r.weights[0] for r in records].index(1.0)].accuracy)


def test_filled_map_is_nan_outside_the_triangle():
    x, y, z = interpolate_face(face_records(), (0, 1, 2), resolution=20)
    assert np.isnan(z[-1, 0]) and np.isnan(z[-1, -1])


def test_filled_map_needs_a_spanning_grid():
    with pytest.raises(SoupvizError, match="three soups"):
        interpolate_face([record([1, 0, 0, 0]), record([0, 1, 0, 0])], (0, 1, 2))


def test_filled_ternary_figure_keeps_the_rows_it_shows_and_marks_the_current_soup():
    records = face_records() + [record([0, 0, 0, 1])]
    fig = filled_ternary_figure(records, CLEAN[0], (0, 1, 2), current=[0.5, 0.5, 0, 0], note="3 of 4")
    info = figure_info(fig)
    assert info["kind"] == "ternary-map" and len(info["rows"]) == len(records) - 1
    assert any(trace.name == "current soup" for trace in fig.data)
    assert "3 of 4" in fig.layout.annotations[-1].text
    assert figure_csv(fig).count("\n") == len(records)  # header + one row per shown soup


def test_tetrahedron_corners_map_to_vertices_and_soups_lie_inside():
    eye = np.eye(4)
    assert np.allclose(to_cartesian(eye, TETRAHEDRON), TETRAHEDRON)
    point = to_cartesian([[0.1, 0.2, 0.3, 0.4]], TETRAHEDRON)[0]
    solved = np.linalg.solve(np.vstack([TETRAHEDRON.T, np.ones(4)]), np.append(point, 1.0))
    assert np.allclose(solved, [0.1, 0.2, 0.3, 0.4]) and (solved >= 0).all()


def test_tetrahedron_figure_colours_by_metric_and_carries_weights():
    soups = grid_weights(4, 0.5)
    records = [record(w, LINF, correct=10 + i) for i, w in enumerate(soups)] + [record([1.2, -0.2, 0, 0], LINF)]
    fig = tetrahedron_figure(records, LINF[0], current=[0.25] * 4)
    points = fig.data[0]
    assert len(points.x) == len(soups)
    assert list(points.marker.color) == pytest.approx([10.0 + i for i in range(len(soups))])
    assert [list(w) for w in points.customdata] == [list(map(float, w)) for w in soups]
    assert "1 extrapolated" in fig.layout.annotations[0].text
    assert fig.data[-1].name == "current soup"


def test_tetrahedron_camera_shows_every_corner_apart():
    """From the figure's camera, no corner lands on another corner or behind an edge."""
    fig = tetrahedron_figure([record(w, CLEAN) for w in grid_weights(4, 0.5)], CLEAN[0])
    eye = fig.layout.scene.camera.eye
    view = -np.array([eye.x, eye.y, eye.z]) / np.linalg.norm([eye.x, eye.y, eye.z])
    up = np.array([0.0, 0.0, 1.0]) - view * view[2]  # Plotly's default up, in the screen plane
    up /= np.linalg.norm(up)
    screen = TETRAHEDRON @ np.stack([np.cross(view, up), up], axis=1)

    def gap(p, a, b):
        t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
        return np.linalg.norm(p - (a + t * (b - a)))

    corners = [np.linalg.norm(screen[i] - screen[j]) for i in range(4) for j in range(i + 1, 4)]
    behind_edges = [gap(screen[k], screen[i], screen[j]) for i in range(4) for j in range(i + 1, 4)
                    for k in range(4) if k not in (i, j)]
    assert min(corners + behind_edges) > 0.4  # the tetrahedron's edge is 1.63 long


def test_tetrahedron_needs_four_ingredients():
    three = replace(record([1, 0, 0]), ingredients=["nominal", "linf", "l2"])
    with pytest.raises(SoupvizError, match="four ingredients"):
        tetrahedron_figure([three], CLEAN[0])


def test_a_clicked_ternary_point_maps_back_to_its_soup(evaluator) -> None:
    grid = grid_weights(4, 0.5, subset=[0, 1, 2]) + [[0.5, 0, 0, 0.5]]  # the last is off the ternary
    fig = ternary_figure(evaluator.evaluate(grid, [MetricSpec("clean")]), "clean", (0, 1, 2))
    points = ternary_points(fig)
    assert points == grid[:-1]
    selection = {"points": [{"curve_number": 0, "point_index": 2}]}
    assert picked_weights(selection, points) == grid[2]
    assert picked_weights({"points": [{"curve_number": 1, "point_index": 0}]}, points) is None  # the star
    assert picked_weights({"points": []}, points) is None


def test_stored_grid_counts_found_and_missing_records(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    grid = grid_weights(4, 0.5)
    done = [record(w) for w in grid[:4]] + [record(grid[0], LINF)]
    hashes = ["a", "b", "c", "d"]
    for i, r in enumerate(done):
        store.put(f"k{i}", r, family=family_fingerprint(hashes))
    store.put("other", record(grid[5]), family="another family")  # of ingredients the store does not name
    stored = stored_grid(family_records(store, hashes, [CLEAN[1], LINF[1]]), grid)
    assert (stored.found, stored.expected) == (5, 2 * len(grid))
    assert stored.caption() == f"from the precomputed store: 5 of {2 * len(grid)} soups"
    assert len(family_records(store, hashes)) == 5
    assert stored_grid(family_records(store, ["e", "f", "g", "h"]), grid).found == 0


def test_grid_step_is_the_coarsest_grid_holding_the_stored_soups():
    assert grid_step([record(w) for w in grid_weights(4, 0.5)], 4) == 0.5
    assert grid_step([record(w) for w in grid_weights(4, 0.2)], 4) == 0.2
    assert grid_step([record(w) for w in grid_weights(4, 0.1)[:40]], 4) == 0.1


def test_family_store_prefers_the_shipped_store(tmp_path):
    assert family_store(tmp_path).path != tmp_path / "results.sqlite"
    ResultStore(tmp_path / "results.sqlite").put("k", record([1, 0, 0, 0]), family="fp")
    assert family_store(tmp_path).path == tmp_path / "results.sqlite"
