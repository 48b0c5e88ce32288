"""Specifications of the insight figures: images drawn pixel for pixel within the page width,
predictions coloured by correctness, and every figure carrying the rows its CSV exports."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from soupviz.insight.adapt import Outcome
from soupviz.insight.saliency import SaliencyResult
from soupviz.present.figure_export import figure_csv, filename_for
from soupviz.present.insight_figures import (
    RIGHT,
    SCALE,
    WRONG,
    Cell,
    composition_figure,
    image_grid,
    k_curve_figure,
    outcomes_figure,
    png_uri,
    saliency_figure,
)

CLASSES = ("cat", "dog")


def decode(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_png_uri_keeps_every_pixel_and_greys_a_single_channel() -> None:
    image = torch.rand(3, 5, 4)
    assert (decode(png_uri(image)) == image.mul(255).round().byte().permute(1, 2, 0).numpy()).all()
    grey = decode(png_uri(torch.tensor([[0.0, 1.0]])))
    assert grey.shape == (1, 2, 3) and grey[0, 1].tolist() == [255, 255, 255]


def test_a_grid_draws_each_image_without_smoothing_and_fits_the_page() -> None:
    cells = [[Cell(torch.zeros(3, 32, 32), "a"), None], [Cell(torch.ones(32, 32)), Cell(torch.ones(3, 8, 8))]]
    fig = image_grid(cells, ["row 1", "row 2"], ["x", "y"])
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 3 and images[2].dx == 4  # an 8-pixel image still spans 32 units
    assert not any(t.zsmooth for t in images)
    assert fig.layout.width <= 980 and fig.layout.yaxis.scaleanchor == "x"
    wide = image_grid([[Cell(torch.zeros(3, 32, 32))] * 20], ["r"], ["c"] * 20, max_width=600)
    assert wide.layout.width <= 600 < 20 * 32 * SCALE


def result(prediction: int, confidence: float) -> SaliencyResult:
    return SaliencyResult(torch.zeros(3, 4, 4), torch.zeros(4, 4), 0, 0, prediction, confidence, 0.5, "m", "n")


def test_saliency_figure_marks_right_and_wrong_predictions_and_exports_its_rows() -> None:
    panels = [{"a": result(0, 0.9), "soup": result(1, 0.6)}]
    fig = saliency_figure(torch.zeros(1, 3, 4, 4), [0], panels, ["a", "soup"], ["nominal", "current soup"], CLASSES,
                          "loss", "fam", [0.5, 0.5], ["test #3"])
    captions = {a.text: a.font.color for a in fig.layout.annotations}
    assert captions["cat 90% ✓"] == RIGHT and captions["dog 60% ✗"] == WRONG
    assert figure_csv(fig).splitlines()[0].startswith("image,true_class,model,prediction,confidence")
    assert len(figure_csv(fig).splitlines()) == 3
    assert filename_for(fig, "png") == "saliency_fam_w0.5-0.5_loss.png"


def outcome(candidate: str, role: str, correct: int, shift: str = "fog 3") -> Outcome:
    return Outcome(candidate, role, [1.0, 0.0], shift, 5, 50, 0.5, 100, correct, correct / 100, 0.4, 0.6, 0, "m")


def test_adaptation_figures_keep_their_numbers() -> None:
    outcomes = [outcome("grid-search soup", "selected", 60), outcome("nominal", "ingredient", 40)]
    fig = outcomes_figure(outcomes, ["nominal", "L∞"], "fam")
    assert [list(t.x) for t in fig.data] == [[60.0], [40.0]]
    assert list(fig.data[0].error_x.array) == pytest.approx([0.0])  # ci_high 0.6 = accuracy
    assert list(fig.data[0].error_x.arrayminus) == pytest.approx([20.0])
    assert "grid-search soup" in figure_csv(fig)
    composition = composition_figure([("grid", [1.2, -0.2])], ["nominal", "L∞"], "fam")
    assert [t.x[0] for t in composition.data] == [1.2, -0.2] and composition.layout.barmode == "relative"
    summary = [{"k": k, "candidate": "uniform soup", "repeats": 2, "mean": 0.5, "std": 0.1, "min": 0.4, "max": 0.6}
               for k in (1, 5)]
    curve = k_curve_figure([{"k": 1, "heldout_accuracy": 0.5}], summary, "fog 3", "fam")
    assert list(curve.data[0].y) == [50.0, 50.0]  # the mean, with a bar from the worst to the best draw
    assert list(curve.data[0].error_y.array) == pytest.approx([10.0, 10.0])
    assert list(curve.data[0].error_y.arrayminus) == pytest.approx([10.0, 10.0])
    assert figure_csv(curve).splitlines() == ["k,heldout_accuracy", "1,0.5"]
