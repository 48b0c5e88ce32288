"""What the app and browser tests start the dashboard on: a tiny family, a tiny ImageFolder of
synthetic CIFAR-sized images, and the environment that points the dashboard at them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import BASELINES, load_family, save_checkpoint
from soupviz.data import CIFAR10_CLASSES

TESTS = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("soupviz_root_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_image_folder(root: Path, sizes: dict[str, int] | None = None, labeller=None, seed: int = 0) -> Path:
    """`root/<split>/<class>/*.png`: random 32 x 32 RGB images, labelled at random or by
    `labeller` (a classifier of floats (N, 3, 32, 32) in [0, 1]); every class folder exists."""
    rng = np.random.default_rng(seed)
    for split, count in (sizes or {"train": 20, "test": 40}).items():
        pixels = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        if labeller is None:
            labels = rng.integers(0, len(CIFAR10_CLASSES), count)
        else:
            with torch.no_grad():
                labels = labeller(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
        for name in CIFAR10_CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(pixels, labels, strict=True)):
            Image.fromarray(image).save(root / split / CIFAR10_CLASSES[label] / f"{i}.png")
    return root


def make_app_environment(root: Path) -> dict[str, str]:
    """Build the test family and data under `root`; return the environment the app reads.

    The ingredients differ a lot (spread 1.0) and the test images are labelled by the first
    (nominal) ingredient, which thus scores 100% clean accuracy while soups away from it score
    less, so a slider move visibly changes the numbers; 40 images and 2 attack steps keep every
    page fast. The family has one baseline, 'sat', holding the nominal ingredient's weights.
    """
    folder = _root_conftest().make_family_folder(root / "family", spread=1.0)
    first = load_family(folder).ingredients[0]
    save_checkpoint(first.state_dict, Card(name="sat", arch=first.card.arch, threat="sat"), folder / BASELINES)
    nominal = first.build_model("cpu")
    data = make_image_folder(root / "data", labeller=nominal)
    return {
        "SOUPVIZ_FAMILY": str(folder), "SOUPVIZ_DATA": str(data), "SOUPVIZ_CACHE": str(root / "cache"),
        "SOUPVIZ_EVAL_IMAGES": "40", "SOUPVIZ_EVAL_STEPS": "2", "SOUPVIZ_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
    }
