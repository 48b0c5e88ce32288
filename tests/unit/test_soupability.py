"""Soupability: the barrier along a straight path, by hand; ingredients of one base share a base
in their cards; identical ingredients have no barrier while a functionally identical but
permuted copy (what independent training gives) has one; `soupviz check` prints the matrix."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from soupviz.checkpoints import Card, load_family, save_checkpoint
from soupviz.cli import main
from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.models import create_model
from soupviz.soupability import (
    DO_NOT_MIX,
    SOUPS_WELL,
    lineage,
    measure_soupability,
    path_barrier,
    shared_base,
    unrelated_pairs,
)


def test_path_barrier_is_the_largest_drop_below_the_line_joining_the_ends() -> None:
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    accuracy = [0.9, 0.8, 0.5, 0.6, 0.7]  # the line: 0.9, 0.85, 0.8, 0.75, 0.7
    assert path_barrier(accuracy, alphas, higher_is_better=True) == pytest.approx(0.3)
    loss = [1.0, 1.5, 3.0, 2.5, 2.0]  # the line: 1.0, 1.25, 1.5, 1.75, 2.0
    assert path_barrier(loss, alphas, higher_is_better=False) == pytest.approx(1.5)
    assert path_barrier([0.9, 0.95, 0.8], [0.0, 0.5, 1.0], higher_is_better=True) == 0.0  # above the line


def test_lineage_follows_parents_through_the_family_cards(family) -> None:
    linf = next(i for i in family.ingredients if i.card.threat == "linf")
    chains = lineage(family)
    assert chains["test-l2"] == [family.ingredients[2].card.content_hash, linf.card.content_hash]
    assert shared_base(family, "test-l2", "test-l1") == "test-linf"
    assert shared_base(family, "test-linf", "test-none") == "test-linf"
    assert unrelated_pairs(family) == []


def permuted(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """The same function with the last stage's hidden and output channels permuted."""
    generator = torch.Generator().manual_seed(seed)
    out, hidden = torch.randperm(192, generator=generator), torch.randperm(192, generator=generator)
    state = {key: value.clone() for key, value in state.items()}
    norms = ("weight", "bias", "running_mean", "running_var")
    for key in ["layer4.0.conv1.weight", *(f"layer4.0.bn2.{n}" for n in norms)]:
        state[key] = state[key][hidden]
    state["layer4.0.conv2.weight"] = state["layer4.0.conv2.weight"][:, hidden]
    for key in ["layer4.0.conv2.weight", "layer4.0.shortcut.0.weight", *(f"bn.{n}" for n in norms)]:
        state[key] = state[key][out]
    state["linear.weight"] = state["linear.weight"][:, out]
    return state


@pytest.fixture
def two_bases(tmp_path: Path) -> tuple[Path, ImageSet]:
    """'a', 'a-copy' (bit-identical) and 'a-permuted' (same function, other weights, no shared base)."""
    torch.manual_seed(0)
    model = create_model("preact_resnet_small").eval()
    with torch.no_grad():  # a decisive head, so the images the model labels are far from its boundaries
        model.linear.weight.mul_(20)
    state = model.state_dict()
    folder = tmp_path / "family"
    a = Card(name="a", arch="preact_resnet_small", threat="linf")
    save_checkpoint(state, a, folder)
    save_checkpoint(
        state,
        Card(
            name="a-copy",
            arch="preact_resnet_small",
            threat="linf",
            parent={"name": "a", "content_hash": a.content_hash},
        ),
        folder,
    )
    save_checkpoint(permuted(state), Card(name="a-permuted", arch="preact_resnet_small", threat="l2"), folder)
    pixels = torch.randint(0, 256, (64, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    with torch.no_grad():
        labels = model(pixels.float() / 255).argmax(1)
    return folder, ImageSet(pixels, labels, CIFAR10_CLASSES, "labelled by a")


def test_identical_ingredients_soup_and_a_permuted_copy_does_not(two_bases) -> None:
    folder, images = two_bases
    family = load_family(folder)
    report = measure_soupability(family, images, points=5)
    same, permuted_pair = report.pair("a", "a-copy"), report.pair("a", "a-permuted")
    assert same.accuracies == [1.0] * 5 and same.loss_barrier == pytest.approx(0, abs=1e-5)
    assert same.verdict == SOUPS_WELL and same.base == "a"
    assert permuted_pair.accuracies[0] == permuted_pair.accuracies[-1] == 1.0  # one function at both ends
    assert permuted_pair.accuracy_barrier > 0.1 and permuted_pair.verdict == DO_NOT_MIX
    assert permuted_pair.base is None and ("a", "a-permuted") in unrelated_pairs(family)
    assert "Do not mix a–a-permuted" in report.summary() and "no shared base" in report.summary()
    cells = {row["ingredient"]: row for row in report.matrix()}
    assert cells["a"]["a"] == "—" and cells["a-permuted"]["a"].startswith(DO_NOT_MIX)


def test_cli_check_prints_every_pair_and_a_verdict(tmp_path: Path, family_folder: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("app_setup", Path(__file__).parents[1] / "app" / "_setup.py")
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    data = setup.make_image_folder(tmp_path / "cifar", {"test": 20})
    assert (
        main(["check", str(family_folder), "--data", str(data), "--images", "16", "--points", "3", "--device", "cpu"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("test-linf") >= 3 and "on 16 test images" in out
    assert main(["check", str(family_folder), "--points", "2"]) == 2
