"""Specification of soupviz.adapt: shift splits, grid selection (never worse on the selection
images than any ingredient), held-out reports, the k-curve and one soup for several shifts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soupviz.adapt import (
    GridScores,
    ShiftData,
    adapt,
    adaptation_report,
    k_curve,
    score_grid,
    select_by_grid,
    select_for_shifts,
    summarise_curve,
)
from soupviz.corruptions import corrupt
from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import NonFiniteLogitsError, SoupvizError
from soupviz.grids import simplex_grid
from soupviz.soup import Soup

F64 = torch.float64


@pytest.fixture
def soup(family) -> Soup:
    return Soup.from_family(family)


@pytest.fixture
def images(synthetic_images) -> ImageSet:
    """The 40 synthetic images (4 per class) at 16x16, to keep forward passes cheap."""
    small = F.interpolate(synthetic_images.images.float(), size=16, mode="area").round()
    return ImageSet(small.to(torch.uint8), synthetic_images.labels, CIFAR10_CLASSES, "synthetic")


@pytest.fixture
def shift(images) -> ShiftData:
    return ShiftData.from_images(images, heldout_per_class=2, seed=0)


def accuracies(soup: Soup, weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy of each soup, computed independently through `batched_logits`."""
    with torch.no_grad():
        return (
            (soup.batched_logits(weights, x, extrapolate=True, margin=1.0).argmax(-1) == y)
            .double()
            .mean(1)
        )


def test_shift_splits_are_disjoint_per_class_and_seeded(shift):
    held, pool = set(shift.heldout.tolist()), set(shift.pool.tolist())
    assert not held & pool and held | pool == set(range(40))
    assert torch.equal(torch.bincount(shift.y[shift.heldout], minlength=10), torch.full((10,), 2))
    chosen = shift.selection_indices(1, seed=3)
    assert set(chosen.tolist()) <= pool and sorted(shift.y[chosen].tolist()) == list(range(10))
    assert torch.equal(chosen, shift.selection_indices(1, seed=3))
    draws = {tuple(shift.selection_indices(1, seed=s).tolist()) for s in range(5)}
    assert len(draws) > 1
    assert len(shift.selection_indices(50, seed=0)) == 20  # fewer where the pool has fewer


def test_corrupted_shift_is_corrupted_in_fixed_chunks(images):
    shifted = ShiftData.from_images(
        images, heldout_per_class=2, corruption="gaussian_noise", severity=5
    )
    assert shifted.name == "gaussian_noise 5"
    assert torch.equal(shifted.x, corrupt(images.floats(), "gaussian_noise", 5, seed=0))


def test_user_folder_classes_are_mapped_to_the_model_classes(images):
    cats_and_dogs = images.take(
        torch.cat([(images.labels == 3).nonzero()[:, 0], (images.labels == 5).nonzero()[:, 0]])
    )
    folder = ImageSet(
        cats_and_dogs.images, (cats_and_dogs.labels == 5).long(), ("cat", "dog"), "my photos"
    )
    shifted = ShiftData.from_images(folder, heldout_per_class=1)
    assert sorted(set(shifted.y.tolist())) == [3, 5] and shifted.name == "my photos"
    assert len(shifted.selection_indices(2, 0)) == 4 and len(shifted.heldout) == 2
    with pytest.raises(SoupvizError, match="not classes of the model"):
        ShiftData.from_images(ImageSet(folder.images, folder.labels, ("cat", "unicorn"), "mine"), 1)
    with pytest.raises(SoupvizError, match="leaves none to select"):
        ShiftData.from_images(folder, heldout_per_class=4)


def test_grid_selection_is_never_worse_than_an_ingredient_on_the_selection_images(soup, shift):
    grid = simplex_grid(4, 0.5)
    for row in torch.eye(4, dtype=F64):
        assert (grid == row).all(1).any(), "the grid must hold every one-hot row"
    chosen = shift.selection_indices(2, seed=1)
    x, y = shift.x[chosen], shift.y[chosen]
    selection = select_by_grid(soup, grid, x, y)
    expected = accuracies(soup, grid, x, y)
    assert torch.allclose(selection.scores, expected)
    assert selection.selection_accuracy == pytest.approx(float(expected.max()))
    assert torch.all(
        selection.selection_accuracy >= accuracies(soup, torch.eye(4, dtype=F64), x, y)
    )
    assert torch.equal(selection.weights, grid[selection.index]) and selection.n == 20


def test_ties_go_to_the_lower_loss_then_to_the_first_row():
    grid = torch.eye(3, dtype=F64)
    correct = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.bool)
    scores = GridScores(grid, correct, torch.tensor([[2.0, 1.0], [1.0, 1.0], [5.0, 5.0]]))
    assert scores.pick().index == 1
    assert GridScores(grid, correct, torch.ones(3, 2)).pick().index == 0
    assert scores.pick(torch.tensor([1])).index == 2


