"""Post-activation ResNets for 32x32 inputs in the MadryLab `robustness` library's CIFAR layout and
parameter names: ResNet-18 and ResNet-50 (its robust CIFAR-10 checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.models.classifier import ImageClassifier
from soupviz.models.registry import register_model


class ResNetBlock(nn.Module):
    """Post-activation basic (two 3x3) or bottleneck (1x1-3x3-1x1, 4x wider out) block, in the
    `robustness` library's CIFAR layout (shortcut = conv + BatchNorm when shapes change)."""

    def __init__(self, in_planes: int, planes: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        out_planes = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out_planes)
        else:
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(planes), nn.BatchNorm2d(planes)
        self.bottleneck = bottleneck
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(F.relu(out)))
        return F.relu(out + self.shortcut(x))


class ResNet(ImageClassifier):
    """ResNet for 32x32 inputs (3x3 stem, no max-pool), `robustness.cifar_models` names."""

    def __init__(
        self, blocks: Sequence[int], bottleneck: bool, num_classes: int, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        super().__init__(mean, std)
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        for stage, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
            layers = []
            for index in range(count):
                layers.append(ResNetBlock(in_planes, planes, 2 if stage and not index else 1, bottleneck))
                in_planes = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("resnet18")
def resnet18(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """ResNet-18 (11.2M parameters) in the `robustness` library's CIFAR layout."""
    return ResNet([2, 2, 2, 2], False, num_classes, **norm)


@register_model("resnet50")
def resnet50(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """ResNet-50 (23.5M parameters), MadryLab's robust CIFAR-10 checkpoints' architecture."""
    return ResNet([3, 4, 6, 3], True, num_classes, **norm)
