"""Exact Euclidean projections onto {δ : ‖δ‖ₚ ≤ ε, x + δ ∈ [0, 1]} for p = ∞, 2, 1.

For p = 2 and p = 1 the box makes the projection more than a rescale or a soft-threshold: the
KKT conditions give δ = clip(v / (1 + λ)) (p = 2) and δ = sign(v)·clip(|v| − λ) (p = 1) for a
multiplier λ ≥ 0 that a per-example bisection finds; the feasible end of the bracket is kept,
so the result is always inside both sets.
"""

from __future__ import annotations

import torch

_BISECTION_STEPS = 40


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def project_linf(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` onto the L∞ ball of radius `eps` intersected with x + δ ∈ [0, 1]."""
    return torch.clamp(x + delta.clamp(-eps, eps), 0.0, 1.0) - x


def project_l2(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` onto {‖δ‖₂ ≤ eps} ∩ {x + δ ∈ [0, 1]} exactly (per example)."""
    lo, hi = _flat(-x), _flat(1.0 - x)
    v = _flat(delta)
    clipped = torch.minimum(torch.maximum(v, lo), hi)
    inside = clipped.norm(dim=1) <= eps
    t_lo = torch.zeros(v.shape[0], 1, device=v.device, dtype=v.dtype)
    t_hi = torch.ones_like(t_lo)
    for _ in range(_BISECTION_STEPS):
        t_mid = (t_lo + t_hi) / 2
        too_long = torch.minimum(torch.maximum(v * t_mid, lo), hi).norm(dim=1, keepdim=True) > eps
        t_hi = torch.where(too_long, t_mid, t_hi)
        t_lo = torch.where(too_long, t_lo, t_mid)
    scaled = torch.minimum(torch.maximum(v * t_lo, lo), hi)
    return torch.where(inside[:, None], clipped, scaled).view_as(delta)


def project_l1(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` onto {‖δ‖₁ ≤ eps} ∩ {x + δ ∈ [0, 1]} exactly (per example)."""
    v = _flat(delta)
    room = torch.where(v > 0, _flat(1.0 - x), _flat(x))
    magnitude = torch.minimum(v.abs(), room)
    inside = magnitude.sum(dim=1) <= eps
    lam_lo = torch.zeros(v.shape[0], 1, device=v.device, dtype=v.dtype)
    lam_hi = magnitude.max(dim=1, keepdim=True).values
    for _ in range(_BISECTION_STEPS):
        lam_mid = (lam_lo + lam_hi) / 2
        too_long = (magnitude - lam_mid).clamp(min=0).sum(dim=1, keepdim=True) > eps
        lam_lo = torch.where(too_long, lam_mid, lam_lo)
        lam_hi = torch.where(too_long, lam_hi, lam_mid)
    shrunk = (magnitude - lam_hi).clamp(min=0)
    result = torch.where(inside[:, None], magnitude, shrunk) * v.sign()
    return result.view_as(delta)


PROJECTIONS = {"linf": project_linf, "l2": project_l2, "l1": project_l1}


def project(threat: str, delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` for `threat` ('linf', 'l2', 'l1'); see the per-norm functions."""
    return PROJECTIONS[threat](delta, x, eps)


def random_start(threat: str, x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A random feasible perturbation: uniform in the L∞ cube, uniform direction and radius
    in the L2 ball, a random sparse-ish point in the L1 ball; then projected into the box."""
    shape = x.shape
    if threat == "linf":
        delta = (torch.rand(shape, generator=generator, device=x.device) * 2 - 1) * eps
    elif threat == "l2":
        direction = torch.randn(shape, generator=generator, device=x.device)
        direction = direction / _flat(direction).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
        radius = torch.rand(shape[0], generator=generator, device=x.device).view(-1, *[1] * (x.dim() - 1))
        delta = direction * radius * eps
    else:
        laplace = torch.distributions.Laplace(0.0, 1.0).icdf(
            torch.rand(shape, generator=generator, device=x.device).clamp(1e-6, 1 - 1e-6)
        )
        laplace = laplace / _flat(laplace).abs().sum(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
        radius = torch.rand(shape[0], generator=generator, device=x.device).view(-1, *[1] * (x.dim() - 1))
        delta = laplace * radius * eps
    return project(threat, delta, x, eps)
