"""WideResNets (Zagoruyko & Komodakis) in RobustBench's layout and parameter names: WRN-28-10,
the soups paper's CIFAR-10 architecture, and WRN-34-10 (TRADES, MART, AWP entries). RobustBench's
WideResNets built with `sub_block1=True` hold a `sub_block1` their forward never calls;
`checkpoints.foreign_formats` drops its keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.models.classifier import ImageClassifier
from soupviz.models.registry import register_model


class WideBasicBlock(nn.Module):
    """WideResNet block in the layout of RobustBench's WideResNet (bn-relu-conv twice)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equal_in_out = in_planes == out_planes
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        shortcut = x if self.equal_in_out else self.convShortcut(activated)
        out = self.conv1(activated)
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + shortcut


class NetworkBlock(nn.Module):
    def __init__(self, count: int, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[
                WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                for i in range(count)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(ImageClassifier):
    """WideResNet-depth-widen (Zagoruyko & Komodakis), RobustBench parameter names."""

    def __init__(self, depth: int, widen: int, num_classes: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__(mean, std)
        channels = [16, 16 * widen, 32 * widen, 64 * widen]
        count = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, channels[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(count, channels[0], channels[1], 1)
        self.block2 = NetworkBlock(count, channels[1], channels[2], 2)
        self.block3 = NetworkBlock(count, channels[2], channels[3], 2)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU(inplace=False)
        self.fc = nn.Linear(channels[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(self.normalize(x)))))
        out = F.adaptive_avg_pool2d(self.relu(self.bn1(out)), 1).flatten(1)
        return self.fc(out)


@register_model("wide_resnet28_10")
def wide_resnet28_10(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """WideResNet-28-10 (36.5M parameters), the soups paper's CIFAR-10 architecture."""
    return WideResNet(28, 10, num_classes, **norm)


@register_model("wide_resnet34_10")
def wide_resnet34_10(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """WideResNet-34-10 (46.2M parameters) in RobustBench's layout (TRADES, MART, AWP entries)."""
    return WideResNet(34, 10, num_classes, **norm)
