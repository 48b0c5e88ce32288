"""WideResNets in DeepMind's layout with Swish, in their parameter names so downloaded weights load
unchanged: WRN-28-10 and WRN-70-16, the zoo's top entries (Gowal et al., Rebuffi et al., Wang et
al.) and the CIFAR-10 soups of Croce et al.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.models.classifier import ImageClassifier
from soupviz.models.registry import register_model


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
