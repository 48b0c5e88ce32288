"""Specification of soupviz.insight.generate: targeted L2 PGD raises the target class's probability
inside its budget, deterministically; class Gaussians fit and sample as Santurkar et al.'s."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import SoupvizError
from soupviz.insight.generate import (
    GenerationSettings,
    fit_class_gaussians,
    generate_classes,
    sample_seeds,
    towards_class,
)
from soupviz.soups.soup import Soup

SHORT = GenerationSettings(eps=3.0, step_size=0.5, steps=6, frame_every=2)


@pytest.fixture
def model(family):
    return Soup.from_family(family).folded([0.25] * 4)


@pytest.fixture
def small_images(synthetic_images) -> ImageSet:
    """The synthetic images at 4x4 (D = 48), so full covariances are tiny."""
    small = (
        F.interpolate(synthetic_images.images.float(), size=4, mode="area").round().to(torch.uint8)
    )
    return ImageSet(small, synthetic_images.labels, CIFAR10_CLASSES, "synthetic 4x4")


def test_a_generation_run_raises_the_target_class_probability(model, synthetic_images):
    x = synthetic_images.floats()[:2]
    run = towards_class(model, x, 3, SHORT)
    assert torch.all(run.target_probability[-1] > run.target_probability[0])
    with torch.no_grad():
        final = model(run.final).softmax(1)[:, 3]
    assert torch.allclose(run.target_probability[-1], final)
    assert run.target_probability.shape == (SHORT.steps + 1, 2)
    assert torch.equal(run.target, torch.tensor([3, 3]))


def test_generation_stays_in_budget_and_box_and_keeps_a_strip(model, synthetic_images):
    x = synthetic_images.floats()[:2]
    run = towards_class(model, x, torch.tensor([1, 7]), SHORT)
    moved = (run.final - x).flatten(1).norm(dim=1)
    assert torch.all(moved <= SHORT.eps + 1e-4) and torch.all(moved > 0)
    assert run.final.min() >= 0 and run.final.max() <= 1
    assert run.frame_steps == [0, 2, 4, 6]
    assert run.frames.shape == (4, 2, 3, 32, 32)
    assert torch.equal(run.frames[0], x) and torch.equal(run.frames[-1], run.final)
    # each step moves at most step_size, so frame f is within f * 2 * 0.5 of the start
    for frame, step in zip(run.frames, run.frame_steps, strict=True):
        assert torch.all((frame - x).flatten(1).norm(dim=1) <= step * SHORT.step_size + 1e-4)


def test_generation_is_deterministic_and_reports_progress(model, synthetic_images):
    x = synthetic_images.floats()[:1]
    calls = []
    first = towards_class(
        model, x, 5, SHORT, progress=lambda now: calls.append((now.done, now.total))
    )
    second = towards_class(model, x, 5, SHORT)
    assert torch.equal(first.final, second.final)
    assert calls == [(i, SHORT.steps) for i in range(1, SHORT.steps + 1)]


def test_a_linear_model_is_walked_into_the_target_class():
    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    x = torch.rand(3, 3, 4, 4)
    run = towards_class(linear, x, 9, GenerationSettings(eps=30, step_size=0.5, steps=40))
    assert torch.all(run.prediction == 9)
    assert torch.all(run.target_probability[1:] >= run.target_probability[:-1] - 1e-6)


def test_bad_settings_and_inputs_are_clear_errors(model):
    with pytest.raises(SoupvizError, match="positive budget"):
        GenerationSettings(eps=0)
    with pytest.raises(SoupvizError, match=r"\[0, 1\]"):
        towards_class(model, torch.full((1, 3, 8, 8), 2.0), 0, SHORT)


def test_class_gaussians_are_the_class_mean_and_covariance_plus_jitter(small_images):
    gaussians = fit_class_gaussians(small_images, classes=[2, 5])
    assert gaussians.fitted == (2, 5) and gaussians.counts == (4, 4)
    for row, c in enumerate((2, 5)):
        data = small_images.images[small_images.labels == c].reshape(4, -1).double() / 255
        covariance = torch.cov(data.T) + 1e-4 * torch.eye(48, dtype=torch.float64)
        factor = gaussians.factors[row].double()
        assert torch.allclose(gaussians.means[row].double(), data.mean(0), atol=1e-6)
        assert torch.allclose(factor @ factor.T, covariance, atol=1e-5)
        assert torch.equal(factor, factor.tril())


def test_seeds_are_seeded_clamped_and_centred_on_the_class(small_images):
    gaussians = fit_class_gaussians(small_images, classes=[4])
    seeds = sample_seeds(gaussians, 4, 4000, seed=3)
    assert seeds.shape == (4000, 3, 4, 4) and seeds.min() >= 0 and seeds.max() <= 1
    assert torch.equal(seeds, sample_seeds(gaussians, 4, 4000, seed=3))
    assert torch.allclose(seeds[:5], sample_seeds(gaussians, 4, 5, seed=3), atol=1e-6)  # BLAS blocking varies with n
    assert not torch.equal(seeds[:5], sample_seeds(gaussians, 4, 5, seed=4))
    unclamped = gaussians.means[0].view(3, 4, 4)
    inside = (unclamped > 0.2) & (unclamped < 0.8)  # clamping barely shifts these pixels
    assert torch.allclose(seeds.mean(0)[inside], unclamped[inside], atol=0.05)
    with pytest.raises(SoupvizError, match="No Gaussian"):
        sample_seeds(gaussians, 1, 2)


def test_a_class_needs_two_images_for_a_gaussian(small_images):
    with pytest.raises(SoupvizError, match="at least two"):
        fit_class_gaussians(small_images, max_per_class=1, classes=[0])


def test_generate_classes_orders_images_class_by_class(model, small_images):
    gaussians = fit_class_gaussians(small_images, classes=[1, 6])
    settings = GenerationSettings(eps=2.0, step_size=0.5, steps=2, frame_every=1, seed=7)
    run = generate_classes(model, gaussians, per_class=2, settings=settings)
    assert torch.equal(run.target, torch.tensor([1, 1, 6, 6]))
    assert torch.equal(run.start[2:], sample_seeds(gaussians, 6, 2, seed=7 + 6))
    alone = generate_classes(model, gaussians, classes=[6], per_class=2, settings=settings)
    assert torch.equal(alone.start, run.start[2:])
