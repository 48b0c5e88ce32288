"""`soupviz check` on the shipped family and real CIFAR-10 test images (skipped where absent):
every pair of ingredients descends from the L∞ base and soups well on the default 1,000 images,
with each end's accuracy and each barrier's interval shown, as the results file the README quotes
says; the shipped unrelated network (same architecture, trained from scratch with another seed) is
cut off from each of them by a clear barrier, even on 64 images."""

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


def test_shipped_family_soups_well(cifar_folder: Path, capsys) -> None:
    assert main(["check", str(SHIPPED), "--data", str(cifar_folder), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    ends = [line for line in lines if line.split()[:1] in (["nominal"], ["linf"], ["l2"], ["l1"]) and " – " not in line]
    assert len(ends) == 4 and all(0.6 < float(line.split()[1].rstrip("%")) / 100 < 0.9 for line in ends)
    pairs = [line for line in lines if " – " in line]
    assert len(pairs) == 6 and all("linf" in line.split()[3] and line.endswith("soups well") for line in pairs)
    assert all(line.count("[") == 2 for line in pairs) and "on 1000 test images" in out
    assert "Every pair soups well" in out
    recorded = (SHIPPED / "check_results.txt").read_text()  # the README quotes this file
    assert recorded.split("\n", 2)[2].strip() == out.strip()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    nominal_l2 = next(line for line in pairs if line.startswith("nominal – l2")).split()
    assert f"{nominal_l2[7]} {nominal_l2[8]} {nominal_l2[9]}" in readme


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
