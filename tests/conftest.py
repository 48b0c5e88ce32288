"""Shared fixtures: a tiny synthetic family of four ingredients, synthetic images and an evaluator
of the two, built in milliseconds, and the real CIFAR-10 folder for integration tests (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from soupviz.cards import Card
from soupviz.checkpoints import load_family, save_checkpoint
from soupviz.data import CIFAR10_CLASSES, LOCAL_CANDIDATES, ImageSet
from soupviz.evaluate.evaluator import Evaluator
from soupviz.evaluate.factory import open_evaluator
from soupviz.models import create_model
from soupviz.parameters import ParameterMatrix
from soupviz.soup import Soup

THREATS_AND_BUDGETS = [("linf", 8 / 255), ("none", None), ("l2", 0.5), ("l1", 12.0)]


def make_family_folder(folder: Path, arch: str = "preact_resnet_small", seed: int = 0, spread: float = 0.05) -> Path:
    """Write four ingredients sharing one random base, each perturbed a little, into `folder`."""
    torch.manual_seed(seed)
    base = create_model(arch).state_dict()
    parent = None
    for index, (threat, eps) in enumerate(THREATS_AND_BUDGETS):
        generator = torch.Generator().manual_seed(seed + 1 + index)
        state = {
            key: value + spread * torch.randn(value.shape, generator=generator) * value.std().nan_to_num(0)
            if value.is_floating_point() and "running_var" not in key and value.numel() > 1
            else value.clone()
            for key, value in base.items()
        }
        card = Card(name=f"test-{threat}", arch=arch, threat=threat, eps=eps, parent=parent, data_source="synthetic")
        save_checkpoint(state, card, folder)
        if threat == "linf":
            parent = {"name": card.name, "content_hash": card.content_hash}
    return folder


@pytest.fixture
def family_folder(tmp_path: Path) -> Path:
    return make_family_folder(tmp_path / "family")


@pytest.fixture
def family(family_folder: Path):
    return load_family(family_folder)


@pytest.fixture
def nan_soup(family) -> Soup:
    """A soup of `family` whose second ingredient holds NaN in its last BatchNorm bias, so that
    every soup of it (0 * NaN is NaN) outputs NaN logits: a broken classifier to be reported."""
    states = [dict(ingredient.state_dict) for ingredient in family.ingredients]
    states[1]["bn.bias"] = torch.full_like(states[1]["bn.bias"], float("nan"))
    card = family.ingredients[0].card
    template = create_model(card.arch, card.num_classes, card.mean, card.std)
    return Soup(template, ParameterMatrix.from_state_dicts(states))


@pytest.fixture
def synthetic_images() -> ImageSet:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 32, 32), generator=generator, dtype=torch.uint8)
    labels = torch.arange(40) % 10
    return ImageSet(images, labels, CIFAR10_CLASSES, "synthetic")


@pytest.fixture
def evaluator(family, synthetic_images) -> Evaluator:
    """The evaluator of `family` on `synthetic_images` as the dashboard opens one: the family's own
    parameter matrix, seed 0, batches of 20, no results cache."""
    return open_evaluator(family, test=synthetic_images, params=ParameterMatrix.from_family(family),
                          seed=0, batch_size=20, cache=False)


@pytest.fixture(scope="session")
def cifar_folder() -> Path:
    for candidate in LOCAL_CANDIDATES:
        if (candidate / "test").is_dir():
            return candidate
    pytest.skip("real CIFAR-10 not found: put an ImageFolder copy at ../shared/data/cifar10 (or data/cifar10)")


@pytest.fixture
def data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny CIFAR-10-like ImageFolder (two random images per class and split), with the
    soupviz cache folder moved under `tmp_path`."""
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    tmp_path / "data" / split / name / f"{i}.png"
                )
    return tmp_path / "data"
