"""The base class every attack subclasses: input checks, eval mode, devices, seeds, labels.

Subclasses implement only `perturb(x, y, target)`; `__call__` checks the inputs, puts a module
into eval mode for the attack and restores every submodule's mode afterwards, and hands the
subclass contiguous tensors on the images' device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import nn

from soupviz.errors import SoupvizError
from soupviz.progress import ShareCallback
from soupviz.threats import check_threat, threat_label

Classifier = Callable[[torch.Tensor], torch.Tensor]


def _ignore(share: float) -> None:
    """A `ShareCallback` that ignores the share."""


def fixed_batch(model: Classifier) -> bool:
    """Whether `model` needs every batch whole (it sets `model.fixed_batch = True`).

    A callable that folds S soups into the batch dimension reads example i as soup i // N, so
    attacks must not drop examples from its batch: they then attack the whole batch every
    time and only keep the results of the examples that needed them.
    """
    return bool(getattr(model, "fixed_batch", False))


class eval_mode:
    """Context manager: `model` (if an `nn.Module`) in eval mode, each submodule's own mode
    restored on exit (a frozen BatchNorm inside a training model stays frozen)."""

    def __init__(self, model: Classifier) -> None:
        self.modules = list(model.modules()) if isinstance(model, nn.Module) else []
        self.modes: list[bool] = []

    def __enter__(self) -> None:
        self.modes = [module.training for module in self.modules]
        if self.modules:
            self.modules[0].eval()  # the root: its own train() override runs, if any

    def __exit__(self, *exc: object) -> None:
        for module, mode in zip(self.modules, self.modes, strict=True):
            module.training = mode


def check_batch(x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> None:
    """Raise a `SoupvizError` naming the problem if (x, y, target) is not a valid batch."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise SoupvizError("Attack inputs must be a float tensor of images (N, C, H, W) in [0, 1].")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise SoupvizError("Attack inputs must be images with finite pixels in [0, 1].")
    for name, labels in (("labels", y), ("target classes", target)):
        if labels is None:
            continue
        if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.shape != x.shape[:1]:
            raise SoupvizError(
                f"The {name} must be an integer tensor of shape ({x.shape[0]},), one per image; "
                f"got {getattr(labels, 'shape', type(labels).__name__)}."
            )


class Attack(ABC):
    """Base attack: a classifier (module or callable mapping [0, 1] images to logits) and a
    threat model with budget `eps` in pixel scale.

    Robust accuracy measured with an attack is an upper bound on the true robust accuracy;
    `describe()` names the attack, its iterations and budget for every such number.

    Args:
        model: the classifier; an `nn.Module` is switched to eval mode while attacked.
        threat: 'linf', 'l2' or 'l1'.
        eps: budget of the perturbation norm, pixels in [0, 1].
        seed: seed for every random choice, so a call is deterministic.
    """

    name = "attack"

    def __init__(self, model: Classifier, threat: str, eps: float, seed: int = 0) -> None:
        if not callable(model):
            raise SoupvizError(f"The model to attack must be callable (images -> logits), got {type(model).__name__}.")
        self.model = model
        self.threat = check_threat(threat)
        if not eps > 0:
            raise SoupvizError(f"The attack budget must be positive, got eps={eps}.")
        self.eps = float(eps)
        self.seed = int(seed)
        self.report: ShareCallback = _ignore  # during a call: its `progress`, for subclasses to tell

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
        progress: ShareCallback | None = None,
    ) -> torch.Tensor:
        """Return adversarial images for images `x` (N, C, H, W) in [0, 1] with labels `y` (N,).

        With `target` (N,) the attack is targeted: it pushes towards that class instead of
        away from `y`. The result is detached, on `x`'s device, inside the budget and the
        [0, 1] box; an example the attack does not break may come back unchanged. An attack
        that runs long on one batch (AutoAttack, APGD) calls `progress` with the share of its
        planned iterations run so far, so a bar can move inside a batch; it never changes the result.
        """
        check_batch(x, y, target)
        weight = next(self.model.parameters(), None) if isinstance(self.model, nn.Module) else None
        if weight is not None and weight.device != x.device:
            raise SoupvizError(
                f"The model is on {weight.device} but the images are on {x.device}; move both to one device."
            )
        x = x.detach().contiguous()
        y = y.detach().to(x.device, torch.long)
        target = None if target is None else target.detach().to(x.device, torch.long)
        if x.shape[0] == 0:
            return x.clone()
        self.report = progress or _ignore
        try:
            with eval_mode(self.model), torch.enable_grad():
                return self.perturb(x, y, target).detach()
        finally:
            self.report = _ignore

    @abstractmethod
    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Subclasses: adversarial images for checked inputs (see `__call__`)."""

    def generator(self, device: torch.device) -> torch.Generator:
        """A fresh generator on `device` seeded with the attack's seed."""
        return torch.Generator(device=device).manual_seed(self.seed)

    def attack_name(self) -> str:
        """The attack and its settings without the budget, e.g. 'PGD-20' (`attacks.names`)."""
        return self.name

    def describe(self) -> str:
        """A label naming the attack, its settings and budget, e.g. 'PGD-20 L∞ 8/255'."""
        return f"{self.attack_name()} {threat_label(self.threat, self.eps)}"
