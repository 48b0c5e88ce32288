"""Pre-activation ResNets (He et al. 2016) in RobustBench's parameter names: the shipped family's
`preact_resnet_small`, PreActResNet-18 at full and half width (RobustBench's L2/corruptions
layout), and `preact_resnet18_linf`, RobustBench's L∞ layout (Wong2020Fast, Andriushchenko2020).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.models.classifier import ImageClassifier
from soupviz.models.registry import register_model


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016), RobustBench parameter names."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(ImageClassifier):
    """Pre-activation ResNet with one stage per entry of `widths`."""

    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__(mean, std)
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        in_planes = widths[0]
        for stage, (count, planes) in enumerate(zip(blocks, widths, strict=False)):
            layers = []
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(PreActBlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.num_stages = len(widths)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x))
        for stage in range(self.num_stages):
            out = getattr(self, f"layer{stage + 1}")(out)
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model("preact_resnet_small")
def preact_resnet_small(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """A narrow 4-stage pre-activation ResNet (one block per stage, widths 24-192, 0.69M
    parameters) that adversarially trains on a 2-core CPU in hours, not days."""
    return PreActResNet([1, 1, 1, 1], [24, 48, 96, 192], num_classes, **norm)


@register_model("preact_resnet18")
def preact_resnet18(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """PreActResNet-18 (11.2M parameters), the E-AT authors' CIFAR-10 default."""
    return PreActResNet([2, 2, 2, 2], [64, 128, 256, 512], num_classes, **norm)


@register_model("preact_resnet18_half")
def preact_resnet18_half(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """PreActResNet-18 at half width (widths 32-256, 2.8M parameters, 11.2 MB in float32): the
    research-scale family's architecture, small enough that five checkpoints come back from a lent
    GPU within its 8 files of 16 MiB (full width is 45 MB per model), and fast to train there."""
    return PreActResNet([2, 2, 2, 2], [32, 64, 128, 256], num_classes, **norm)


class PreActShortcutOnInputBlock(PreActBlock):
    """RobustBench's `PreActBlock` (out_shortcut=False): the same parameters as soupviz's
    `PreActBlock`, but the 1x1 shortcut convolution takes the block's input before BatchNorm and ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x) if hasattr(self, "shortcut") else x
        out = self.conv1(F.relu(self.bn1(x)))
        return self.conv2(F.relu(self.bn2(out))) + shortcut


class PreActResNetNoFinalBN(ImageClassifier):
    """RobustBench's `PreActResNet(PreActBlock, ...)` (bn_before_fc=False): four stages of
    `PreActShortcutOnInputBlock`, average pooling straight after the last block."""

    def __init__(self, blocks: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__(mean, std)
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        in_planes = 64
        for stage, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
            layers = []
            for index in range(count):
                layers.append(PreActShortcutOnInputBlock(in_planes, planes, 2 if stage and not index else 1))
                in_planes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("preact_resnet18_linf")
def preact_resnet18_linf(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """PreActResNet-18 (11.2M parameters) in RobustBench's L∞ layout (Wong2020Fast,
    Andriushchenko2020Understanding); `preact_resnet18` is its L2/corruptions layout."""
    return PreActResNetNoFinalBN([2, 2, 2, 2], num_classes, **norm)
