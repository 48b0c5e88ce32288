"""Task-vector merges: a base ingredient plus its fine-tunes' task vectors τ_i = θ_i − θ_base,
combined by task arithmetic (base + Σ λ_i τ_i), TIES-merging (Yadav et al., NeurIPS 2023) or
DARE (Yu et al., ICML 2024) followed by task arithmetic. Pure functions on (n, P) tensors, and
`merge_vector`, which applies one to a `ParameterMatrix`'s rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from soupviz.errors import SoupvizError
from soupviz.soups.parameters import ParameterMatrix

METHODS = ("sum", "ties", "dare")
TIES_TOP_K = 0.2  # Yadav et al.: keep the top 20% magnitudes of each task vector
TIES_LAMBDA = 1.0  # Yadav et al.: λ = 1 for the merged vector
DARE_DROP = 0.9  # Yu et al.: drop rates of 0.9 and above keep fine-tuned abilities of large models
STATISTICS = ("running_mean", "running_var")


def task_arithmetic(taus: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """Σ_i λ_i τ_i (P,) of task vectors `taus` (n, P) and coefficients `lambdas` (n,)."""
    return (lambdas.to(taus)[:, None] * taus).sum(0)


def trim(taus: torch.Tensor, top_k: float) -> torch.Tensor:
    """Each task vector with all but its `top_k` share of largest magnitudes set to 0 (TIES' trim).

    Keeps ceil(top_k · P) entries per row (ties at the threshold kept too); `top_k` = 1 keeps all.

    Example:
        >>> trim(torch.tensor([[0.5, -0.1, 0.3, -0.4]]), 0.5).tolist()
        [[0.5, 0.0, 0.0, -0.4]]
    """
    if not 0 < top_k <= 1:
        raise SoupvizError(f"TIES keeps a share top_k in (0, 1] of each task vector, got {top_k:g}.")
    p = taus.shape[1]
    keep = min(p, math.ceil(top_k * p - 1e-9))
    if keep >= p:
        return taus.clone()
    threshold = taus.abs().kthvalue(p - keep + 1, dim=1, keepdim=True).values
    return torch.where(taus.abs() >= threshold, taus, torch.zeros((), dtype=taus.dtype))


def ties(taus: torch.Tensor, lambdas: torch.Tensor, top_k: float = TIES_TOP_K) -> torch.Tensor:
    """The TIES-merged task vector (P,): trim each λ_i τ_i to its top-`top_k` magnitudes, elect
    each entry's sign as the sign of the trimmed vectors' sum (the sign of larger total mass),
    and average the entries that agree with it (the disjoint mean; 0 where none does).

    With every λ_i = λ this is the paper's λ · τ_m; a negative λ_i negates a task. The disjoint
    mean averages, so with trimming off (`top_k` = 1) it equals task arithmetic only for one task
    vector, or where all signs agree with each λ_i divided by the number of tasks.

    Example:
        >>> taus = torch.tensor([[0.5, -0.1, 0.3, -0.4], [-0.2, 0.6, 0.1, -0.3]], dtype=torch.float64)
        >>> ties(taus, torch.ones(2), top_k=0.5)  # trimmed: [.5, 0, 0, -.4], [0, .6, 0, -.3]; signs +, +, 0, -
        tensor([ 0.5000,  0.6000,  0.0000, -0.3500], dtype=torch.float64)
    """
    trimmed = trim(lambdas.to(taus)[:, None] * taus, top_k)
    sign = trimmed.sum(0).sign()
    agree = (trimmed.sign() == sign) & (trimmed != 0)
    total = torch.where(agree, trimmed, torch.zeros((), dtype=taus.dtype)).sum(0)
    return total / agree.sum(0).clamp(min=1).to(taus.dtype)


def dare_keep(shape: Sequence[int], drop: float, seed: int) -> torch.Tensor:
    """DARE's keep mask (bool, `shape`): each entry kept with probability 1 − `drop`, drawn
    from a CPU generator seeded with `seed` (the same mask on every device)."""
    if not 0 <= drop < 1:
        raise SoupvizError(f"DARE drops a share in [0, 1) of each task vector, got {drop:g}.")
    return torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed)) >= drop


def drop_and_rescale(taus: torch.Tensor, keep: torch.Tensor, drop: float) -> torch.Tensor:
    """DARE's step: τ · keep / (1 − drop), so each entry keeps its expectation."""
    return torch.where(keep.to(taus.device), taus, torch.zeros((), dtype=taus.dtype)) / (1 - drop)


def dare(taus: torch.Tensor, lambdas: torch.Tensor, drop: float = DARE_DROP, seed: int = 0) -> torch.Tensor:
    """DARE then task arithmetic (P,): drop each entry of every τ_i with probability `drop`
    (seeded), rescale the rest by 1/(1 − drop), and return Σ_i λ_i τ̃_i. `drop` = 0 is task
    arithmetic bit for bit."""
    return task_arithmetic(drop_and_rescale(taus, dare_keep(taus.shape, drop, seed), drop), lambdas)


def statistic_columns(params: ParameterMatrix) -> torch.Tensor:
    """Bool (P,): the columns holding normalisation statistics (running means, variances and
    their logarithms), which merges leave to the soup rule."""
    columns = torch.zeros(params.p, dtype=torch.bool)
    for key, (start, shape) in params.layout.items():
        if key.rsplit(".", 1)[-1] in STATISTICS:
            columns[start : start + math.prod(shape)] = True
    columns[params.log_variances] = True
    return columns


def merge_vector(
    params: ParameterMatrix, weights: torch.Tensor, base: int, method: str = "sum",
    top_k: float = TIES_TOP_K, *, drop: float = DARE_DROP, seed: int = 0, linear_variances: bool = False,
) -> torch.Tensor:
    """The merged model's vector (P,) for soup coordinates `weights` (K,): λ_i = weights[i] for
    each ingredient i other than `base` (weights[base] = 1 − Σ λ_i, so 'sum' is the plain soup
    of `weights` up to float32 rounding).

    Learned parameters are base + `method`(τ, λ); BatchNorm running statistics are not task
    vectors (they estimate activations, and trimming or dropping them has no meaning), so they
    stay those of the plain soup of `weights` under the soup's rule (means linear, variances in
    log space unless `linear_variances`).
    """
    if method not in METHODS:
        raise SoupvizError(f"Unknown merge {method!r}: use one of {', '.join(METHODS)}.")
    flat = params.mix(weights, linear_variances=linear_variances)
    others = [i for i in range(params.k) if i != base]
    learned = ~statistic_columns(params).to(params.device)
    rows = params.matrix[:, learned]
    taus = rows[others] - rows[base]
    lambdas = weights[others].to(params.device, torch.float32)
    if method == "sum":
        delta = task_arithmetic(taus, lambdas)
    elif method == "ties":
        delta = ties(taus, lambdas, top_k)
    else:
        delta = dare(taus, lambdas, drop, seed)
    flat[learned] = rows[base] + delta
    return flat
