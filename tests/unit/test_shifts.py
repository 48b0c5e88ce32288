"""Specification of soupviz.insight.shifts: held-out and pool splits per class, selection draws
independent across draws and shifts, corruption in fixed chunks, and a user's folder classes mapped
onto the model's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soupviz.corruptions import corrupt
from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import SoupvizError
from soupviz.insight.shifts import ShiftData, corruption_shift


@pytest.fixture
def images(synthetic_images) -> ImageSet:
    """The 40 synthetic images (4 per class) at 16x16, to keep corruptions cheap."""
    small = F.interpolate(synthetic_images.images.float(), size=16, mode="area").round()
    return ImageSet(small.to(torch.uint8), synthetic_images.labels, CIFAR10_CLASSES, "synthetic")


def test_shift_splits_are_disjoint_per_class_and_seeded(images):
    shift = ShiftData.from_images(images, heldout_per_class=2, seed=0)
    held, pool = set(shift.heldout.tolist()), set(shift.pool.tolist())
    assert not held & pool and held | pool == set(range(40))
    assert torch.equal(torch.bincount(shift.y[shift.heldout], minlength=10), torch.full((10,), 2))
    chosen = shift.selection_indices(1, draw=3)
    assert set(chosen.tolist()) <= pool and sorted(shift.y[chosen].tolist()) == list(range(10))
    assert torch.equal(chosen, shift.selection_indices(1, draw=3))
    assert len(shift.selection_indices(50, draw=0)) == 20  # fewer where the pool has fewer
    assert shift.pool_sizes() == dict.fromkeys(CIFAR10_CLASSES, 2)


def test_draws_and_shifts_select_independent_images(images):
    many = ImageSet(images.images.repeat(5, 1, 1, 1), images.labels.repeat(5), CIFAR10_CLASSES, "many")
    first = ShiftData.from_images(many, heldout_per_class=2, seed=0, name="first")
    draws = [set(first.selection_indices(2, draw=d).tolist()) for d in range(6)]
    assert all(a != b for i, a in enumerate(draws) for b in draws[i + 1:]), "every pair of draws differs"
    assert draws[0] < set(first.selection_indices(5, draw=0).tolist()), "a larger k keeps a draw's images"
    second = ShiftData.from_images(many, heldout_per_class=2, seed=0, name="second")
    assert not torch.equal(first.heldout, second.heldout)
    assert set(first.selection_indices(2, 0).tolist()) != set(second.selection_indices(2, 0).tolist())
    fog, noise = (corruption_shift(many, name, 3, 8, 2, seed=0) for name in ("fog", "gaussian_noise"))
    fog_images = set(fog.origin[fog.selection_indices(3, 0)].tolist())
    noise_images = set(noise.origin[noise.selection_indices(3, 0)].tolist())
    assert len(fog_images & noise_images) < len(fog_images) / 2, "two shifts draw their own test images"
    again = corruption_shift(many, "fog", 3, 8, 2, seed=0)
    assert torch.equal(again.x, fog.x) and torch.equal(again.selection_indices(3, 1), fog.selection_indices(3, 1))
    assert torch.equal(fog.x, corrupt(many.take(fog.origin).floats(), "fog", 3, seed=0))


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