def test_score_grid_stitches_chunks_of_soups_and_batches_of_images(soup, shift):
    grid = simplex_grid(4, 0.5)
    whole = score_grid(soup, grid, shift.x, shift.y, batch_size=64)
    pieces = score_grid(soup, grid, shift.x, shift.y, batch_size=7, max_bytes=3 * 4 * soup.params.p)
    assert torch.equal(whole.correct, pieces.correct)
    assert torch.allclose(whole.loss, pieces.loss, atol=1e-5)


def test_report_compares_the_selection_with_every_reference(soup, family, shift):
    grid = simplex_grid(4, 0.5)
    selections, outcomes = adapt(soup, shift, grid, k=1, seed=2, gradient_steps=2)
    roles = [o.role for o in outcomes]
    assert roles == ["selected"] * 2 + ["ingredient"] * 4 + ["uniform", "best ingredient"]
    assert [o.candidate for o in outcomes[2:6]] == family.names
    held_x, held_y = shift.x[shift.heldout], shift.y[shift.heldout]
    references = torch.cat([torch.eye(4, dtype=F64), torch.full((1, 4), 0.25, dtype=F64)])
    expected = accuracies(soup, references, held_x, held_y)
    for outcome, accuracy in zip(outcomes[2:7], expected, strict=True):
        assert outcome.accuracy == pytest.approx(float(accuracy)) and outcome.n == 20
        assert outcome.ci_low <= outcome.accuracy <= outcome.ci_high
    best = outcomes[-1]
    assert best.selection_accuracy == max(o.selection_accuracy for o in outcomes[2:6])
    assert outcomes[0].selection_accuracy == pytest.approx(selections[0].selection_accuracy)
    assert outcomes[0].selection_accuracy >= best.selection_accuracy
    assert "weights" in outcomes[0].row() and isinstance(outcomes[0].row()["weights"], str)


def test_k_curve_repeats_draws_and_the_grid_soup_beats_the_best_ingredient_on_selection(
    soup, shift
):
    grid = simplex_grid(4, 0.5)
    points = k_curve(soup, shift, grid, ks=(1, 2), repeats=2, seed=5)
    assert len(points) == 2 * 2 * 3
    for i in range(0, len(points), 3):
        soup_point, ingredient_point, uniform_point = points[i : i + 3]
        assert soup_point["selection_accuracy"] >= ingredient_point["selection_accuracy"]
        assert (
            uniform_point["candidate"] == "uniform soup"
            and soup_point["n_selection"] == 10 * soup_point["k"]
        )
    chosen = shift.selection_indices(2, seed=6)
    again = select_by_grid(soup, grid, shift.x[chosen], shift.y[chosen])
    assert points[9]["weights"] == " ".join(f"{w:g}" for w in again.weights.tolist())
    summary = summarise_curve(points)
    assert len(summary) == 6 and all(row["repeats"] == 2 for row in summary)


def test_one_soup_for_several_shifts_maximises_the_mean_selection_accuracy(soup, images, shift):
    grid = simplex_grid(4, 0.5)
    noisy = ShiftData.from_images(images, heldout_per_class=2, corruption="contrast", severity=5)
    single = select_for_shifts(soup, grid, [shift, noisy], k=1, seed=0)
    means = (
        sum(
            accuracies(soup, grid, s.x[s.selection_indices(1, 0)], s.y[s.selection_indices(1, 0)])
            for s in (shift, noisy)
        )
        / 2
    )
    assert single.selection_accuracy == pytest.approx(float(means.max()))
    alone = select_for_shifts(soup, grid, [shift], k=1, seed=0)
    chosen = shift.selection_indices(1, 0)
    assert torch.equal(
        alone.weights, select_by_grid(soup, grid, shift.x[chosen], shift.y[chosen]).weights
    )
    with pytest.raises(SoupvizError, match="at least one shift"):
        select_for_shifts(soup, grid, [], k=1)


def test_report_on_a_selection_made_elsewhere(soup, shift):
    selection = select_by_grid(soup, simplex_grid(4, 1.0), shift.x[:5], shift.y[:5])
    outcomes = adaptation_report(soup, shift, [selection], k=1, seed=0)
    assert outcomes[0].candidate == "grid-search soup" and len(outcomes) == 1 + 4 + 2


def test_grid_scoring_refuses_soups_with_nan_outputs_instead_of_scoring_them_as_class_0(nan_soup, shift):
    grid = simplex_grid(4, 0.5)
    with pytest.raises(NonFiniteLogitsError, match=r"weights \(0, 0, 0, 1\) outputs NaN or infinite logits"):
        score_grid(nan_soup, grid, shift.x, shift.y)
    with pytest.raises(NonFiniteLogitsError, match="outputs NaN"):
        select_by_grid(nan_soup, grid, shift.x[:10], shift.y[:10])
