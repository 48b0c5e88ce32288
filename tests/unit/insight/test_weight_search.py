"""Specification of soupviz.insight.weight_search: exact weight
gradients (BatchNorm statistics included, variances mixed in log space as the soup evaluates
them) and projected gradient selection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import NonFiniteLogitsError
from soupviz.insight.shifts import ShiftData
from soupviz.insight.weight_search import differentiable_template, select_by_gradient, weight_gradient
from soupviz.soups.parameters import ParameterMatrix, is_running_variance
from soupviz.soups.soup import Soup

F64 = torch.float64


@pytest.fixture
def soup(family) -> Soup:
    return Soup.from_family(family)


@pytest.fixture
def shift(synthetic_images) -> ShiftData:
    """The 40 synthetic images (4 per class) at 16x16, to keep forward passes cheap."""
    small = F.interpolate(synthetic_images.images.float(), size=16, mode="area").round()
    images = ImageSet(small.to(torch.uint8), synthetic_images.labels, CIFAR10_CLASSES, "synthetic")
    return ShiftData.from_images(images, heldout_per_class=2, seed=0)


def test_differentiable_template_matches_the_template(soup, shift):
    flat = soup.soup_vectors(torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=F64))[0]
    tensors = soup.params.as_tensors(flat)
    with torch.no_grad():
        plain = functional_call(soup.template, tensors, (shift.x[:5],))
        ours = functional_call(differentiable_template(soup.template), tensors, (shift.x[:5],))
    assert torch.allclose(plain, ours, atol=1e-5)


@pytest.mark.parametrize("w", [[0.4, 0.3, 0.2, 0.1], [1.4, -0.4, 0.4, -0.4]])
def test_weight_gradient_is_the_gradient_through_the_mixed_state_dict(family, soup, shift, w):
    w = torch.tensor(w, dtype=F64)
    x, y = shift.x[:8], shift.y[:8]
    loss, _, gradient = weight_gradient(soup, w, x, y, batch_size=3)
    leaf = w.float().requires_grad_(True)
    states = [ingredient.state_dict for ingredient in family.ingredients]
    mixed = {  # running variances geometrically, everything else linearly
        key: torch.exp(sum(wk * s[key].log() for wk, s in zip(leaf, states, strict=True)))
        if is_running_variance(key)
        else sum(wk * s[key] for wk, s in zip(leaf, states, strict=True))
        for key in soup.params.layout
    }
    logits = functional_call(differentiable_template(soup.template), mixed | soup.params.integer_buffers, (x,))
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


@pytest.mark.parametrize(
    ("w", "linear"), [([0.5, 0.3, 0.2], False), ([1.4, -0.3, -0.1], False), ([0.5, 0.3, 0.2], True)]
)
def test_weight_gradient_matches_finite_differences_batchnorm_statistics_included(w, linear):
    states = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = smooth_net()
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        states.append(net.state_dict())
    soup = Soup(smooth_net(), ParameterMatrix.from_state_dicts(states))
    soup.mix_batchnorm(linear=linear)
    x, y = torch.rand(6, 3, 5, 5, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3
    w = torch.tensor(w, dtype=F64)
    _, _, gradient = weight_gradient(soup, w, x, y)
    for direction in (
        torch.tensor([1.0, -1.0, 0.0], dtype=F64),
        torch.tensor([0.0, 1.0, -1.0], dtype=F64),
    ):

        def central(h: float, d: torch.Tensor = direction) -> float:
            return (weight_gradient(soup, w + h * d, x, y)[0] - weight_gradient(soup, w - h * d, x, y)[0]) / (2 * h)

        richardson = (4 * central(5e-3) - central(1e-2)) / 3  # cancels the O(h²) error
        assert richardson == pytest.approx(float(gradient @ direction), rel=0.02, abs=1e-5)


@pytest.mark.parametrize("extrapolate", [False, True])
def test_gradient_selection_stays_feasible_and_improves_on_its_start(soup, shift, extrapolate):
    chosen = shift.selection_indices(1, draw=0)
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


def test_weight_gradient_refuses_a_soup_with_nan_outputs(nan_soup, shift):
    with pytest.raises(NonFiniteLogitsError, match=r"\(0.25, 0.25, 0.25, 0.25\) outputs NaN"):
        weight_gradient(nan_soup, torch.full((4,), 0.25, dtype=F64), shift.x[:4], shift.y[:4])
