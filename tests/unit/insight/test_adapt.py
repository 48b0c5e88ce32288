"""Specification of soupviz.insight.adapt and its protocol soupviz.insight.few_shot: grid selection
(never worse on the selection images than any ingredient), the gradient started from the grid's
choice, held-out reports, the k-curve, test-time BatchNorm and one soup for several shifts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import NonFiniteLogitsError, SoupvizError
from soupviz.insight.adapt import GridScores, adaptation_report, score_grid, select_by_grid, summarise_curve
from soupviz.insight.few_shot import AdaptConfig, adapt_several, adapt_to_shift
from soupviz.insight.shifts import ShiftData
from soupviz.soups.soup import Soup
from soupviz.soups.weights import simplex_grid

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


def test_grid_selection_is_never_worse_than_an_ingredient_on_the_selection_images(soup, shift):
    grid = simplex_grid(4, 0.5)
    for row in torch.eye(4, dtype=F64):
        assert (grid == row).all(1).any(), "the grid must hold every one-hot row"
    chosen = shift.selection_indices(2, draw=1)
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
    run = adapt_to_shift(soup, shift, AdaptConfig(k=1, step=0.5, gradient_steps=2), family.labels)
    selections, outcomes = run.selections, run.outcomes
    roles = [o.role for o in outcomes]
    assert roles == ["selected"] * 2 + ["ingredient"] * 4 + ["uniform", "best ingredient"]
    assert [o.candidate for o in outcomes[:6]] == ["grid-search soup", "gradient-selected soup", *family.labels]
    assert outcomes[-1].candidate.removeprefix("best ingredient (").removesuffix(")") in family.labels
    held_x, held_y = shift.x[shift.heldout], shift.y[shift.heldout]
    references = torch.cat([torch.eye(4, dtype=F64), torch.full((1, 4), 0.25, dtype=F64)])
    expected = accuracies(soup, references, held_x, held_y)
    for outcome, accuracy in zip(outcomes[2:7], expected, strict=True):
        assert outcome.accuracy == pytest.approx(float(accuracy)) and outcome.n == 20
        assert outcome.ci_low <= outcome.accuracy <= outcome.ci_high
        assert outcome.batchnorm == soup.bn_label and outcome.seed == 0 and outcome.draw == 0
    best = outcomes[-1]
    assert best.selection_accuracy == max(o.selection_accuracy for o in outcomes[2:6])
    assert outcomes[0].selection_accuracy == pytest.approx(selections[0].selection_accuracy)
    assert outcomes[0].selection_accuracy >= best.selection_accuracy
    assert "weights" in outcomes[0].row() and isinstance(outcomes[0].row()["weights"], str)


def test_the_protocol_is_grid_search_then_the_gradient_from_the_grids_choice(soup, shift):
    grid = simplex_grid(4, 0.5)
    run = adapt_to_shift(soup, shift, AdaptConfig(k=2, step=0.5, gradient_steps=3, lr=0.1))
    chosen = shift.selection_indices(2, draw=0)
    alone = select_by_grid(soup, grid, shift.x[chosen], shift.y[chosen])
    by_grid, by_gradient = run.selections
    assert torch.equal(by_grid.weights, alone.weights) and by_grid.method == "grid"
    assert by_gradient.method == "gradient" and len(by_gradient.candidates) == 4
    torch.testing.assert_close(by_gradient.candidates[0], by_grid.weights)  # the start is the grid's choice
    assert by_gradient.selection_accuracy >= by_grid.selection_accuracy
    only_grid = adapt_to_shift(soup, shift, AdaptConfig(k=2, step=0.5, method="grid"))
    assert [s.method for s in only_grid.selections] == ["grid"]
    assert torch.equal(only_grid.selections[0].weights, by_grid.weights)
    assert [o.candidate for o in only_grid.outcomes[:2]] == ["grid-search soup", "test-none"]


def test_the_k_curve_uses_independent_draws_and_leaves_out_ks_that_exhaust_the_pool(soup, images):
    many = ImageSet(images.images.repeat(2, 1, 1, 1), images.labels.repeat(2), CIFAR10_CLASSES, "many")
    shift = ShiftData.from_images(many, heldout_per_class=2, seed=4)  # a pool of 6 per class
    config = AdaptConfig(k=1, step=0.5, method="grid", ks=(1, 2, 6, 9), draws=3)
    run = adapt_to_shift(soup, shift, config)
    assert {p["k"] for p in run.curve} == {1, 2}
    assert any("k = 6, 9 left out of the k-curve" in note for note in run.notes)
    grid = simplex_grid(4, 0.5)
    for k in (1, 2):
        points = [p for p in run.curve if p["k"] == k and p["candidate"] == "grid-search soup"]
        assert [p["draw"] for p in points] == [0, 1, 2] and len({p["seed"] for p in points}) == 3
        picks = [shift.selection_indices(k, draw) for draw in range(3)]
        assert len({tuple(sorted(p.tolist())) for p in picks}) == 3, "the draws differ"
        for point, picked in zip(points, picks, strict=True):
            alone = select_by_grid(soup, grid, shift.x[picked], shift.y[picked])
            assert point["weights"] == " ".join(f"{w:g}" for w in alone.weights.tolist())
            held = accuracies(soup, alone.weights[None], shift.x[shift.heldout], shift.y[shift.heldout])
            assert point["heldout_accuracy"] == pytest.approx(float(held[0]))
            assert point["n_selection"] == 10 * k
    summary = summarise_curve(run.curve)
    assert len(summary) == 2 * 3 and all(row["repeats"] == 3 for row in summary)
    whole = adapt_to_shift(soup, shift, AdaptConfig(k=6, step=0.5, method="grid"))
    assert any("takes the whole pool" in note for note in whole.notes)


def test_the_k_curve_follows_the_gradient_method_too(soup, shift):
    run = adapt_to_shift(soup, shift, AdaptConfig(k=1, step=0.5, gradient_steps=1, ks=(1,), draws=2))
    names = [p["candidate"] for p in run.curve]
    assert names == ["grid-search soup", "gradient-selected soup", "best ingredient", "uniform soup"] * 2
    gradient = [p for p in run.curve if p["candidate"] == "gradient-selected soup"][0]
    assert gradient["weights"] == " ".join(f"{w:g}" for w in run.selections[1].weights.tolist())  # k and draw 0
    assert gradient["heldout_accuracy"] == pytest.approx(run.outcomes[1].accuracy)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"method": "adam"}, "Unknown selection method"), ({"gradient_steps": 0}, "at least one step"),
     ({"ks": (1, 5), "draws": 1}, "at least two draws"), ({"k": 0}, "at least one labelled image")],
)
def test_unusable_settings_are_explained(settings, message):
    with pytest.raises(SoupvizError, match=message):
        AdaptConfig(**settings)


def test_batchnorm_can_be_re_estimated_on_the_unlabelled_shifted_images(soup, family, shift):
    run = adapt_to_shift(soup, shift, AdaptConfig(k=1, step=1.0, method="grid", bn_on_shift=True))
    assert soup.bn_mode == "mix", "the caller's soup is left as it was"
    assert "re-estimated per soup on 20 unlabelled images" in run.batchnorm
    assert all(o.batchnorm == run.batchnorm for o in run.outcomes)
    adapted = Soup.from_family(family)
    adapted.reestimate_batchnorm(shift.x[shift.pool], batch_size=128, batches=1)  # the pool: never held-out images
    references = torch.cat([torch.eye(4, dtype=F64), torch.full((1, 4), 0.25, dtype=F64)])
    expected = accuracies(adapted, references, shift.x[shift.heldout], shift.y[shift.heldout])
    assert [o.accuracy for o in run.outcomes[1:6]] == pytest.approx(expected.tolist())
    mixed = accuracies(soup, references, shift.x[shift.heldout], shift.y[shift.heldout])
    assert not torch.equal(expected, mixed), "the statistics of the shift change the predictions"


def test_one_soup_for_several_shifts_maximises_the_mean_selection_accuracy(soup, images, shift):
    grid = simplex_grid(4, 0.5)
    config = AdaptConfig(k=1, step=0.5, method="grid")
    noisy = ShiftData.from_images(images, heldout_per_class=2, corruption="contrast", severity=5)
    single, outcomes = adapt_several(soup, [shift, noisy], config)
    means = sum(accuracies(soup, grid, s.x[s.selection_indices(1, 0)], s.y[s.selection_indices(1, 0)])
                for s in (shift, noisy)) / 2
    assert single.selection_accuracy == pytest.approx(float(means.max()))
    assert [o.candidate for o in outcomes[:2]] == ["one soup for all shifts", "soup chosen for this shift"]
    assert {o.shift for o in outcomes} == {shift.name, "contrast 5"} and len(outcomes) == 2 * (2 + 4 + 2)
    alone, _ = adapt_several(soup, [shift], config)
    assert torch.equal(alone.weights, adapt_to_shift(soup, shift, config).selections[0].weights)
    with pytest.raises(SoupvizError, match="at least one shift"):
        adapt_several(soup, [], config)


def test_report_on_a_selection_made_elsewhere(soup, shift):
    selection = select_by_grid(soup, simplex_grid(4, 1.0), shift.x[:5], shift.y[:5])
    outcomes = adaptation_report(soup, shift, [selection], k=1)
    assert outcomes[0].candidate == "grid-search soup" and len(outcomes) == 1 + 4 + 2


def test_grid_scoring_refuses_soups_with_nan_outputs_instead_of_scoring_them_as_class_0(nan_soup, shift):
    grid = simplex_grid(4, 0.5)
    with pytest.raises(NonFiniteLogitsError, match=r"weights \(0, 0, 0, 1\) outputs NaN or infinite logits"):
        score_grid(nan_soup, grid, shift.x, shift.y)
    with pytest.raises(NonFiniteLogitsError, match="outputs NaN"):
        select_by_grid(nan_soup, grid, shift.x[:10], shift.y[:10])
