"""Architecture registry and the classifiers it builds.

Every classifier takes images in [0, 1] and normalises them itself (mean/std are
non-persistent buffers, recorded in the checkpoint card), so attack budgets are always in
pixel space. Parameter names follow the public robust CIFAR-10 checkpoints (RobustBench's
PreActResNet-18 and WideResNet-28-10) so a user's downloaded weights load as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.errors import CheckpointError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding an architecture constructor to the registry under `name`."""

    def decorate(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = constructor
        return constructor

    return decorate


def available_models() -> list[str]:
    """Names accepted by `create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(
    name: str,
    num_classes: int = 10,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> nn.Module:
    """Build the registered architecture `name` for inputs in [0, 1].

    Args:
        name: a name from `available_models()`.
        num_classes: size of the output layer.
        mean, std: per-channel normalisation applied inside the model.
    """
    if name not in _REGISTRY:
        raise CheckpointError(f"Unknown architecture {name!r}: choose one of {', '.join(available_models())}.")
    return _REGISTRY[name](num_classes=num_classes, mean=mean, std=std)


class ImageClassifier(nn.Module):
    """Base class: holds the input normalisation as non-persistent buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_std


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


@register_model("test_preact_resnet")
def test_preact_resnet(num_classes: int = 10, **norm: Sequence[float]) -> nn.Module:
    """A test-only architecture, as timm registers its `test_*` models: two pre-activation stages
    (widths 8 and 16, 5.2k parameters) with the shipped architecture's parameter names and
    BatchNorm layout, so the test suite builds, saves, soups and attacks families in milliseconds.
    Registered here rather than in the tests so that a dashboard started in a subprocess loads it."""
    return PreActResNet([1, 1], [8, 16], num_classes, **norm)


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

