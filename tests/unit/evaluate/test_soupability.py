"""Soupability: the barrier along a straight path, by hand; ingredients of one base share a base
in their cards; identical ingredients have no barrier while a functionally identical but
permuted copy (what independent training gives) has one; small nets fine-tuned from one base
are connected while an independently trained one is not; an outside network is measured on
the same images and points as the family's pairs, starting from the nominal ingredient; `soupviz
check [--against]` prints them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import SoupFamily, load_checkpoint, load_family, save_checkpoint
from soupviz.cli import main
from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import CheckpointError
from soupviz.evaluate.soupability import (
    CANNOT_TELL,
    DO_NOT_MIX,
    SOUPS_WELL,
    PairBarrier,
    lineage,
    measure_against,
    measure_soupability,
    outsider_partner,
    path_barrier,
    shared_base,
    straight_paths,
    unrelated_pairs,
)
from soupviz.models.registry import create_model
from soupviz.soups.parameters import ParameterMatrix
from soupviz.soups.soup import Soup


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


def test_an_outsider_is_compared_first_with_the_nominal_ingredient_else_the_first(family) -> None:
    assert outsider_partner(SoupFamily("reversed", family.ingredients[::-1])) == "test-none"
    assert outsider_partner(SoupFamily("robust only", family.ingredients[1:])) == "test-linf"


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


def _setup():
    spec = importlib.util.spec_from_file_location("app_setup", Path(__file__).parents[2] / "app" / "_setup.py")
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    return setup


def test_cli_check_prints_every_pair_and_a_verdict(tmp_path: Path, family_folder: Path, capsys) -> None:
    data = _setup().make_image_folder(tmp_path / "cifar", {"test": 20})
    assert (
        main(["check", str(family_folder), "--data", str(data), "--images", "16", "--points", "3", "--device", "cpu"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("test-linf") >= 3 and "on 16 test images" in out
    assert main(["check", str(family_folder), "--points", "2"]) == 2


def checkerboard(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in [-1, 1]^2 labelled by a 4 x 4 checkerboard: a task a small MLP learns in a second."""
    x = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return x, ((x[:, 0] * 2).floor() + (x[:, 1] * 2).floor()).long() % 2


def tiny_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(2, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(32, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 2))


