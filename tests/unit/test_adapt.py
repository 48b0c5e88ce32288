"""Specification of soupviz.adapt: shift splits, grid selection (never worse on the selection
images than any ingredient), exact weight gradients, projected gradient selection, held-out
reports, the k-curve and one soup for several shifts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from soupviz.adapt import (
    GridScores,
    ShiftData,
    adapt,
    adaptation_report,
    differentiable_template,
    k_curve,
    project_weights,
    score_grid,
    select_by_gradient,
    select_by_grid,
    select_for_shifts,
    summarise_curve,
    weight_gradient,
)
from soupviz.corruptions import corrupt
from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import SoupvizError
from soupviz.grids import simplex_grid
from soupviz.soup import ParameterMatrix, Soup

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


def test_projection_onto_the_capped_simplex():
    assert torch.allclose(
        project_weights(torch.tensor([0.5, 0.5, 0.5]), 0, 1), torch.full((3,), 1 / 3, dtype=F64)
    )
    assert torch.allclose(
        project_weights(torch.tensor([2.0, 0.0, 0.0]), 0, 1), torch.tensor([1.0, 0, 0], dtype=F64)
    )
    assert torch.allclose(
        project_weights(torch.tensor([3.0, 0.0, 0.0]), -0.4, 1.4),
        torch.tensor([1.4, -0.2, -0.2], dtype=F64),
    )
    v = torch.tensor([0.9, -0.7, 0.3, 0.6], dtype=F64)
    w = project_weights(v, 0, 1)
    assert w.sum() == pytest.approx(1.0) and w.min() >= 0
    torch.manual_seed(0)
    feasible = torch.distributions.Dirichlet(torch.ones(4)).sample((500,)).double()
    assert torch.all((w - v).norm() <= (feasible - v).norm(dim=1) + 1e-9)


def test_differentiable_template_matches_the_template(soup, shift):
    flat = soup.soup_vectors(torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=F64))[0]
    tensors = soup.params.as_tensors(flat)
    with torch.no_grad():
        plain = functional_call(soup.template, tensors, (shift.x[:5],))
        ours = functional_call(differentiable_template(soup.template), tensors, (shift.x[:5],))
    assert torch.allclose(plain, ours, atol=1e-5)


def test_weight_gradient_is_the_gradient_through_the_mixed_vector(soup, shift):
    w = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=F64)
    x, y = shift.x[:8], shift.y[:8]
    loss, _, gradient = weight_gradient(soup, w, x, y, batch_size=3)
    leaf = w.float().requires_grad_(True)
    logits = functional_call(
        differentiable_template(soup.template),
        soup.params.as_tensors(leaf @ soup.params.matrix),
        (x,),
    )
    F.cross_entropy(logits, y).backward()
    assert torch.allclose(gradient.float(), leaf.grad, rtol=1e-4, atol=1e-6)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y).detach()), rel=1e-5)


def smooth_net() -> nn.Module:
    """Conv, BatchNorm, pooling, linear: no ReLU, so finite differences are accurate."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()


def test_weight_gradient_matches_finite_differences_batchnorm_statistics_included():
    states = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = smooth_net()
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        states.append(net.state_dict())
    soup = Soup(smooth_net(), ParameterMatrix.from_state_dicts(states))
    x, y = torch.rand(6, 3, 5, 5, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3
    w = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    _, _, gradient = weight_gradient(soup, w, x, y)
    for direction in (
        torch.tensor([1.0, -1.0, 0.0], dtype=F64),
        torch.tensor([0.0, 1.0, -1.0], dtype=F64),
    ):
        h = 1e-2
        plus = weight_gradient(soup, w + h * direction, x, y)[0]
        minus = weight_gradient(soup, w - h * direction, x, y)[0]
        assert (plus - minus) / (2 * h) == pytest.approx(
            float(gradient @ direction), rel=0.02, abs=1e-5
        )


@pytest.mark.parametrize("extrapolate", [False, True])
def test_gradient_selection_stays_feasible_and_improves_on_its_start(soup, shift, extrapolate):
    chosen = shift.selection_indices(1, seed=0)
    x, y = shift.x[chosen], shift.y[chosen]
    selection = select_by_gradient(soup, x, y, steps=4, lr=0.2, extrapolate=extrapolate, margin=0.4)
    start_loss, start_accuracy, _ = weight_gradient(soup, torch.full((4,), 0.25, dtype=F64), x, y)
    assert selection.candidates.shape == (5, 4) and selection.method == "gradient"
    assert torch.allclose(selection.candidates.sum(1), torch.ones(5, dtype=F64))
    low = -0.4 if extrapolate else 0.0
    assert (
        selection.candidates.min() >= low - 1e-12 and selection.candidates.max() <= 1 - low + 1e-12
    )
    assert selection.selection_accuracy > start_accuracy or selection.selection_loss < start_loss
    assert selection.selection_accuracy >= start_accuracy


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
