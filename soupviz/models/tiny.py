"""The test-only architecture: a two-stage pre-activation ResNet of 5.2k parameters."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from soupviz.models.preact_resnet import PreActResNet
from soupviz.models.registry import register_model


@register_model("test_preact_resnet")
def test_preact_resnet(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """A test-only architecture, as timm registers its `test_*` models: two pre-activation stages
    (widths 8 and 16, 5.2k parameters) with the shipped architecture's parameter names and
    BatchNorm layout, so the test suite builds, saves, soups and attacks families in milliseconds.
    Registered here rather than in the tests so that a dashboard started in a subprocess loads it."""
    return PreActResNet([1, 1], [8, 16], num_classes, **norm)
