"""Specification of soupviz/serve/adaptation_views.py: shifts kept by their inputs, the figures of
one soup for several shifts, and the captions that state the protocol's rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import SoupvizError
from soupviz.insight.adapt import Outcome
from soupviz.insight.few_shot import ONE_FOR_ALL, OWN_SOUP, AdaptationRun, AdaptConfig
from soupviz.insight.shifts import corruption_shift, shift_from_spec
from soupviz.insight.weight_search import Selection
from soupviz.present.figure_export import figure_csv
from soupviz.serve.adaptation_views import grid_caption, k_curve_caption, kept_shifts, several_figures
from soupviz.serve.insight_runs import ResultStore


@pytest.fixture
def images(synthetic_images) -> ImageSet:
    """The 40 synthetic images (4 per class) at 8x8, to keep corruptions cheap."""
    small = F.interpolate(synthetic_images.images.float(), size=8, mode="area").round()
    return ImageSet(small.to(torch.uint8), synthetic_images.labels, CIFAR10_CLASSES, "synthetic")


def test_shifts_are_made_once_per_input_and_context_reporting_each_name(images, monkeypatch) -> None:
    made, reports, store = [], [], ResultStore()
    monkeypatch.setattr("soupviz.serve.adaptation_views.shift_from_spec",
                        lambda spec, *args, **kw: made.append(spec) or shift_from_spec(spec, *args, **kw))
    specs = [("corruption", "fog", 3), ("corruption", "contrast", 1)]
    first = kept_shifts(specs, images, 3, 1, 0, store=store, context="data a", report=lambda now: reports.append(now))
    assert [s.name for s in first] == ["fog 3", "contrast 1"] and made == specs
    assert torch.equal(first[0].x, corruption_shift(images, "fog", 3, 3, 1).x)
    assert [(r.fraction, r.message) for r in reports] == [(0.0, "fog 3"), (0.5, "contrast 1")]
    again = kept_shifts(specs[:1], images, 3, 1, 0, store=store, context="data a")
    assert again[0] is first[0] and len(made) == 2  # kept
    kept_shifts(specs[:1], images, 3, 1, 0, store=store, context="data b")
    kept_shifts(specs[:1], images, 3, 2, 0, store=store, context="data a")
    assert len(made) == 4  # another context, another held-out count: made anew


def test_a_folder_shift_is_made_anew_once_its_images_are_rewritten(tmp_path, monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    for name in ("cat", "dog"):
        (tmp_path / "shift" / name).mkdir(parents=True)
        for i in range(3):
            grey = torch.full((8, 8, 3), 200, dtype=torch.uint8).numpy()
            Image.fromarray(grey).save(tmp_path / "shift" / name / f"{i}.png")
    spec, store = ("folder", str(tmp_path / "shift")), ResultStore()
    first = kept_shifts([spec], None, 3, 1, 0, store=store, context="data a")[0]
    for path in (tmp_path / "shift").rglob("*.png"):
        Image.fromarray(torch.zeros((8, 8, 3), dtype=torch.uint8).numpy()).save(path)
    again = kept_shifts([spec], None, 3, 1, 0, store=store, context="data a")[0]
    assert float(first.x.sum()) > 0 and float(again.x.sum()) == 0


def outcome(candidate: str, shift: str, weights: list[float]) -> Outcome:
    return Outcome(candidate, "selected", weights, shift, 5, 50, 0.5, 100, 60, 0.6, 0.5, 0.7, 0, "grid")


def test_one_soup_for_several_shifts_is_drawn_beside_each_shifts_own_soup() -> None:
    joint = Selection(torch.tensor([0.5, 0.5], dtype=torch.float64), 0.6, 1.0, 100, "grid", "one soup",
                      torch.eye(2), torch.zeros(2), 0)
    outcomes = [outcome(ONE_FOR_ALL, "fog 3", [0.5, 0.5]), outcome(OWN_SOUP, "fog 3", [1.0, 0.0]),
                outcome("nominal", "fog 3", [1.0, 0.0]), outcome(ONE_FOR_ALL, "contrast 3", [0.5, 0.5]),
                outcome(OWN_SOUP, "contrast 3", [0.0, 1.0])]
    figures = several_figures(joint, outcomes, ["nominal", "L∞"], "fam")
    assert set(figures) == {"outcomes", "composition"}
    rows = figure_csv(figures["composition"]).splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["one soup for all", "own soup: fog 3", "own soup: contrast 3"]
    assert "nominal" in figure_csv(figures["outcomes"])


def test_the_grid_caption_counts_the_soups_and_names_the_margin_only_when_extrapolating() -> None:
    assert grid_caption(AdaptConfig(step=0.5), 3) == (
        "Grid: 6 soups of 3 ingredients (step 0.5); ties go to the lower cross-entropy.")
    wide = grid_caption(AdaptConfig(step=0.5, margin=0.5), 2)
    assert wide.startswith("Grid: ") and "(step 0.5, margin 0.5)" in wide
    with pytest.raises(SoupvizError):
        grid_caption(AdaptConfig(step=0.3), 3)


def test_the_k_curve_caption_states_the_draws_and_the_seed() -> None:
    run = AdaptationRun("fog 3", 7, AdaptConfig(ks=(1, 5), draws=4), "", [], [])
    assert k_curve_caption(run).startswith("Each k: 4 independent draws of k images per class from the pool, "
                                           "seeded by (seed 7, shift, draw)")
