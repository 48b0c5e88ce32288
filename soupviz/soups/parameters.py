"""The K x P parameter matrix: every floating parameter and buffer of K ingredients as rows of
one float32 matrix (BatchNorm running variances beside their logarithms), mixed into soup vectors
by one matrix product. `soupviz.soups.soup` runs those vectors through a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from soupviz.errors import CheckpointError, SoupWeightsError
from soupviz.soups.weights import Weights

VARIANCE_FLOOR = 1e-12  # far below BatchNorm's eps (1e-5): a zero variance gets a finite log


def is_running_variance(key: str) -> bool:
    """Whether a state-dict key names a normalisation layer's running variance."""
    return key.rsplit(".", 1)[-1] == "running_var"


def format_weights(weights: Weights) -> str:
    """Soup weights as short text for messages, e.g. '(1.4, -0.4, 0)'."""
    return "(" + ", ".join(f"{float(w):.4g}" for w in torch.as_tensor(weights).reshape(-1)) + ")"


@dataclass
class ParameterMatrix:
    """The ingredients' floating parameters and buffers as rows of one (K, P) float32 matrix.

    Keys keep the first ingredient's order; `layout[key] = (offset, shape)` locates each in a
    row. Running variances (`is_running_variance`) sit together in the columns `variances`,
    and their logarithms (floored at `VARIANCE_FLOOR`) in the last columns, `log_variances`
    (counted in P), so one matrix product mixes both; a row is a valid soup vector of its
    ingredient. Integer buffers (BatchNorm's `num_batches_tracked`) come from the first
    ingredient and are never averaged. `duplicate_of[k]` is the first row bit-identical to row k.
    """

    matrix: torch.Tensor
    layout: dict[str, tuple[int, tuple[int, ...]]]
    integer_buffers: dict[str, torch.Tensor]
    duplicate_of: list[int]
    names: list[str]
    variances: slice

    @property
    def log_variances(self) -> slice:
        return slice(self.variances.stop, self.p)

    @property
    def k(self) -> int:
        return self.matrix.shape[0]

    @property
    def p(self) -> int:
        return self.matrix.shape[1]

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    @classmethod
    def from_state_dicts(
        cls,
        state_dicts: Sequence[dict[str, torch.Tensor]],
        device: torch.device | str = "cpu",
        names: Sequence[str] | None = None,
    ) -> ParameterMatrix:
        """Stack state dicts with the same keys and shapes into a float32 matrix on `device`."""
        if not state_dicts:
            raise CheckpointError("A soup needs at least one ingredient.")
        first, k = state_dicts[0], len(state_dicts)
        names = list(names) if names is not None else [f"ingredient {i}" for i in range(k)]
        for name, other in zip(names[1:], state_dicts[1:], strict=True):
            if set(other) != set(first) or any(other[n].shape != t.shape for n, t in first.items()):
                raise CheckpointError(
                    f"The ingredient {name!r} has other keys or shapes than {names[0]!r}; "
                    "a soup needs ingredients of one architecture."
                )
        floating = [key for key, tensor in first.items() if tensor.is_floating_point()]
        offsets, offset = {}, 0
        for key in sorted(floating, key=is_running_variance):  # variances last, in one block
            offsets[key] = offset
            offset += first[key].numel()
        layout = {key: (offsets[key], tuple(first[key].shape)) for key in floating}
        variances = slice(min([offsets[key] for key in floating if is_running_variance(key)], default=offset), offset)
        matrix = torch.empty(k, 2 * offset - variances.start, dtype=torch.float32, device=device)
        for row, state_dict in zip(matrix, state_dicts, strict=True):
            for key, (start, shape) in layout.items():
                row[start : start + math.prod(shape)].copy_(state_dict[key].reshape(-1))
            row[offset:] = row[variances].double().clamp(min=VARIANCE_FLOOR).log()
        duplicate_of = list(range(k))
        for i in range(1, k):
            firsts = (j for j in range(i) if duplicate_of[j] == j)
            duplicate_of[i] = next((j for j in firsts if torch.equal(matrix[j], matrix[i])), i)
        integer = {key: t.to(device) for key, t in first.items() if not t.is_floating_point()}
        return cls(matrix, layout, integer, duplicate_of, names, variances)

    @classmethod
    def from_family(cls, family: Any, device: torch.device | str = "cpu") -> ParameterMatrix:
        """Stack a `soupviz.checkpoints.families.SoupFamily`'s ingredients in the family's order."""
        states = [ingredient.state_dict for ingredient in family.ingredients]
        return cls.from_state_dicts(states, device, family.names)

    def mix(
        self, weights: torch.Tensor, out: torch.Tensor | None = None, linear_variances: bool = False,
        refuse_nonpositive: bool = True,
    ) -> torch.Tensor:
        """Soup vector(s) Σ_k w_k θ_k: (P,) for weights (K,), (S, P) for weights (S, K).

        Running variances are mixed in log space, v = exp(Σ_k w_k log v_k) (a geometric
        mixture, positive for any weights, also outside the simplex); with `linear_variances`
        they are mixed like everything else, and a soup whose variances would not all be
        positive raises `SoupWeightsError` (linear mixing is only valid near the simplex).
        Weights of bit-identical rows are summed first (in float64); the weighted sum then
        runs in float32 as one matrix product, a single pass over the matrix (the fastest on
        CPU, see bench/bench_soup.py), and only the variance block is exponentiated. As
        1·x + 0·y = x exactly, and a soup with one nonzero weight keeps its linear variances,
        a one-hot weight vector gives its row bit for bit, and so does any soup of identical
        ingredients whose weights sum to 1 (up to float32 rounding). Otherwise a K-term
        float32 sum errs by a few ulps: timm sums in float64 because it averages many, often
        half-precision, checkpoints; here rows are float32, K is small, and float64 costs
        1.4-3x the time. Weights are not checked here (see `check_weights`); `out` reuses a buffer.
        `refuse_nonpositive=False` skips the linear-variance refusal, for callers that use only some
        columns and check those themselves (`soupviz.soups.layerwise.mix_groups`).
        """
        w = weights.detach()
        if self.duplicate_of != list(range(self.k)):
            merged = torch.zeros(w.shape, dtype=torch.float64)
            w = merged.index_add_(-1, torch.tensor(self.duplicate_of), w.cpu().double())
        w32, elementwise = w.to(self.device, torch.float32), self.device.type != "cpu"
        if linear_variances and refuse_nonpositive:  # checked before `out` is written: a refused soup changes nothing
            variances = weighted_rows(self.matrix[:, self.variances], w32, elementwise=elementwise)
            bad = (variances <= 0).any(-1).reshape(-1).nonzero()
            if len(bad):
                raise SoupWeightsError(
                    f"The soup with weights {format_weights(w.reshape(-1, self.k)[bad[0, 0]])} has a BatchNorm running "
                    "variance <= 0 when variances are mixed linearly; mix them in log space or re-estimate them."
                )
        flat = weighted_rows(self.matrix, w32, out, elementwise=elementwise)
        if linear_variances or self.variances.start == self.variances.stop:
            return flat
        # a soup with one nonzero weight keeps its exact linear variances (a list: faster for one soup)
        mixed = (w != 0).sum(-1) != 1 if w.dim() == 2 else torch.tensor(sum(x != 0 for x in w.tolist()) != 1)
        if bool(mixed.all()):
            torch.exp(flat[..., self.log_variances], out=flat[..., self.variances])
        elif bool(mixed.any()):
            rows = mixed.nonzero()[:, 0].to(self.device)
            flat[rows, self.variances] = flat[rows, self.log_variances].exp()
        return flat

    def weight_gradient(self, flat: torch.Tensor, grad: torch.Tensor, linear_variances: bool = False) -> torch.Tensor:
        """The gradient (K,) in the weights of a loss whose gradient in the soup vector `flat` (P,) is `grad`.

        Everything but the running variances is linear in w, so ∂θ/∂w_k = θ_k; a variance
        mixed in log space has ∂v/∂w_k = v log v_k, v taken from `flat`'s log block (the mixed
        variance, also where statistics were re-estimated: then this treats them as mixed).
        """
        if not linear_variances:
            grad = grad.clone()
            grad[self.log_variances] = grad[self.variances] * flat[self.log_variances].exp()
            grad[self.variances] = 0
        return self.matrix @ grad

    def as_tensors(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a soup vector (P,) as a state dict, integer buffers included (no copies)."""
        tensors = {
            key: flat[start : start + math.prod(shape)].view(shape)
            for key, (start, shape) in self.layout.items()
        }
        tensors.update(self.integer_buffers)
        return tensors


def weighted_rows(
    matrix: torch.Tensor,
    w: torch.Tensor,
    out: torch.Tensor | None = None,
    elementwise: bool = False,
) -> torch.Tensor:
    """w @ matrix for float32 w (K,) or (S, K): a BLAS matvec/matmul, or K elementwise passes
    (used on GPUs, where a TF32 matmul setting could otherwise round the weights)."""
    if not elementwise:
        return torch.mv(matrix.t(), w, out=out) if w.dim() == 1 else torch.mm(w, matrix, out=out)
    rows = w.reshape(-1, matrix.shape[0])
    out = torch.empty(*w.shape[:-1], matrix.shape[1], device=matrix.device) if out is None else out
    flat_out = out.view(len(rows), matrix.shape[1])
    torch.mul(rows[:, :1], matrix[0], out=flat_out)
    for i in range(1, matrix.shape[0]):
        flat_out.addcmul_(rows[:, i : i + 1], matrix[i])
    return out
