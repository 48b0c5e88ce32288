"""The base class every attack subclasses: eval mode, devices, seeds and the [0, 1] contract.

Subclasses implement only `perturb(x, y, target)`; `__call__` checks inputs, puts a module
into eval mode for the attack and restores its mode afterwards, and seeds the randomness.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from soupviz.errors import SoupvizError

THREATS = ("linf", "l2", "l1")
DEFAULT_BUDGETS = {"linf": 8 / 255, "l2": 0.5, "l1": 12.0}
THREAT_LABELS = {"linf": "L∞", "l2": "L2", "l1": "L1"}

Classifier = Callable[[torch.Tensor], torch.Tensor]


def check_threat(threat: str) -> str:
    """Return `threat` if known, else raise a clear error."""
    if threat not in THREATS:
        raise SoupvizError(f"Unknown threat model {threat!r}: use one of {', '.join(THREATS)}.")
    return threat


def format_budget(threat: str, eps: float) -> str:
    """Budget as researchers write it: 8/255 for L∞ multiples of 1/255, else a decimal."""
    if threat == "linf" and abs(eps * 255 - round(eps * 255)) < 1e-6:
        return f"{round(eps * 255)}/255"
    return f"{eps:g}"


class Attack:
    """Base attack: a classifier (module or callable mapping [0, 1] images to logits) and a
    threat model with budget `eps` in pixel scale.

    Args:
        model: the classifier; an `nn.Module` is switched to eval mode while attacked.
        threat: 'linf', 'l2' or 'l1'.
        eps: budget of the perturbation norm, pixels in [0, 1].
        seed: seed for every random choice, so a call is deterministic.
    """

    name = "attack"

    def __init__(self, model: Classifier, threat: str, eps: float, seed: int = 0) -> None:
        self.model = model
        self.threat = check_threat(threat)
        if not eps > 0:
            raise SoupvizError(f"The attack budget must be positive, got eps={eps}.")
        self.eps = float(eps)
        self.seed = seed

    def __call__(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Return adversarial images for images `x` (N, C, H, W) in [0, 1] with labels `y` (N,).

        With `target` (N,) the attack is targeted: it pushes towards that class instead of
        away from `y`. The result is detached and lies in the budget and the [0, 1] box.
        """
        if x.min() < 0 or x.max() > 1:
            raise SoupvizError("Attack inputs must be images with pixels in [0, 1].")
        was_training = isinstance(self.model, nn.Module) and self.model.training
        if isinstance(self.model, nn.Module):
            self.model.eval()
        try:
            with torch.enable_grad():
                return self.perturb(x.detach(), y.detach(), None if target is None else target.detach()).detach()
        finally:
            if was_training:
                self.model.train()

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def generator(self, device: torch.device) -> torch.Generator:
        """A fresh generator on `device` seeded with the attack's seed."""
        return torch.Generator(device=device).manual_seed(self.seed)

    def describe(self) -> str:
        """A label naming the attack, its settings and budget, e.g. 'PGD-20 L∞ 8/255'."""
        return f"{self.name} {THREAT_LABELS[self.threat]} {format_budget(self.threat, self.eps)}"
