"""Per-example losses that attacks maximise, and the test of whether an attack succeeded.

Cross-entropy and the DLR loss of Croce & Hein (2020), untargeted and targeted, in the same
form as AutoAttack's APGD so our attacks and theirs optimise the same objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from soupviz.errors import SoupvizError


def is_success(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per example (N,): misclassified (untargeted), or classified as `target` (targeted)."""
    prediction = logits.argmax(dim=1)
    return prediction != y if target is None else prediction == target


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted DLR: −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3), per example (N,).

    Invariant to shifting and rescaling the logits; needs at least 3 classes.
    """
    ordered = logits.sort(dim=1).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    top_is_true = logits.argmax(dim=1) == y
    other = torch.where(top_is_true, ordered[:, -2], ordered[:, -1])
    return -(true - other) / (ordered[:, -1] - ordered[:, -3] + 1e-12)


def dlr_loss_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2), per example (N,); needs 4 classes."""
    ordered = logits.sort(dim=1).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    wanted = logits.gather(1, target[:, None]).squeeze(1)
    return -(true - wanted) / (ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12)


def attack_loss(name: str, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """The per-example loss an attack maximises (N,).

    Args:
        name: 'ce' or 'dlr'.
        logits: model outputs (N, classes).
        y: true labels (N,).
        target: classes to push towards (N,), or None for an untargeted attack. Targeted CE
            is −CE(target); targeted DLR is APGD-T's loss.
    """
    if name == "ce":
        if target is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, target, reduction="none")
    needed = 3 if target is None else 4
    if logits.shape[1] < needed:
        raise SoupvizError(
            f"The {'targeted ' if target is not None else ''}DLR loss needs at least {needed} "
            f"classes, the model has {logits.shape[1]}; use the 'ce' loss."
        )
    if target is None:
        return dlr_loss(logits, y)
    return dlr_loss_targeted(logits, y, target)
