"""Training attacks: the adversarial examples adversarial training learns from, made by the engine.

PGD training (Madry et al.) and FGSM-RS (its one-step case, Wong et al.) ascend the cross-entropy
from a random start; TRADES (Zhang et al.) ascends KL(f(x) ‖ f(x')) from a tiny Gaussian start.
Both take constant steps and return the last iterate (the loss maximiser), not the first
fooling point; an L1 step moves 1% of the coordinates, as the shipped ingredients were trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.attacks.base import eval_mode
from soupviz.attacks.engine import Ascent, ascend
from soupviz.attacks.projections import project, random_start
from soupviz.threats import DEFAULT_BUDGETS

L1_SPARSITY = 0.01  # fraction of coordinates one training L1 step moves


def default_budget(threat: str, eps: float | None, steps: int, step_size: float | None) -> Ascent:
    """A training attack's settings with defaults filled: the paper's CIFAR-10 budgets and
    Madry's 2.5·eps/steps step size (1.25·eps for a single FGSM-RS step, as in Wong et al.)."""
    eps = DEFAULT_BUDGETS[threat] if eps is None else eps
    if step_size is None:
        step_size = 1.25 * eps if steps == 1 else 2.5 * eps / steps
    return Ascent(threat, eps, steps, step_size, l1_sparsity=L1_SPARSITY)


def training_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: Ascent, generator: torch.Generator
) -> torch.Tensor:
    """PGD adversarial examples for training: random start, `budget.steps` ascent steps on the
    batch-mean cross-entropy, last iterate. `generator` must live on the images' device."""
    start = random_start(budget.threat, x, budget.eps, generator)
    return ascend(model, x, budget, lambda logits, rows: F.cross_entropy(logits, y), start).images


def trades_attack(model: nn.Module, x: torch.Tensor, budget: Ascent, generator: torch.Generator) -> torch.Tensor:
    """TRADES' inner maximisation: the point of the budget maximising KL(f(x) ‖ f(x')).

    As in the authors' code it starts at δ = 0.001·N(0, 1) (the KL has zero gradient at
    δ = 0), then takes `budget.steps` steepest-ascent steps of the threat with projection.
    """
    with torch.no_grad(), eval_mode(model):
        clean = F.softmax(model(x), dim=1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    start = project(budget.threat, 0.001 * noise, x, budget.eps)

    def divergence(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(logits, dim=1), clean, reduction="sum")

    return ascend(model, x, budget, divergence, start).images
