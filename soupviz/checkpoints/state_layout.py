"""The one "same keys and shapes" check: how a state dict differs from an expected layout (an
architecture's, or another ingredient's), and the sentence that says so with both shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

Shapes = Mapping[str, "tuple[int, ...] | torch.Size | torch.Tensor"]


def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)


@dataclass
class LayoutDifference:
    """Keys the expected layout has and the state lacks, keys it does not expect, and keys whose
    shapes differ as (key, expected shape, found shape); all empty when they fit."""

    missing: list[str]
    unexpected: list[str]
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    @property
    def size(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.shapes)

    def detail(self) -> str:
        """The first difference in words, e.g. "shape (10, 64) for 'fc.weight' where (10, 640) is
        expected" or "missing keys ['fc.weight', 'fc.bias']"."""
        if self.shapes:
            key, expected, found = self.shapes[0]
            return f"shape {found} for {key!r} where {expected} is expected"
        if self.missing:
            return f"missing keys {self.missing[:3]}"
        return f"unexpected keys {self.unexpected[:3]}"


def layout_difference(expected: Shapes, found: Shapes) -> LayoutDifference:
    """How `found` (a state dict, or key -> shape) differs from `expected`, in `expected`'s order."""
    return LayoutDifference(
        [key for key in expected if key not in found],
        [key for key in found if key not in expected],
        [
            (key, _shape(value), _shape(found[key]))
            for key, value in expected.items()
            if key in found and _shape(found[key]) != _shape(value)
        ],
    )
