"""Specification of soupviz.soups.task_vectors: task arithmetic, TIES and DARE on hand-computed examples,
their reductions to task arithmetic (trimming off, p = 0), and merges of a family's parameter matrix
that keep BatchNorm statistics on the soup rule."""

from __future__ import annotations

import pytest
import torch

from soupviz.errors import SoupvizError
from soupviz.soups.parameters import ParameterMatrix
from soupviz.soups.task_vectors import (
    dare,
    dare_keep,
    drop_and_rescale,
    merge_vector,
    statistic_columns,
    task_arithmetic,
    ties,
    trim,
)

F64 = torch.float64


def test_trim_keeps_the_top_share_of_magnitudes_per_task():
    taus = torch.tensor([[0.5, -0.1, 0.3, -0.4], [0.0, 0.2, -0.9, 0.1]], dtype=F64)
    assert trim(taus, 0.5).tolist() == [[0.5, 0.0, 0.0, -0.4], [0.0, 0.2, -0.9, 0.0]]
    assert trim(taus, 0.25).tolist() == [[0.5, 0.0, 0.0, 0.0], [0.0, 0.0, -0.9, 0.0]]
    assert torch.equal(trim(taus, 1.0), taus)
    with pytest.raises(SoupvizError, match="top_k"):
        trim(taus, 0.0)


def test_ties_on_a_hand_computed_example():
    taus = torch.tensor([[0.5, -0.1, 0.3, -0.4],
                         [-0.2, 0.6, 0.1, -0.3],
                         [-0.9, 0.0, 0.0, 0.2]], dtype=F64)
    # trimmed to 2 of 4: [.5, 0, 0, -.4], [0, .6, 0, -.3], [-.9, 0, 0, .2]
    # summed: [-.4, .6, 0, -.5] -> signs (-, +, 0, -); disjoint mean: [-.9, .6, 0, (-.4 - .3) / 2]
    merged = ties(taus, torch.ones(3), top_k=0.5)
    assert torch.allclose(merged, torch.tensor([-0.9, 0.6, 0.0, -0.35], dtype=F64), atol=1e-15)
    # λ scales the merged vector (signs do not change under a common positive scale)
    assert torch.allclose(ties(taus, torch.full((3,), 0.5), top_k=0.5), merged / 2, atol=1e-15)


def test_ties_without_trimming_is_task_arithmetic_for_one_task_vector():
    tau = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    lam = torch.tensor([0.7])
    assert torch.equal(ties(tau, lam, top_k=1.0), task_arithmetic(tau, lam))


def test_ties_without_trimming_is_the_mean_of_agreeing_task_vectors():
    base = torch.rand(3, 40, generator=torch.Generator().manual_seed(1)) + 0.1
    taus = base * torch.tensor([1.0, -1.0]).repeat(20)  # every column's signs agree across tasks
    lambdas = torch.tensor([1.0, 1.0, 1.0])
    assert torch.allclose(ties(taus, lambdas, top_k=1.0), task_arithmetic(taus, lambdas / 3), atol=1e-6)


def test_dare_on_a_hand_computed_example():
    taus = torch.tensor([[0.2, -0.4, 0.6, 0.8]], dtype=F64)
    keep = torch.tensor([[True, False, False, True]])
    assert drop_and_rescale(taus, keep, 0.5).tolist() == [[0.4, 0.0, 0.0, 1.6]]
    assert torch.allclose(dare(taus, torch.tensor([1.0]), drop=0.5, seed=3),
                          drop_and_rescale(taus, dare_keep((1, 4), 0.5, 3), 0.5)[0])


def test_dare_without_dropping_is_task_arithmetic_bit_for_bit():
    taus = torch.randn(3, 100, generator=torch.Generator().manual_seed(2))
    lambdas = torch.tensor([0.3, -0.2, 0.5])
    assert torch.equal(dare(taus, lambdas, drop=0.0, seed=5), task_arithmetic(taus, lambdas))


def test_dare_masks_are_seeded_and_keep_about_one_minus_p():
    keep = dare_keep((4, 10_000), 0.9, seed=7)
    assert torch.equal(keep, dare_keep((4, 10_000), 0.9, seed=7))
    assert not torch.equal(keep, dare_keep((4, 10_000), 0.9, seed=8))
    assert abs(keep.double().mean().item() - 0.1) < 0.01
    with pytest.raises(SoupvizError, match="DARE"):
        dare_keep((1, 2), 1.0, seed=0)


@pytest.fixture
def params(family) -> ParameterMatrix:
    return ParameterMatrix.from_family(family)


def test_task_arithmetic_merge_is_the_extrapolated_soup(params):
    weights = torch.tensor([0.3, -0.2, 0.5, 0.4], dtype=F64)  # base linf (index 1) gets 1 - Σλ = -0.2
    merged = merge_vector(params, weights, base=1, method="sum")
    assert torch.allclose(merged, params.mix(weights), rtol=1e-5, atol=1e-6)


def test_merges_keep_batchnorm_statistics_on_the_soup_rule(params):
    weights = torch.tensor([1.0, -2.0, 1.0, 1.0], dtype=F64)
    statistics = statistic_columns(params)
    soup = params.mix(weights)
    for method in ("ties", "dare"):
        merged = merge_vector(params, weights, base=1, method=method, top_k=0.2, drop=0.5)
        assert torch.equal(merged[statistics], soup[statistics])
        assert not torch.allclose(merged[~statistics], soup[~statistics])
        variances = params.as_tensors(merged)["bn.running_var"]
        assert bool((variances > 0).all())


def test_ties_merge_of_the_matrix_matches_the_function_on_task_vectors(params):
    weights = torch.tensor([1.0, -2.0, 1.0, 1.0], dtype=F64)
    merged = merge_vector(params, weights, base=1, method="ties", top_k=0.2)
    learned = ~statistic_columns(params)
    rows = params.matrix[:, learned]
    expected = rows[1] + ties(rows[[0, 2, 3]] - rows[1], torch.ones(3), 0.2)
    assert torch.equal(merged[learned], expected)
    with pytest.raises(SoupvizError, match="Unknown merge"):
        merge_vector(params, weights, base=1, method="median")
