"""Training losses: the loss one batch contributes under each adversarial-training method.

Methods: 'standard' (no attack); 'pgd' (Madry et al.); 'fgsm' (PGD with one step from a random
start: fast FGSM-RS, Wong et al.); 'trades' (Zhang et al.); 'lrat' (Gao et al.: each instance and
its adversarial variants reweighted inside the pair); 'sat' (one of L∞/L2/L1 sampled per batch).
The adversarial examples come from the training attacks of `attacks.training`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from soupviz.attacks.engine import Ascent
from soupviz.attacks.training import default_budget, trades_attack, training_attack
from soupviz.threats import THREATS

METHODS = ("standard", "pgd", "fgsm", "trades", "lrat", "sat")
VULNERABILITIES = ("prob", "margin")
LRAT_WEIGHTINGS = ("linear", "softmax")


@dataclass(frozen=True)
class LratWeighting:
    """How LRAT splits each instance's loss between it and its variants; see `lrat_weights`.

    The paper's g, C and bound are not published; these defaults are our choice. C = 1 makes
    an instance's weights sum to 1 (as in PGD training, so the same learning rates apply);
    g 'linear' (ω = C·v) is the simplest increasing map and needs no tuning; floor = 0.1
    keeps a tenth of the clean loss for instances whose variants are all worse than chance
    (p_y < 0.1), so none loses its clean signal. `vulnerability`: 'prob' or 'margin'.
    """

    c: float = 1.0
    floor: float = 0.1
    g: str = "linear"
    temperature: float = 0.25
    vulnerability: str = "prob"


class BatchLoss(NamedTuple):
    """The loss to minimise, the logits accuracy is read from, and method statistics."""

    loss: torch.Tensor
    logits: torch.Tensor
    stats: dict[str, float]


def trades_loss(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """CE(f(x), y) + beta·KL(f(x) ‖ f(x_adv)), batch means; returns it and the adversarial
    logits. Gradients flow through both terms, as in Zhang et al."""
    logits_nat = model(x)
    logits_adv = model(x_adv)
    kl = F.kl_div(
        F.log_softmax(logits_adv, dim=1), F.softmax(logits_nat, dim=1), reduction="batchmean"
    )
    return F.cross_entropy(logits_nat, y) + beta * kl, logits_adv


def vulnerability(logits: torch.Tensor, y: torch.Tensor, measure: str = "prob") -> torch.Tensor:
    """How vulnerable each example is, in [0, 1], without gradient.

    Args:
        logits: (N, K) model outputs on the adversarial variants.
        y: (N,) true classes.
        measure: 'prob': 1 − p_y (for cross-entropy attacks such as PGD); 'margin':
            sigmoid(max_{k≠y} z_k − z_y), the CW margin squashed to [0, 1] (0.5 on the
            decision boundary).

    Returns:
        (N,) vulnerabilities.
    """
    logits = logits.detach()
    if measure == "prob":
        return 1 - F.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return torch.sigmoid(others - true)


def lrat_weights(
    vulnerability: torch.Tensor,
    c: float = 1.0,
    floor: float = 0.1,
    g: str = "linear",
    temperature: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LRAT's local weights inside each instance–attack pair (no reweighting across instances).

    Instance i with variants j = 1..J gets adversarial weights ω_ij from its own
    vulnerabilities v_ij only; its natural example keeps max(C − Σ_j ω_ij, floor), so no
    instance is dropped. The adversarial mass is C·mean_j v_ij (with C = 1 an instance's
    weights sum to 1 unless the floor acts, so the loss keeps the scale of PGD training) and
    `g` shares it among the variants:
        'linear':  ω_ij = C·v_ij / J (in proportion to vulnerability);
        'softmax': ω_ij = C·mean_j(v_ij)·softmax_j(v_ij / temperature), sharper towards the
                   most vulnerable variant as the temperature falls.
    With one attack both give ω = C·v, natural max(C·(1 − v), floor).

    Args:
        vulnerability: (N, J) values in [0, 1] (see `vulnerability`); detached.

    Returns:
        natural (N,) and adversarial (N, J) weights.
    """
    v = vulnerability.detach()
    if g == "linear":
        adversarial = c * v / v.shape[1]
    elif g == "softmax":
        adversarial = c * v.mean(dim=1, keepdim=True) * F.softmax(v / temperature, dim=1)
    else:
        raise ValueError(f"unknown LRAT weighting {g!r}")
    natural = (c - adversarial.sum(dim=1)).clamp_min(floor)
    return natural, adversarial


