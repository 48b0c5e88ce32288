"""Shared fixtures: a tiny synthetic family of four ingredients on the registered test-only
architecture (`TEST_ARCH`), synthetic images and an evaluator of the two, built in milliseconds,
and the real CIFAR-10 folder for integration tests (skipped where absent).

The family's folder is written once per session and is read-only: `family` loads a fresh
object from it for each test (change it in memory freely), and a test that writes files takes
`family_folder`, its own copy. A test that writes into the shared folder fails."""

from __future__ import annotations

import os
import resource
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import load_family, save_checkpoint
from soupviz.data import CIFAR10_CLASSES, LOCAL_CANDIDATES, ImageSet
from soupviz.evaluate.evaluator import Evaluator
from soupviz.evaluate.factory import open_evaluator
from soupviz.models.registry import create_model
from soupviz.soups.parameters import ParameterMatrix
from soupviz.soups.soup import Soup

THREATS_AND_BUDGETS = [("linf", 8 / 255), ("none", None), ("l2", 0.5), ("l1", 12.0)]
TEST_ARCH = "test_preact_resnet"  # soupviz.models.registry' test-only architecture: 5.2k parameters


if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:  # under `-n N`: the cores shared
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist's `--dist loadgroup`, keep each test file on one worker (its module and
    session fixtures built once) and every browser test on one (one dashboard server, one Chromium)."""
    for item in items:
        file = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group("browser" if file.startswith("tests/browser/") else file))


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of the children it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """With SOUPVIZ_TEST_CPU=<file>, append each test's CPU seconds (setup, call and teardown
    together, children counted once waited for) and wall seconds to that file, tab-separated: the
    per-test numbers that wall time on a shared machine cannot give."""
    target = os.environ.get("SOUPVIZ_TEST_CPU")
    if not target:
        yield
        return
    cpu, wall = _cpu_seconds(), time.perf_counter()
    yield
    with open(target, "a") as out:
        out.write(f"{_cpu_seconds() - cpu:.2f}\t{time.perf_counter() - wall:.2f}\t{item.nodeid}\n")


def varied_base(arch: str = TEST_ARCH, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a random `arch` whose predictions vary from one noise image to the next.

    A freshly initialised ResNet gives every uniform-noise image the same class (global pooling
    averages the noise away), which would make accuracies and attacks trivial. So the BatchNorm
    statistics are measured on 64 noise images, and the last linear layer is rescaled to the
    spread of its inputs on them and centred (each logit of unit spread around zero)."""
    torch.manual_seed(seed)
    model = create_model(arch)
    images = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average over the batch
            module.reset_running_stats()
    head = [module for module in model.modules() if isinstance(module, torch.nn.Linear)][-1]
    features = []
    hook = head.register_forward_hook(lambda module, inputs, output: features.append(inputs[0]))
    with torch.no_grad():
        model.train()(images)
        model.eval()(images)
        hook.remove()
        mean, spread = features[-1].mean(0), features[-1].std(0) + 1e-6
        weight = head.weight / spread
        weight /= (features[-1] @ weight.T).std(0)[:, None]
        head.weight.copy_(weight)
        head.bias.copy_(-weight @ mean)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.1
    return model.state_dict()


def make_family_folder(folder: Path, arch: str = TEST_ARCH, seed: int = 0, spread: float = 0.005) -> Path:
    """Write four ingredients sharing one random base (`varied_base`), each perturbed a little,
    into `folder`: with the default `spread` they agree on about 80% of noise images."""
    base = varied_base(arch, seed)
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


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time (ns): what a write changes."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="session")
def shared_family_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test family's folder, written once per session; read-only (see `family`)."""
    return make_family_folder(tmp_path_factory.mktemp("shared") / "family")


@pytest.fixture
def family_folder(tmp_path: Path, shared_family_folder: Path) -> Path:
    """This test's own copy of the test family's folder, to write into freely."""
    return Path(shutil.copytree(shared_family_folder, tmp_path / "family"))


@pytest.fixture
def family(shared_family_folder: Path) -> Iterator:
    """The test family, loaded afresh from the shared folder; the test fails if it wrote there."""
    before = folder_state(shared_family_folder)
    yield load_family(shared_family_folder)
    assert folder_state(shared_family_folder) == before, (
        "this test wrote into the shared test family: take `family_folder` (its own copy) instead"
    )


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
