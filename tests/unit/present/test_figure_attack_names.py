"""Every exported figure names, in its own text (the SVG a paper prints, no hover), the attack
behind each robust number and the image count n: heatmap columns in a footnote, maps and axes in
their titles, curves in their legends."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import pytest

from soupviz.present.budget_figures import budget_curves
from soupviz.present.figure_export import ExportError, export_figure, find_chromium, stop_export_browser
from soupviz.present.heatmap_figures import accuracy_heatmap
from soupviz.present.simplex_figures import filled_ternary_figure, tetrahedron_figure
from soupviz.present.soup_figures import interpolation_figure, ternary_figure
from soupviz.present.tradeoff_figures import tradeoff_figure
from soupviz.soups.weights import grid_weights, line_weights
from tests.unit.present.test_soup_figures import CLEAN, LABELS, measured, record

pytestmark = pytest.mark.slow
PREVIEW = measured("l1::pgd:10")
DEFAULT_L2 = measured("l2:0.25:pgd+pgd-t:10:t3")
AUTOATTACK = measured("l1::autoattack-apgd")
NAMES = {PREVIEW: "PGD-10", DEFAULT_L2: "PGD-10 + PGD-T-10 (3 targets)",
         AUTOATTACK: "AutoAttack (standard: APGD-CE, APGD-T)"}


def records(soups, metrics, n=200):
    return [record(w, m, correct=(37 * i) % n, n=n) for m in metrics for i, w in enumerate(soups)]


def figures() -> dict[str, tuple[go.Figure, list]]:
    """Each builder's figure and the metrics it shows."""
    grid = [list(w) for w in grid_weights(4, 0.25)]
    face = [list(w) for w in grid_weights(4, 0.25, subset=(0, 1, 2))]
    line = [list(w) for w in line_weights(4, 1, 0, 0.0)]
    return {
        "heatmap": (accuracy_heatmap(records(grid[:5], [CLEAN, DEFAULT_L2, AUTOATTACK]), labels=LABELS),
                    [DEFAULT_L2, AUTOATTACK]),
        "ternary": (ternary_figure(records(face, [PREVIEW]), PREVIEW[0], (0, 1, 2), labels=LABELS), [PREVIEW]),
        "filled ternary": (filled_ternary_figure(records(face, [AUTOATTACK]), AUTOATTACK[0], (0, 1, 2),
                                                 labels=LABELS), [AUTOATTACK]),
        "tetrahedron": (tetrahedron_figure(records(grid, [DEFAULT_L2]), DEFAULT_L2[0], labels=LABELS), [DEFAULT_L2]),
        "interpolation": (interpolation_figure(records(line, [CLEAN, PREVIEW]), 1, 0, labels=LABELS), [PREVIEW]),
        "trade-off": (tradeoff_figure(records(grid, [CLEAN, AUTOATTACK]), AUTOATTACK[0], labels=LABELS),
                      [AUTOATTACK]),
        "budget curves": (budget_curves(records(grid[:2], [CLEAN, PREVIEW, AUTOATTACK]), labels=LABELS),
                          [PREVIEW, AUTOATTACK]),
    }


def test_every_exported_figure_names_its_attacks_and_n() -> None:
    try:
        find_chromium()
    except ExportError as error:
        pytest.skip(f"no Chromium for Kaleido: {error}")
    try:
        for kind, (fig, metrics) in figures().items():
            svg = export_figure(fig, "svg", keep_browser=True).decode()
            text = re.sub(r"\s+", " ", " ".join(re.findall(r">([^<>]+)<", svg)))
            text = text.replace("&amp;", "&")
            for metric in metrics:
                assert NAMES[metric] in text, (kind, NAMES[metric], text)
            assert "n=200" in text, (kind, text)
    finally:
        stop_export_browser()
