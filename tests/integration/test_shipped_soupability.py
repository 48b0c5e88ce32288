"""`soupviz check` on the shipped family and real CIFAR-10 test images (skipped where absent):
every pair of ingredients descends from the L∞ base and soups well."""

from __future__ import annotations

from pathlib import Path

from soupviz.app_state import FAMILIES_DIR
from soupviz.cli import main

SHIPPED = FAMILIES_DIR / "cifar10-preact_resnet_small"


def test_shipped_family_soups_well(cifar_folder: Path, capsys) -> None:
    assert main(["check", str(SHIPPED), "--data", str(cifar_folder), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pairs = [line for line in lines if " – " in line]
    assert len(pairs) == 6 and all("linf" in line.split()[3] and line.endswith("soups well") for line in pairs)
    assert "Every pair soups well" in "\n".join(lines)
