"""The shipped family outside the simplex, on real CIFAR-10 test images: every soup of the paper's
extrapolation grid gives finite logits with BatchNorm variances mixed in log space, and the
linear rule refuses exactly the soups it would turn into NaN (skipped where the data is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from soupviz.checkpoints.families import load_family
from soupviz.data import load_split
from soupviz.errors import SoupWeightsError
from soupviz.soups.soup import Soup
from soupviz.soups.weights import simplex_grid

SHIPPED = Path(__file__).parents[2] / "assets" / "families" / "cifar10-preact_resnet_small"
pytestmark = pytest.mark.slow  # 480 soups of a ResNet: about 20 s on one CPU core


def test_every_soup_of_the_paper_extrapolation_grid_gives_finite_logits(cifar_folder: Path) -> None:
    soup = Soup.from_family(load_family(SHIPPED))
    x = load_split(str(cifar_folder), "test").subset(16, 0).floats()
    grid = simplex_grid(4, 0.2, margin=0.4)  # each weight in [-0.4, 1.4]: 480 soups
    with torch.no_grad():
        logits = soup.batched_logits(grid, x, extrapolate=True, margin=0.4)
    assert logits.shape == (480, 16, 10) and soup.bn_mode == "mix"
    assert torch.isfinite(logits).all()

    mixed_linearly = grid.float() @ soup.params.matrix[:, soup.params.variances]
    refused = (mixed_linearly <= 0).any(1)
    assert int(refused.sum()) == 243  # the soups that gave NaN when variances were mixed linearly
    soup.mix_batchnorm(linear=True)
    with pytest.raises(SoupWeightsError, match="variance <= 0"):
        soup.batched_logits(grid[refused][:1], x, extrapolate=True, margin=0.4)
    with torch.no_grad():
        kept = soup.batched_logits(grid[~refused][:8], x, extrapolate=True, margin=0.4)
    assert torch.isfinite(kept).all()
