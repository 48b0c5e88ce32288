"""Projected steepest ascent: the one perturbation loop behind the evaluation attacks (PGD,
PGD-T), the training attacks and generation.

Each step moves along the threat's steepest-ascent direction of a loss of the logits and projects
exactly onto the budget's ball and the [0, 1] box. Callers choose the start, the loss (untargeted,
targeted, or any other), an optional success test that freezes each example at its first success,
and a per-step hook that sees every iterate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from soupviz.attacks.base import Classifier, eval_mode, fixed_batch
from soupviz.attacks.projections import project

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Ascent:
    """Settings of projected steepest ascent.

    Attributes:
        threat: 'linf', 'l2' or 'l1'.
        eps: budget of the perturbation norm, pixels in [0, 1].
        steps: gradient steps.
        step_size: step length in the threat's norm, pixel scale; under the 'cosine' schedule
            the first step's, decayed to zero at step `steps`.
        schedule: 'constant' or 'cosine'.
        l1_sparsity: fraction of coordinates one L1 step moves; None moves about ⌈2.5·eps⌉, as
            many as the budget can push to the box edge (pixels move at most 1).
    """

    threat: str
    eps: float
    steps: int
    step_size: float
    schedule: str = "constant"
    l1_sparsity: float | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown step schedule {self.schedule!r}")

    def step_length(self, step: int) -> float:
        """The length of step `step` (0-based) in the threat's norm."""
        if self.schedule == "constant":
            return self.step_size
        return self.step_size * 0.5 * (1 + math.cos(math.pi * step / self.steps))

    def direction(self, grad: torch.Tensor, x_now: torch.Tensor) -> torch.Tensor:
        """The unit-norm steepest-ascent direction of `grad` (N, ...) at images `x_now`."""
        fraction = self.l1_sparsity if self.l1_sparsity is not None else 2.5 * self.eps / grad[0].numel()
        return steepest_ascent(self.threat, grad, x_now, min(1.0, fraction))


def steepest_ascent(
    threat: str, grad: torch.Tensor, x_now: torch.Tensor, l1_sparsity: float = 0.01
) -> torch.Tensor:
    """Unit-norm steepest ascent direction of `grad` for the threat's norm.

    L∞: the sign; L2: the normalised gradient; L1: a sparse step on the `l1_sparsity`
    fraction of largest-gradient coordinates that can still move inside the [0, 1] box (as in
    SLIDE / APGD-L1; a sign step is wrong there).
    """
    flat = grad.reshape(grad.shape[0], -1)
    if threat == "linf":
        return grad.sign()
    if threat == "l2":
        return (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(grad)
    pixels = x_now.reshape_as(flat)
    can_move = ((flat > 0) & (pixels < 1)) | ((flat < 0) & (pixels > 0))
    magnitude = flat.abs() * can_move
    k = max(1, math.ceil(l1_sparsity * flat.shape[1]))
    threshold = magnitude.topk(k, dim=1).values[:, -1:]
    mask = (magnitude >= threshold) & (magnitude > 0)
    direction = flat.sign() * mask
    return (direction / mask.sum(dim=1, keepdim=True).clamp_min(1)).view_as(grad)


class Iterate(NamedTuple):
    """One evaluated point of an ascent, as a hook sees it.

    Attributes:
        step: steps taken so far (0: the start, `steps`: the last iterate).
        images: x + δ (n, C, H, W) of the examples still ascending.
        logits: the model's outputs on `images` (n, classes), detached.
        rows: which examples of the batch these are (n,).
    """

    step: int
    images: torch.Tensor
    logits: torch.Tensor
    rows: torch.Tensor


class Ascended(NamedTuple):
    """The result of `ascend`: images (N, C, H, W) and, per example, whether it met the stop test."""

    images: torch.Tensor
    stopped: torch.Tensor


Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, rows) -> loss, summed
StopTest = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, rows) -> met? (n,)
Hook = Callable[[Iterate], None]


def ascend(
    model: Classifier, x: torch.Tensor, ascent: Ascent, objective: Objective, start: torch.Tensor | None = None,
    *, stop: StopTest | None = None, hook: Hook | None = None,
) -> Ascended:
    """`ascent.steps` projected steepest-ascent steps on `objective` from x + `start`.

    The model runs in eval mode (BatchNorm on running statistics; every submodule's mode is
    restored afterwards). `objective(logits, rows)` is the loss to raise for the examples `rows`
    of the batch (labels are indexed by `rows`); a per-example loss is summed.

    Args:
        model: the classifier, images in [0, 1] -> logits.
        x: clean images (N, C, H, W) in [0, 1].
        ascent: threat, budget, steps and step rule.
        objective: the loss (targeted or untargeted is the caller's choice).
        start: the first perturbation (N, C, H, W) inside the budget and box; None: zero.
        stop: a per-example success test on the logits; an example that meets it keeps its first
            such iterate and leaves the batch (unless the model needs every batch whole,
            `fixed_batch`). The last iterate is evaluated too.
        hook: called with every evaluated `Iterate`, the start and the last iterate included.

    Returns:
        The images (the first successful iterate, else the last) and who met `stop`.

    Example:
        >>> ascent = Ascent("linf", 8 / 255, steps=10, step_size=2 / 255)
        >>> x_adv = ascend(model, x, ascent, lambda logits, rows: F.cross_entropy(logits, y[rows])).images
    """
    delta = torch.zeros_like(x) if start is None else start.detach()
    done = Ascended(torch.empty_like(x), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device))
    rows = torch.arange(x.shape[0], device=x.device)
    drop = stop is not None and not fixed_batch(model)
    with eval_mode(model), torch.enable_grad():
        for step in range(ascent.steps + (stop is not None or hook is not None)):  # + the last iterate, if read
            last = step == ascent.steps
            delta, logits, grad = _forward(model, x, delta, objective, rows, with_grad=not last)
            if hook is not None:
                hook(Iterate(step, x + delta, logits, rows))
            if stop is not None:
                newly = _keep_first_successes(done, stop(logits, rows), rows, x + delta)
                if drop and not last and bool(newly.any()):
                    rows, x, delta, grad = (t[~newly] for t in (rows, x, delta, grad))
                    if rows.numel() == 0:
                        return done
            if not last:
                move = ascent.step_length(step) * ascent.direction(grad, x + delta)
                delta = project(ascent.threat, delta + move, x, ascent.eps)
    going = ~done.stopped[rows]  # every row is written: at its first success, else here
    done.images[rows[going]] = (x + delta)[going]
    return done


def _forward(
    model: Classifier, x: torch.Tensor, delta: torch.Tensor, objective: Objective, rows: torch.Tensor,
    *, with_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`delta` and the logits at x + `delta`, both detached, and (`with_grad`) the gradient of the
    summed objective in `delta`."""
    grad = None
    with torch.set_grad_enabled(with_grad):
        delta.requires_grad_(with_grad)
        logits = model(x + delta)
        if with_grad:
            (grad,) = torch.autograd.grad(objective(logits, rows).sum(), delta)
    return delta.detach(), logits.detach(), grad


def _keep_first_successes(
    done: Ascended, met: torch.Tensor, rows: torch.Tensor, images: torch.Tensor
) -> torch.Tensor:
    """Record in `done` the `images` of the examples `rows` that meet the stop test for the first
    time (`met`, (n,)), and return which of them do."""
    newly = met & ~done.stopped[rows]
    done.images[rows[newly]] = images[newly]
    done.stopped[rows[newly]] = True
    return newly
