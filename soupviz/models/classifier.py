"""The base of every registered classifier: input normalisation held inside the model.

Mean and std are non-persistent buffers (recorded in the checkpoint card, not the state dict),
so a model takes images in [0, 1] and attack budgets are always in pixel space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ImageClassifier(nn.Module):
    """Base class: holds the input normalisation as non-persistent buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_std
