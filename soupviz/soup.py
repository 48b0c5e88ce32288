"""Soups: weighted sums of K ingredients' parameters, run without building a module per soup.

Owns the K x P parameter matrix (every floating parameter and buffer, BatchNorm statistics
included), mixing, the BatchNorm rules (running variances mixed in log space by default),
running a soup through one template module with `torch.func.functional_call`, and many soups
at once with `torch.func.vmap`. Weight checks and grids live in `soupviz.weights`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from soupviz.errors import CheckpointError, NonFiniteLogitsError, SoupvizError, SoupWeightsError
from soupviz.models import create_model
from soupviz.weights import Weights, check_weights

VARIANCE_FLOOR = 1e-12  # far below BatchNorm's eps (1e-5): a zero variance gets a finite log
BATCHNORM_LABELS = {
    "mix": "BatchNorm running means mixed like the weights, running variances in log space (geometric).",
    "mix-linear": "BatchNorm statistics mixed like the weights, variances linearly (soups with variance <= 0 refused).",
}


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
        """Stack a `soupviz.checkpoints.SoupFamily`'s ingredients in the family's order."""
        states = [ingredient.state_dict for ingredient in family.ingredients]
        return cls.from_state_dicts(states, device, family.names)

    def mix(
        self, weights: torch.Tensor, out: torch.Tensor | None = None, linear_variances: bool = False
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
        """
        w = weights.detach()
        if self.duplicate_of != list(range(self.k)):
            merged = torch.zeros(w.shape, dtype=torch.float64)
            w = merged.index_add_(-1, torch.tensor(self.duplicate_of), w.cpu().double())
        w32, elementwise = w.to(self.device, torch.float32), self.device.type != "cpu"
        if linear_variances:  # checked before `out` is written, so a refused soup changes nothing
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


