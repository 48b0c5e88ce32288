"""Architectures of public robust CIFAR-10 checkpoints that `models/registry.py` lacks, in their authors'
parameter names so downloaded weights load unchanged: RobustBench's WideResNet-34-10, DeepMind's
WideResNet layout with Swish (WRN-28-10 and WRN-70-16, the zoo's top entries and the CIFAR-10
soups of Croce et al.), RobustBench's L∞ PreActResNet-18 (Wong2020Fast, Andriushchenko2020), and
the MadryLab `robustness` library's ResNet-18 and ResNet-50. RobustBench's WideResNets built with
`sub_block1=True` hold a `sub_block1` their forward never calls; `foreign_formats` drops its keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.models.registry import ImageClassifier, PreActBlock, WideResNet, register_model


@register_model("wide_resnet34_10")
def wide_resnet34_10(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """WideResNet-34-10 (46.2M parameters) in RobustBench's layout (TRADES, MART, AWP entries)."""
    return WideResNet(34, 10, num_classes, **norm)


class DMBlock(nn.Module):
    """DeepMind's WideResNet block: explicit 'SAME' padding before the first convolution, so a
    stride-2 block pads (0, 1, 0, 1) as TensorFlow does; Swish activations."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(in_planes, momentum=0.01)
        self.relu_0 = nn.SiLU()
        self.conv_0 = nn.Conv2d(in_planes, out_planes, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(out_planes, momentum=0.01)
        self.relu_1 = nn.SiLU()
        self.conv_1 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.has_shortcut = in_planes != out_planes
        if self.has_shortcut:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu_0(self.batchnorm_0(x))
        shortcut = self.shortcut(activated) if self.has_shortcut else x
        padded = F.pad(activated, (1, 1, 1, 1) if self.stride == 1 else (0, 1, 0, 1))
        out = self.conv_1(self.relu_1(self.batchnorm_1(self.conv_0(padded))))
        return shortcut + out


class DMBlockGroup(nn.Module):
    def __init__(self, count: int, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            *[DMBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1) for i in range(count)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DMWideResNet(ImageClassifier):
    """WideResNet-depth-width in DeepMind's layout (`init_conv`, `layer.N.block.M`, `logits`), as
    RobustBench serves Gowal et al. 2020/2021, Rebuffi et al. 2021 and Wang et al. 2023."""

    def __init__(self, depth: int, width: int, num_classes: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__(mean, std)
        channels = [16, 16 * width, 32 * width, 64 * width]
        count = (depth - 4) // 6
        self.init_conv = nn.Conv2d(3, channels[0], 3, 1, 1, bias=False)
        self.layer = nn.Sequential(
            DMBlockGroup(count, channels[0], channels[1], 1),
            DMBlockGroup(count, channels[1], channels[2], 2),
            DMBlockGroup(count, channels[2], channels[3], 2),
        )
        self.batchnorm = nn.BatchNorm2d(channels[3], momentum=0.01)
        self.relu = nn.SiLU()
        self.logits = nn.Linear(channels[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(self.init_conv(self.normalize(x)))
        out = F.adaptive_avg_pool2d(self.relu(self.batchnorm(out)), 1).flatten(1)
        return self.logits(out)


@register_model("dm_wide_resnet28_10")
def dm_wide_resnet28_10(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """WideResNet-28-10 with Swish in DeepMind's layout (36.5M parameters)."""
    return DMWideResNet(28, 10, num_classes, **norm)


@register_model("wide_resnet70_16")
def wide_resnet70_16(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """WideResNet-70-16 with Swish in DeepMind's layout (267M parameters), RobustBench's 70-16s."""
    return DMWideResNet(70, 16, num_classes, **norm)


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