def lrat_loss(
    model: nn.Module,
    x: torch.Tensor,
    x_advs: list[torch.Tensor],
    y: torch.Tensor,
    weighting: LratWeighting,
) -> BatchLoss:
    """mean_i [w_i·CE(x_i) + Σ_j ω_ij·CE(x_adv_ij)] with `lrat_weights` from the (detached)
    vulnerability of each variant; logits are those of the first variant. Each batch goes
    through the model on its own (BatchNorm statistics per batch, as in TRADES' code)."""
    ce_nat = F.cross_entropy(model(x), y, reduction="none")
    logits_adv = [model(x_adv) for x_adv in x_advs]
    ce_adv = torch.stack([F.cross_entropy(z, y, reduction="none") for z in logits_adv], dim=1)
    v = torch.stack([vulnerability(z, y, weighting.vulnerability) for z in logits_adv], dim=1)
    natural, adversarial = lrat_weights(
        v, weighting.c, weighting.floor, weighting.g, weighting.temperature
    )
    loss = (natural * ce_nat + (adversarial * ce_adv).sum(dim=1)).mean()
    stats = {
        "lrat_natural_weight": natural.mean().item(),
        "lrat_adversarial_weight": adversarial.sum(dim=1).mean().item(),
    }
    return BatchLoss(loss, logits_adv[0], stats)


def method_budgets(
    method: str,
    threat: str,
    eps: float | None,
    steps: int,
    step_size: float | None,
    *, extra_threats: tuple[str, ...] = (),
) -> dict[str, Ascent]:
    """The training attacks' budgets of a method, training threat first.

    'standard' has none, 'sat' all three at the paper's budgets; 'lrat' adds `extra_threats`
    at their default budgets (`eps` and `step_size` apply to the training threat only).
    """
    if method == "standard":
        return {}
    if method == "sat":
        return sat_budgets(steps)
    budgets = {threat: default_budget(threat, eps, steps, step_size)}
    for other in extra_threats if method == "lrat" else ():
        budgets.setdefault(other, default_budget(other, None, steps, None))
    return budgets


def batch_loss(
    method: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    budgets: dict[str, Ascent],
    *, generator: torch.Generator,
    trades_beta: float = 6.0,
    lrat: LratWeighting = LratWeighting(),
) -> BatchLoss:
    """The training loss of one batch (x in [0, 1], (N, C, H, W)).

    Args:
        method: one of `METHODS`.
        budgets: threat -> budget (`method_budgets`); 'pgd', 'fgsm' and 'trades' use the single
            entry, 'sat' samples one per batch, 'lrat' pairs each instance with one variant each.
        generator: random source of the attacks, on x's device.
        trades_beta: TRADES' weight of the KL term.
        lrat: LRAT's weighting.

    Returns:
        The loss; logits on the clean batch ('standard') or on the (first) adversarial batch.
    """
    if method == "standard":
        logits = model(x)
        return BatchLoss(F.cross_entropy(logits, y), logits, {})
    if method == "lrat":
        x_advs = [training_attack(model, x, y, budget, generator) for budget in budgets.values()]
        return lrat_loss(model, x, x_advs, y, lrat)
    if method == "trades":
        (budget,) = budgets.values()
        x_adv = trades_attack(model, x, budget, generator)
        loss, logits = trades_loss(model, x, x_adv, y, trades_beta)
        return BatchLoss(loss, logits, {})
    if method in ("pgd", "fgsm"):
        (budget,) = budgets.values()
    elif method == "sat":
        choice = torch.randint(len(budgets), (1,), generator=generator, device=generator.device)
        budget = list(budgets.values())[choice.item()]
    else:
        raise ValueError(f"unknown method {method!r}")
    logits = model(training_attack(model, x, y, budget, generator))
    return BatchLoss(F.cross_entropy(logits, y), logits, {})


def sat_budgets(steps: int) -> dict[str, Ascent]:
    """The three CIFAR-10 threats at the paper's budgets, for SAT training."""
    return {threat: default_budget(threat, None, steps, None) for threat in THREATS}