def trained(model: torch.nn.Module, steps: int, lr: float, seed: int) -> torch.nn.Module:
    x, y = checkerboard(1024, 100)
    generator, optimiser = torch.Generator().manual_seed(seed), torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(x), (128,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def test_fine_tunes_of_one_base_are_connected_and_an_independent_net_is_not() -> None:
    """Three small nets trained here: two fine-tuned from one base (other seeds, other batches) and
    one trained from another initialisation. All three solve the task; only the independent one
    falls off the straight path from a fine-tune, under the soups' BatchNorm rule."""
    torch.set_num_threads(1)
    base = trained(tiny_net(0), 200, 0.01, seed=0)
    tunes = []
    for seed in (1, 2):
        tune = tiny_net(0)
        tune.load_state_dict(base.state_dict())
        tunes.append(trained(tune, 50, 0.002, seed))
    independent = trained(tiny_net(7), 200, 0.01, seed=7)
    states = [model.state_dict() for model in (*tunes, independent)]
    soup = Soup(tiny_net(0), ParameterMatrix.from_state_dicts(states, names=["tune1", "tune2", "independent"]))
    x, y = checkerboard(512, 999)
    (related, unrelated), _, _ = straight_paths(soup, [(0, 1), (0, 2)], x, y, points=7)
    assert min(related.accuracies[0], related.accuracies[-1], unrelated.accuracies[-1]) > 0.8  # all trained
    assert related.accuracy_barrier < 0.03 and related.loss_barrier < 0.05 and related.verdict == SOUPS_WELL
    assert unrelated.accuracy_barrier > 0.25 and unrelated.loss_barrier > 0.3 and unrelated.verdict == DO_NOT_MIX
    assert min(unrelated.accuracies) < 0.65  # near chance (0.5) in the middle


def outside_network(folder: Path, name: str = "outsider", arch: str = "test_preact_resnet") -> Path:
    """A checkpoint outside the test family: its base network (no card names it as a parent), or a
    random network of another `arch`."""
    varied = arch == "test_preact_resnet"
    state = _setup()._root_conftest().varied_base(arch) if varied else create_model(arch).state_dict()
    return save_checkpoint(state, Card(name=name, arch=arch, threat="none"), folder)


def test_measure_against_adds_each_ingredients_path_to_the_outsider(family, synthetic_images, tmp_path) -> None:
    outsider = load_checkpoint(outside_network(tmp_path / "out"))
    report = measure_against(family, outsider, synthetic_images.subset(16), points=3)
    within = measure_soupability(family, synthetic_images.subset(16), points=3)
    assert [(p.a, p.b) for p in report.within] == [(p.a, p.b) for p in within.pairs]
    flat = [loss for p in within.pairs for loss in p.losses]
    assert [loss for p in report.within for loss in p.losses] == pytest.approx(flat, abs=1e-5)
    assert [(p.a, p.b, p.base) for p in report.against] == [(n, "outsider", None) for n in family.names]
    assert all(p.near_chance and p.verdict == CANNOT_TELL for p in report.pairs)  # random nets: chance level
    assert report.summary().startswith("Cannot tell for") and "outsider" in report.summary()
    assert "log space" in report.caption() and report.images == 16


def test_measure_against_refuses_another_architecture_or_an_ingredients_name(family, synthetic_images, tmp_path):
    other = load_checkpoint(outside_network(tmp_path / "a", arch="preact_resnet18"))
    with pytest.raises(CheckpointError, match="is a preact_resnet18 but the family"):
        measure_against(family, other, synthetic_images, points=3)
    twin = load_checkpoint(outside_network(tmp_path / "b", name="test-l2"))
    with pytest.raises(CheckpointError, match="named 'test-l2' like an ingredient"):
        measure_against(family, twin, synthetic_images, points=3)


def test_cli_check_against_prints_each_ingredient_against_the_outsider(tmp_path, family_folder, capsys) -> None:
    data = _setup().make_image_folder(tmp_path / "cifar", {"test": 20})
    outsider = outside_network(tmp_path / "out")
    argv = ["check", str(family_folder), "--against", str(outsider), "--data", str(data), "--images", "8"]
    assert main([*argv, "--points", "3", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    against = [line for line in lines if " – outsider" in line]
    assert [line.split()[0] for line in against] == load_family(family_folder).names
    assert all(" none " in line for line in against)
    assert any(line.startswith("Cannot tell for") and "outsider" in line for line in lines)  # random nets


def test_batchnorm_can_be_re_estimated_and_the_caption_says_so(two_bases) -> None:
    folder, images = two_bases
    family = load_family(folder)
    calibration = images.floats()[:32]
    report = measure_soupability(family, images, points=3, calibration=calibration)
    assert "re-estimated per soup on 32 clean training images" in report.caption()
    same = report.pair("a", "a-copy")
    assert same.loss_barrier == pytest.approx(0, abs=1e-5) and len(set(same.losses)) == 1
    mixed = measure_soupability(family, images, points=3)
    assert report.pair("a", "a-permuted").losses[1] != pytest.approx(mixed.pair("a", "a-permuted").losses[1])


def test_two_independent_random_inits_cannot_tell_and_check_shows_the_ends(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "random"
    for seed in (1, 2):
        torch.manual_seed(seed)
        save_checkpoint(create_model("preact_resnet_small").state_dict(),
                        Card(name=f"init{seed}", arch="preact_resnet_small", threat="none"), folder)
    data = _setup().make_image_folder(tmp_path / "cifar", {"test": 40})
    argv = ["check", str(folder), "--data", str(data), "--images", "40", "--points", "3", "--device", "cpu"]
    assert main([*argv, "--output", str(tmp_path / "check.txt")]) == 0
    out = capsys.readouterr().out
    assert "clean accuracy" in out and out.count("init1") >= 2  # its own row and the pair's
    assert "cannot tell (no shared base)" in out and "none" in out and "soups well" not in out.split("\n\n")[1]
    assert "Cannot tell for init1–init2" in out and "near chance" in out
    assert (tmp_path / "check.txt").read_text().startswith("$ soupviz ")


def test_a_barrier_interval_across_its_limit_cannot_tell() -> None:
    def pair(interval):
        return PairBarrier("a", "b", [0, 0.5, 1], [0.5, 0.6, 0.5], [0.8, 0.75, 0.8], "a", (0.0, 0.2), interval)

    assert pair((0.02, 0.08)).verdict == SOUPS_WELL
    assert pair((0.05, 0.15)).verdict == CANNOT_TELL
    assert pair((0.11, 0.2)).verdict == DO_NOT_MIX
    assert PairBarrier("a", "b", [0, 1], [2.3, 2.3], [0.1, 0.9], "a").verdict == CANNOT_TELL  # an end near chance
