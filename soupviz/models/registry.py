"""The architecture registry: names mapped to builders, and `create_model`, the one factory.

Each architecture family lives in its own file of this folder and registers its builders with
`register_model`; `soupviz/models/__init__.py` imports every family file, so a name is known
whichever module a caller imports. Every classifier takes images in [0, 1] and normalises them
itself (`classifier.ImageClassifier`), so attack budgets are always in pixel space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
