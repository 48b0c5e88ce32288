"""Projected gradient descent (Madry et al.) for L∞, L2 and L1 budgets.

Our own attack, for training and for interactive estimates on any classifier callable
(including a batch of soups folded into the batch dimension). Steps are the steepest ascent
directions of each norm: sign for L∞, normalised gradient for L2, and a sparse step on the
largest gradient coordinates for L1 (as in SLIDE / APGD-L1; a sign step is wrong there).
Each example keeps the first iterate that fools the model, so an iterate that succeeded is
never lost by a later step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from soupviz.attacks.base import Attack, Classifier
from soupviz.attacks.projections import project, random_start


class PGD(Attack):
    """PGD with random start and restarts, untargeted or targeted.

    Args:
        model, threat, eps, seed: see `Attack`.
        steps: gradient steps per restart.
        step_size: step length in the threat's norm, pixel scale; default 2.5·eps/steps.
        restarts: independent random starts; an example counts as broken if any restart
            breaks it.
        random_start: start from a random point of the budget instead of the clean image.
        l1_sparsity: fraction of coordinates moved by one L1 step.

    Example:
        >>> x_adv = PGD(model, "linf", 8 / 255, steps=10)(x, y)
    """

    name = "PGD"

    def __init__(
        self,
        model: Classifier,
        threat: str,
        eps: float,
        steps: int = 10,
        step_size: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        l1_sparsity: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__(model, threat, eps, seed)
        self.steps = int(steps)
        self.step_size = float(step_size) if step_size else 2.5 * self.eps / max(self.steps, 1)
        self.restarts = max(1, int(restarts))
        self.random_start = random_start
        self.l1_sparsity = l1_sparsity

    def describe(self) -> str:
        restarts = f" ×{self.restarts}" if self.restarts > 1 else ""
        return super().describe().replace(self.name, f"{self.name}-{self.steps}{restarts}", 1)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        generator = self.generator(x.device)
        best = x.clone()
        unbroken = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            if not unbroken.any():
                break
            index = unbroken.nonzero().squeeze(1)
            found, x_adv = self._run(x[index], y[index], None if target is None else target[index], generator)
            best[index] = x_adv
            unbroken[index[found]] = False
        return best

    def _run(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        delta = random_start(self.threat, x, self.eps, generator) if self.random_start else torch.zeros_like(x)
        best = x + delta
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.steps):
            delta.requires_grad_(True)
            logits = self.model(x + delta)
            success = _success(logits, y, target)
            newly = success & ~found
            best[newly] = (x + delta).detach()[newly]
            found |= success
            loss = F.cross_entropy(logits, y) if target is None else -F.cross_entropy(logits, target)
            (grad,) = torch.autograd.grad(loss, delta)
            delta = delta.detach() + self.step_size * self._direction(grad, x + delta.detach())
            delta = project(self.threat, delta, x, self.eps)
        with torch.no_grad():
            success = _success(self.model(x + delta), y, target)
        newly = success & ~found
        best[newly] = (x + delta)[newly]
        best[~(found | success)] = (x + delta)[~(found | success)]
        return found | success, best

    def _direction(self, grad: torch.Tensor, x_now: torch.Tensor) -> torch.Tensor:
        """The unit-norm steepest ascent direction of the threat's norm."""
        flat = grad.reshape(grad.shape[0], -1)
        if self.threat == "linf":
            return grad.sign()
        if self.threat == "l2":
            return (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(grad)
        can_move = ((flat > 0) & (x_now.reshape_as(flat) < 1)) | ((flat < 0) & (x_now.reshape_as(flat) > 0))
        magnitude = flat.abs() * can_move
        k = max(1, math.ceil(self.l1_sparsity * flat.shape[1]))
        threshold = magnitude.topk(k, dim=1).values[:, -1:]
        mask = (magnitude >= threshold) & (magnitude > 0)
        direction = flat.sign() * mask
        return (direction / mask.sum(dim=1, keepdim=True).clamp_min(1)).view_as(grad)


def _success(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    prediction = logits.argmax(dim=1)
    return prediction != y if target is None else prediction == target
