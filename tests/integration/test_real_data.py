"""The real CIFAR-10 copy beside the project (skipped where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from soupviz.data import load_split

pytestmark = pytest.mark.slow  # decodes the real test split


def test_real_cifar_test_split(cifar_folder: Path) -> None:
    test = load_split(str(cifar_folder), "test")
    assert len(test) == 10000 and test.classes[0] == "airplane"
    assert torch.bincount(test.labels).tolist() == [1000] * 10
