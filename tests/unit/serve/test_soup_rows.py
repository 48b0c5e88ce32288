"""The soups a heatmap shows as rows (soupviz/serve/soup_rows.py): chosen by group, each named once; a grid
takes the current soup only where it lacks it."""

from __future__ import annotations

from soupviz.serve.soup_rows import row_soups, with_soup
from soupviz.soups.weights import grid_weights


def test_heatmap_rows_name_each_soup_once(family) -> None:
    rows = row_soups(["ingredients", "current soup", "presets", "grid"], family, [1.0, 0.0, 0.0, 0.0], grid_step=0.5)
    names = [name for name, _ in rows]
    assert names[:4] == family.labels  # the current soup is the first ingredient: named after it, once
    assert "uniform soup" in names and len(rows) == len({tuple(w) for _, w in rows})
    assert len(rows) == 4 + 1 + 3 + (10 - 4 - 3)  # the grid adds its 10 soups minus those already named


def test_a_grid_takes_the_current_soup_once() -> None:
    grid = grid_weights(2, 0.5)
    assert with_soup(grid, [0.3, 0.7]) == [*grid, [0.3, 0.7]]
    assert with_soup(grid, [0.5 + 1e-12, 0.5]) == grid  # the same soup to 8 decimals
    assert with_soup([], [1.0, 0.0]) == [[1.0, 0.0]]
