"""Which torch device to run on: the GPU when there is one, the CPU otherwise."""

from __future__ import annotations

import torch

from soupviz.errors import SoupvizError


def pick_device(requested: str | None = None) -> torch.device:
    """Return the device to compute on.

    Args:
        requested: "auto" or None picks CUDA when available, else CPU; "cpu", "cuda" or
            "cuda:N" force one, with a clear error when CUDA is asked for but absent.
    """
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SoupvizError(f"Device {requested!r} was asked for but no CUDA GPU is available; use 'cpu' or 'auto'.")
    return device


def describe_device(device: torch.device) -> str:
    """A short human name for the device: the GPU's model, or 'CPU (N threads)'."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"
