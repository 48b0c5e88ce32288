"""Projections onto {‖δ‖ₚ ≤ ε} ∩ {x + δ ∈ [0, 1]}: feasible, idempotent, and the nearest point."""

from __future__ import annotations

import pytest
import torch

from soupviz.attacks.projections import project, random_start

THREATS = ("linf", "l2", "l1")
EPS = {"linf": 0.1, "l2": 0.5, "l1": 2.0}


def norm(threat: str, delta: torch.Tensor) -> torch.Tensor:
    flat = delta.reshape(delta.shape[0], -1)
    return {"linf": flat.abs().amax(1), "l2": flat.norm(dim=1), "l1": flat.abs().sum(1)}[threat]


def cases(seed: int = 0, n: int = 64, d: int = 48) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, v) pairs: random, at box edges, long and short perturbations pointing outward."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g)
    edges = x.clone()
    edges[:, : d // 3] = 0.0
    edges[:, d // 3 : 2 * d // 3] = 1.0
    near = x.clamp(1e-4, 1 - 1e-4).round()  # within 1e-4 of a face, mostly on it
    out = []
    for base in (x, edges, near):
        for scale in (0.01, 0.1, 1.0, 10.0):
            out.append((base, torch.randn(n, d, generator=g) * scale))
        outward = torch.where(base > 0.5, 1.0, -1.0) * torch.rand(n, d, generator=g)  # leaves the box
        out.append((base, outward))
    return out


def brute_force_reference(threat: str, v: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """An independent float64 solution: bisection on the KKT multiplier to machine precision."""
    v, x = v.double(), x.double()
    lo, hi = -x, 1 - x
    room = torch.where(v > 0, hi, -lo)
    if threat == "linf":
        return v.clamp(-eps, eps).clamp(lo, hi)

    def candidate(m: float) -> torch.Tensor:
        if threat == "l2":
            return (v / (1 + m)).clamp(lo, hi)
        return v.sign() * torch.minimum((v.abs() - m).clamp(min=0), room)

    if norm(threat, candidate(0.0)[None])[0] <= eps:
        return candidate(0.0)
    a, b = 0.0, 1e9
    for _ in range(400):
        m = (a + b) / 2
        a, b = (m, b) if norm(threat, candidate(m)[None])[0] > eps else (a, m)
    return candidate(b)


@pytest.mark.parametrize("threat", THREATS)
def test_projection_lands_in_ball_and_box(threat):
    eps = EPS[threat]
    for x, v in cases():
        delta = project(threat, v, x, eps)
        assert (norm(threat, delta) <= eps * (1 + 1e-5)).all()
        assert ((x + delta) >= 0).all() and ((x + delta) <= 1).all()


@pytest.mark.parametrize("threat", THREATS)
def test_projection_is_idempotent(threat):
    for x, v in cases(seed=1):
        once = project(threat, v, x, EPS[threat])
        twice = project(threat, once, x, EPS[threat])
        torch.testing.assert_close(twice, once, atol=1e-6, rtol=0)


@pytest.mark.parametrize("threat", THREATS)
def test_projection_matches_an_independent_float64_solution(threat):
    for x, v in cases(seed=2, n=8):
        delta = project(threat, v, x, EPS[threat])
        for i in range(x.shape[0]):
            expected = brute_force_reference(threat, v[i], x[i], EPS[threat]).float()
            torch.testing.assert_close(delta[i], expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("threat", THREATS)
def test_projection_is_the_nearest_feasible_point_in_tiny_dimensions(threat):
    """Against 20,000 feasible points per case (random, on faces, on vertices of the ball):
    none is nearer, and the variational inequality <v − p, c − p> ≤ 0 holds for all."""
    g = torch.Generator().manual_seed(3)
    eps = {"linf": 0.3, "l2": 0.4, "l1": 0.5}[threat]
    for _ in range(20):
        x = torch.rand(1, 3, generator=g).double()
        x[0, 0] = 0.0  # one coordinate on a face of the box
        v = torch.randn(1, 3, generator=g).double()
        p = project(threat, v, x, eps)
        samples = torch.randn(20000, 3, generator=g).double() * torch.rand(20000, 1, generator=g).double()
        feasible = project(threat, samples, x.expand_as(samples), eps)
        gaps = ((v - p) * (feasible - p)).sum(1)
        assert gaps.max() <= 1e-9
        assert (v - p).norm() <= (v - feasible).norm(dim=1).min() + 1e-9


def test_closed_forms_when_the_box_is_inactive():
    """Far from the box faces the projections are the textbook ones."""
    x = torch.full((4, 100), 0.5)
    v = torch.randn(4, 100, generator=torch.Generator().manual_seed(4)) * 0.1
    torch.testing.assert_close(project("linf", v, x, 0.05), v.clamp(-0.05, 0.05))
    l2 = v * (0.3 / v.norm(dim=1, keepdim=True))
    torch.testing.assert_close(project("l2", v, x, 0.3), l2)
    # L1 ball (Duchi et al. 2008): soft-threshold at the sorted-magnitude threshold θ.
    u = v.abs().sort(dim=1, descending=True).values
    k = torch.arange(1, 101)
    theta_k = (u.cumsum(1) - 1.0) / k
    rho = (u > theta_k).sum(1, keepdim=True)
    theta = theta_k.gather(1, rho - 1)
    torch.testing.assert_close(project("l1", v, x, 1.0), v.sign() * (v.abs() - theta).clamp(min=0))


@pytest.mark.parametrize("threat", THREATS)
def test_points_inside_both_sets_are_left_alone(threat):
    x = torch.rand(8, 30, generator=torch.Generator().manual_seed(5))
    v = project(threat, torch.randn(8, 30) * 0.01, x, EPS[threat]) * 0.5
    torch.testing.assert_close(project(threat, v, x, EPS[threat]), v)


@pytest.mark.parametrize("threat", THREATS)
def test_random_start_is_feasible_seeded_and_spread(threat):
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    x[:, 0] = 1.0
    eps = EPS[threat]
    first = random_start(threat, x, eps, torch.Generator().manual_seed(0))
    again = random_start(threat, x, eps, torch.Generator().manual_seed(0))
    other = random_start(threat, x, eps, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert (norm(threat, first) <= eps * (1 + 1e-5)).all()
    assert ((x + first) >= 0).all() and ((x + first) <= 1).all()
    assert (norm(threat, first) > 0).all()


def test_projection_keeps_shape_dtype_and_device():
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    v = torch.randn_like(x)
    for threat in THREATS:
        out = project(threat, v, x, EPS[threat])
        assert out.shape == v.shape and out.dtype == v.dtype and out.device == v.device
