"""Exact Euclidean projections onto {δ : ‖δ‖ₚ ≤ ε, x + δ ∈ [0, 1]} for p = ∞, 2, 1, and
feasible random starting points.

With the box, p = 2 and p = 1 are more than a rescale or a soft-threshold. The KKT conditions
give δ = clip(t·v) with t ∈ (0, 1] (p = 2) and δ = sign(v)·min((|v| − λ)₊, room) (p = 1),
where clip and room are the box bounds; each is solved per example by a finite active-set
iteration, and every returned point is inside both sets.
"""

from __future__ import annotations

import torch

_MAX_ITERATIONS = 100


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _room(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """How far each coordinate may move in the direction of `v` before leaving [0, 1]."""
    return torch.where(v > 0, 1.0 - x, x).clamp_min(0.0)


def project_linf(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` onto the L∞ ball of radius `eps` intersected with x + δ ∈ [0, 1]."""
    return torch.clamp(x + delta.clamp(-eps, eps), 0.0, 1.0) - x


def project_l2(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` (N, ...) onto {‖δ‖₂ ≤ eps} ∩ {x + δ ∈ [0, 1]} exactly, per example.

    The projection is clip(t·v) for the largest t ∈ [0, 1] with ‖clip(t·v)‖ ≤ eps. From the
    feasible t = eps/‖v‖, the closed-form t for the current set of clipped coordinates is
    again feasible and never smaller, so the iteration climbs to the exact t in a few steps.
    """
    v = _flat(delta)
    magnitude = v.abs()
    room = _room(v, _flat(x))
    room_sq, magnitude_sq, eps_sq = room.square(), magnitude.square(), eps * eps
    t = (eps / v.norm(dim=1, keepdim=True).clamp_min(1e-30)).clamp(max=1.0)
    for _ in range(_MAX_ITERATIONS):
        clipped = t * magnitude >= room
        free = torch.where(clipped, 0.0, magnitude_sq).sum(dim=1, keepdim=True)
        fixed = torch.where(clipped, room_sq, 0.0).sum(dim=1, keepdim=True)
        t_new = ((eps_sq - fixed).clamp_min(0.0) / free.clamp_min(1e-30)).sqrt().clamp(max=1.0)
        t_new = torch.maximum(t, t_new)  # rounding must not undo progress
        settled = bool((t_new <= t * (1 + 1e-7)).all())
        t = t_new
        if settled:
            break
    result = torch.minimum(t * magnitude, room)
    norm = result.norm(dim=1, keepdim=True)
    result = result * (eps / norm.clamp_min(1e-30)).clamp(max=1.0)
    return (result * v.sign()).view_as(delta)


def project_l1(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` (N, ...) onto {‖δ‖₁ ≤ eps} ∩ {x + δ ∈ [0, 1]} exactly, per example.

    The projection is sign(v)·min((|v| − λ)₊, room) for the λ ≥ 0 that spends the budget;
    ‖·‖₁ of it is piecewise linear and decreasing in λ, so a bracketed Newton iteration finds
    λ exactly once it lands on the right linear piece (alternating with secant steps, and
    bisecting when both leave the bracket); the feasible end of the bracket is returned.
    """
    v = _flat(delta)
    magnitude = v.abs()
    room = _room(v, _flat(x))
    n = v.shape[0]
    lam = torch.zeros(n, 1, dtype=v.dtype, device=v.device)
    lo = torch.zeros_like(lam)
    hi = magnitude.max(dim=1, keepdim=True).values
    inside = torch.minimum(magnitude, room).sum(dim=1, keepdim=True) <= eps
    hi = torch.where(inside, lo, hi)
    mass_lo = torch.minimum(magnitude, room).sum(dim=1, keepdim=True)
    mass_hi = torch.zeros_like(lam)
    for step in range(_MAX_ITERATIONS):
        shifted = magnitude - lam
        mass = torch.minimum(shifted.clamp_min(0.0), room).sum(dim=1, keepdim=True)
        over = (mass > eps) & ~inside
        lo, mass_lo = torch.where(over, lam, lo), torch.where(over, mass, mass_lo)
        feasible = ~over & ~inside
        hi, mass_hi = torch.where(feasible, lam, hi), torch.where(feasible, mass, mass_hi)
        if bool(((hi - lo <= 1e-7 * hi) | (mass_hi >= eps * (1 - 1e-6)) | inside).all()):
            break
        if step % 2 == 0:  # Newton on the current linear piece
            slope = ((shifted > 0) & (shifted < room)).sum(dim=1, keepdim=True).to(v.dtype)
            guess = lam + (mass - eps) / slope.clamp_min(1.0)
        else:  # secant through the bracket, for when Newton keeps missing the piece
            guess = lo + (mass_lo - eps) * (hi - lo) / (mass_lo - mass_hi).clamp_min(1e-30)
        lam = torch.where((guess > lo) & (guess < hi), guess, (lo + hi) / 2)
    result = torch.minimum((magnitude - hi).clamp_min(0.0), room)
    total = result.sum(dim=1, keepdim=True)
    result = result * (eps / total.clamp_min(1e-30)).clamp(max=1.0)
    return (result * v.sign()).view_as(delta)


PROJECTIONS = {"linf": project_linf, "l2": project_l2, "l1": project_l1}


def project(threat: str, delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project `delta` for `threat` ('linf', 'l2', 'l1'); see the per-norm functions.

    Args:
        threat: the norm of the budget.
        delta: perturbations (N, ...) in pixel scale.
        x: the clean images (N, ...) in [0, 1] that `delta` is added to.
        eps: the budget, pixel scale.

    Returns:
        The nearest δ (Euclidean) with ‖δ‖ₚ ≤ eps and x + δ in [0, 1], same shape as `delta`.
    """
    return PROJECTIONS[threat](delta, x, eps)


def random_start(threat: str, x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A random feasible perturbation drawn with `generator`.

    L∞: uniform in the cube; L2: uniform direction with a uniform radius in [0, eps]; L1: a
    Laplace direction (uniform on the L1 sphere) with a uniform radius. Then projected into
    the box, so the result always satisfies the budget and x + δ ∈ [0, 1].
    """
    shape = x.shape
    per_example = (-1,) + (1,) * (x.dim() - 1)
    uniform = torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)
    if threat == "linf":
        return project_linf((uniform * 2 - 1) * eps, x, eps)
    radius = torch.rand(shape[0], generator=generator, device=x.device, dtype=x.dtype).view(per_example)
    if threat == "l2":
        direction = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        direction = direction / _flat(direction).norm(dim=1).clamp_min(1e-12).view(per_example)
    else:
        # −log(U)·sign has i.i.d. Laplace coordinates; normalised, it is uniform on the sphere.
        signs = torch.randint(0, 2, shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        direction = -uniform.clamp_min(1e-12).log() * signs
        direction = direction / _flat(direction).abs().sum(dim=1).clamp_min(1e-12).view(per_example)
    return project(threat, direction * radius * eps, x, eps)

