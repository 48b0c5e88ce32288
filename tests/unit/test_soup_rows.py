"""The soups a heatmap shows as rows (soupviz/soup_rows.py): chosen by group, each named once."""

from __future__ import annotations

from soupviz.soup_rows import row_soups


def test_heatmap_rows_name_each_soup_once(family) -> None:
    rows = row_soups(["ingredients", "current soup", "presets", "grid"], family, [1.0, 0.0, 0.0, 0.0], grid_step=0.5)
    names = [name for name, _ in rows]
    assert names[:4] == family.labels  # the current soup is the first ingredient: named after it, once
    assert "uniform soup" in names and len(rows) == len({tuple(w) for _, w in rows})
    assert len(rows) == 4 + 1 + 3 + (10 - 4 - 3)  # the grid adds its 10 soups minus those already named
