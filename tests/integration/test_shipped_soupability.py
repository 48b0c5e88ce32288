"""`soupviz check` on the shipped family and real CIFAR-10 test images (skipped where absent):
every pair of ingredients descends from the L∞ base and soups well on the default 1,000 images,
with each end's accuracy and each barrier's interval shown, as the results file the README quotes
says; the command reproduces its recorded output live at 256 images (a quarter of the default's
cost; the same code and checkpoints, and the README's "cannot tell at 256"); the shipped unrelated
network (same architecture, trained from scratch with another seed) is cut off from each of them by
a clear barrier, even on 64 images."""

from __future__ import annotations

from pathlib import Path

import pytest

from soupviz.checkpoints.families import load_checkpoint, load_family
from soupviz.cli import main
from soupviz.data import load_split
from soupviz.evaluate.soupability import DO_NOT_MIX, SHIPPED_OUTSIDER, measure_against
from soupviz.serve.settings import FAMILIES_DIR

pytestmark = pytest.mark.slow  # the shipped models on real images

SHIPPED = FAMILIES_DIR / "cifar10-preact_resnet_small"


def recorded_check(name: str) -> tuple[str, str]:
    """The command line and the printed report of a check results file beside the shipped family."""
    command, _, report = (SHIPPED / name).read_text().partition("\n\n")
    return command, report.strip()


def test_shipped_family_soups_well_on_the_default_images() -> None:
    command, out = recorded_check("check_results.txt")  # the README quotes this file
    assert command == f"$ soupviz check {SHIPPED.relative_to(SHIPPED.parents[2])} --output " \
        f"{SHIPPED.relative_to(SHIPPED.parents[2])}/check_results.txt"  # the default image count
    lines = out.splitlines()
    ends = [line for line in lines if line.split()[:1] in (["nominal"], ["linf"], ["l2"], ["l1"]) and " – " not in line]
    assert len(ends) == 4 and all(0.6 < float(line.split()[1].rstrip("%")) / 100 < 0.9 for line in ends)
    pairs = [line for line in lines if " – " in line]
    assert len(pairs) == 6 and all("linf" in line.split()[3] and line.endswith("soups well") for line in pairs)
    assert all(line.count("[") == 2 for line in pairs) and "on 1000 test images" in out
    assert "Every pair soups well" in out
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    nominal_l2 = next(line for line in pairs if line.startswith("nominal – l2")).split()
    assert f"{nominal_l2[7]} {nominal_l2[8]} {nominal_l2[9]}" in readme


def test_check_reproduces_its_recorded_report_on_the_shipped_family(cifar_folder: Path, capsys) -> None:
    """The recorded reports are what the code and checkpoints give now: the 256-image one, live
    (the 1,000-image one differs only in the image count, at four times the cost)."""
    command, recorded = recorded_check("check_results_256.txt")
    assert "--images 256" in command
    assert main(["check", str(SHIPPED), "--images", "256", "--data", str(cifar_folder), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == recorded
    assert "cannot tell" in next(line for line in recorded.splitlines() if line.startswith("nominal – l2"))


def test_the_unrelated_network_is_cut_off_from_every_ingredient(cifar_folder: Path) -> None:
    family, outsider = load_family(SHIPPED), load_checkpoint(SHIPPED_OUTSIDER)
    images = load_split(cifar_folder, "test").subset(64, 0)
    report = measure_against(family, outsider, images, points=7)
    assert outsider.card.parent is None and all(p.base is None for p in report.against)
    assert all(p.verdict != DO_NOT_MIX for p in report.within)  # 64 images are too few to say "soups well"
    assert all(p.verdict == DO_NOT_MIX for p in report.against)
    worst_within = max(p.accuracy_barrier for p in report.within)
    assert min(p.accuracy_barrier for p in report.against) > 0.3 > 2 * worst_within
    assert min(p.loss_barrier for p in report.against) > 4 * max(p.loss_barrier for p in report.within)
    middle = report.pair("nominal", outsider.name).accuracies[3]
    assert middle < 0.3  # the halfway soup of two ~80% networks is close to chance (10%)