class Soup:
    """A callable classifier whose parameters are a soup of a family's ingredients.

    One template module (built once) runs every soup through `functional_call` on views of
    the mixed vector, so new weights cost one pass over the matrix. BatchNorm running means
    are mixed like the weights and running variances in log space (`bn_mode == "mix"`, the
    default: finite for any weights), or after `mix_batchnorm(linear=True)` linearly (the
    variances can turn negative outside the simplex, and such soups are refused), or after
    `reestimate_batchnorm` re-estimated per soup on clean training images. Always in eval
    mode; run evaluations under `torch.no_grad()`. `batch_method` ("auto", "vmap", "loop")
    says how `batched_logits` and `folded` run several soups; "auto" loops on CPUs (faster
    there, see bench/bench_soup.py) and uses vmap on GPUs.

    Example:
        >>> soup = Soup.from_family(family)
        >>> soup.set_weights([0.5, 0.5, 0.0])
        >>> logits = soup(images)  # (N, C)
        >>> grid = soup.batched_logits(simplex_grid(3, 0.2), images)  # (21, N, C)
    """

    def __init__(self, template: nn.Module, params: ParameterMatrix, batch_method: str = "auto"):
        self.template = template.to(params.device).eval()
        self.params = params
        if batch_method not in ("auto", "vmap", "loop"):
            raise SoupvizError(f"Unknown batch method {batch_method!r}: use auto, vmap or loop.")
        if batch_method == "auto":  # loop measured faster on CPU; vmap expected faster on GPUs
            batch_method = "loop" if params.device.type == "cpu" else "vmap"
        self.batch_method = batch_method
        self.bn_stats = [
            f"{name}.{stat}"
            for name, module in template.named_modules()
            if isinstance(module, _BatchNorm) and module.track_running_stats
            for stat in ("running_mean", "running_var")
        ]
        self._calibration: tuple[torch.Tensor, int, int] | None = None
        self._linear_variances = False
        self._bn_cache: OrderedDict[tuple[float, ...], torch.Tensor] = OrderedDict()
        self._flat = torch.empty(params.p, device=params.device)
        self.set_weights(torch.ones(params.k), normalise=True)

    @classmethod
    def from_family(cls, family: Any, device: torch.device | str = "cpu", **kw: Any) -> Soup:
        """A soup of a `SoupFamily`, its template built from the first ingredient's card."""
        card = family.ingredients[0].card
        template = create_model(card.arch, card.num_classes, card.mean, card.std)
        return cls(template, ParameterMatrix.from_family(family, device), **kw)

    @property
    def weights(self) -> torch.Tensor:
        """The current weights, float64 (K,)."""
        return self._weights.clone()

    def set_weights(self, weights: Weights, **checks: Any) -> None:
        """Check `weights` (keywords as in `check_weights`) and mix them into the soup's vector.

        The vector is reused, so views taken earlier (`tensors`) now show the new soup.
        """
        checked = check_weights(weights, self.params.k, **checks)
        if checked.dim() != 1:
            raise SoupWeightsError("set_weights takes one weight vector; use batched_logits.")
        self._mix(checked)

    def _mix(self, checked: torch.Tensor) -> None:
        self.params.mix(checked, out=self._flat, linear_variances=self._linear_variances)
        self._weights = checked
        if self._calibration is not None:
            self._write_bn(self._flat, self._bn_for(self._weights))

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The current soup as a state dict of views into its vector."""
        return self.params.as_tensors(self._flat)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The current soup as an independent state dict (copies), e.g. to save it."""
        return {key: tensor.clone() for key, tensor in self.tensors.items()}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) of the current soup for images `x` (N, C, H, W) in [0, 1]."""
        return functional_call(self.template, self.tensors, (x,))

    @property
    def bn_mode(self) -> str:
        """How BatchNorm running statistics are obtained: 'mix' (variances in log space),
        'mix-linear' or 'reestimate'."""
        if self._calibration is not None:
            return "reestimate"
        return "mix-linear" if self._linear_variances else "mix"

    @property
    def bn_label(self) -> str:
        """A sentence naming the BatchNorm rule, for the dashboard and every record."""
        if not self.bn_stats:
            return "No BatchNorm layers."
        if self._calibration is None:
            return BATCHNORM_LABELS[self.bn_mode]
        images, batch_size, batches = self._calibration
        used = min(len(images), batch_size * batches)
        return f"BatchNorm statistics re-estimated per soup on {used} clean training images."

    def mix_batchnorm(self, linear: bool = False) -> None:
        """Go back to mixing the ingredients' running statistics: variances in log space (the
        default), or `linear`ly like the weights, which refuses soups whose variances would
        not all be positive. Raises `SoupWeightsError` if the current soup is such a soup."""
        calibration, previous = self._calibration, self._linear_variances
        self._calibration, self._linear_variances = None, linear
        try:
            self._mix(self._weights)
        except SoupWeightsError:  # keep the rule that was on, with its soup unchanged
            self._calibration, self._linear_variances = calibration, previous
            raise
        self._bn_cache = OrderedDict()

    def reestimate_batchnorm(
        self, images: torch.Tensor, batch_size: int = 128, batches: int = 4
    ) -> None:
        """Re-estimate BatchNorm statistics of this and every later soup on clean training images.

        Statistics are the cumulative average over the batches (BatchNorm with momentum=None,
        as in `torch.optim.swa_utils.update_bn`), computed once per weight vector and cached.

        Args:
            images: clean training images (N, C, H, W), floats in [0, 1] or uint8; the first
                `batch_size * batches` are used, in order.
        """
        if len(images) == 0 or batch_size < 1 or batches < 1:
            raise SoupvizError("Re-estimating BatchNorm statistics needs at least one image.")
        images = images.float() / 255 if images.dtype == torch.uint8 else images
        self._calibration, self._bn_cache = (images, batch_size, batches), OrderedDict()
        self._linear_variances = False
        self._mix(self._weights)

    def _bn_for(self, weights: torch.Tensor) -> torch.Tensor:
        key = tuple(weights.tolist())
        if key not in self._bn_cache:
            self._bn_cache[key] = self._estimate_bn(self.params.mix(weights))
            if len(self._bn_cache) > 4096:
                self._bn_cache.popitem(last=False)
        return self._bn_cache[key]

    def _estimate_bn(self, flat: torch.Tensor) -> torch.Tensor:
        images, batch_size, batches = self._calibration
        tensors = self.params.as_tensors(flat)
        for key in self.bn_stats:
            fresh = torch.zeros_like if key.endswith("mean") else torch.ones_like
            tensors[key] = fresh(tensors[key])
            counter = key.rsplit(".", 1)[0] + ".num_batches_tracked"
            tensors[counter] = torch.zeros((), dtype=torch.long, device=flat.device)
        norms = [m for m in self.template.modules() if isinstance(m, _BatchNorm)]
        momenta = [m.momentum for m in norms]
        try:
            for module in norms:
                module.momentum = None
            self.template.train()
            with torch.no_grad():
                for start in range(0, min(len(images), batch_size * batches), batch_size):
                    batch = images[start : start + batch_size].to(flat.device)
                    functional_call(self.template, tensors, (batch,))
        finally:
            for module, momentum in zip(norms, momenta, strict=True):
                module.momentum = momentum
            self.template.eval()
        return torch.cat([tensors[key].reshape(-1) for key in self.bn_stats] + [flat[:0]])

    def _write_bn(self, flat: torch.Tensor, stats: torch.Tensor) -> None:
        position = 0
        for key in self.bn_stats:
            start, shape = self.params.layout[key]
            n = math.prod(shape)
            flat[start : start + n].copy_(stats[position : position + n])
            position += n

    def soup_vectors(self, weights: torch.Tensor) -> torch.Tensor:
        """Soup vectors (S, P) for checked weights (S, K), BatchNorm handled per `bn_mode`."""
        flats = self.params.mix(weights, linear_variances=self._linear_variances)
        if self._calibration is not None:
            for flat, w in zip(flats, weights, strict=True):
                self._write_bn(flat, self._bn_for(w))
        return flats

    def weight_gradient(self, flat: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The gradient (K,) in the weights from one in the soup vector, under this soup's rule
        (see `ParameterMatrix.weight_gradient`)."""
        return self.params.weight_gradient(flat, grad, self._linear_variances)

    def forward_many(self, flats: torch.Tensor, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """Logits (S, N, C) of soup vectors (S, P) on images x (N, ...), or x[s] if not shared."""

        def one(flat: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, self.params.as_tensors(flat), (images,))

        if self.batch_method == "vmap":
            try:
                return vmap(one, in_dims=(0, None if shared else 0))(flats, x)
            except RuntimeError:  # an op without a batching rule: loop from now on
                self.batch_method = "loop"
        return torch.stack([one(flat, x if shared else x[s]) for s, flat in enumerate(flats)])

    def batched_logits(
        self, weights: Weights, x: torch.Tensor, max_bytes: float = 2**30, **checks: Any
    ) -> torch.Tensor:
        """Logits (S, N, C) of S soups (weights (S, K)) on the same images x (N, C, H, W).

        Soup vectors are built `max_bytes` at a time and run through `vmap` or a loop
        (`batch_method`). `checks` are passed to `check_weights`.
        """
        weights = check_weights(weights, self.params.k, **checks).reshape(-1, self.params.k)
        chunk = max(1, int(max_bytes // (4 * self.params.p)))
        parts = [self.forward_many(self.soup_vectors(w), x, True) for w in weights.split(chunk)]
        return torch.cat(parts)

    def folded(self, weights: Weights, **checks: Any) -> FoldedSoups:
        """A classifier running soup s on rows s*N:(s+1)*N of a (S*N, ...) batch (for attacks)."""
        weights = check_weights(weights, self.params.k, **checks).reshape(-1, self.params.k)
        return FoldedSoups(self, self.soup_vectors(weights))


def check_finite_logits(logits: torch.Tensor, weights: torch.Tensor) -> None:
    """Raise `NonFiniteLogitsError` unless every logit is finite, so that a broken soup is
    reported instead of being argmax'ed into class 0.

    Args:
        logits: (N, C) of the soup `weights` (K,), or (S, N, C) of the soups `weights` (S, K).
    """
    finite = torch.isfinite(logits).flatten(logits.dim() - 2).all(-1)
    if not bool(finite.all()):
        bad = int((~finite).reshape(-1).nonzero()[0, 0])
        raise NonFiniteLogitsError(
            f"The soup with weights {format_weights(weights.reshape(-1, weights.shape[-1])[bad])} outputs NaN or "
            "infinite logits, so it has no accuracy or loss; choose weights nearer the simplex."
        )


class FoldedSoups:
    """S soups folded into the batch dimension: attacking it attacks every soup at once.

    Row i belongs to soup i // N, so attacks must not drop rows from the batch: `fixed_batch`
    tells them so (see `soupviz.attacks.base.fixed_batch`).
    """

    fixed_batch = True

    def __init__(self, soup: Soup, flats: torch.Tensor) -> None:
        self.soup, self.flats = soup, flats

    @property
    def soups(self) -> int:
        return self.flats.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (S*N, C) for images (S*N, C, H, W) whose rows s*N:(s+1)*N go to soup s."""
        if x.shape[0] % self.soups:
            raise SoupvizError(f"{x.shape[0]} images do not split evenly over {self.soups} soups.")
        per_soup = x.reshape(self.soups, -1, *x.shape[1:])
        return self.soup.forward_many(self.flats, per_soup, shared=False).flatten(0, 1)
