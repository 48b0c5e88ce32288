"""Soups: weighted sums of K ingredients' parameters, run without building a module per soup.

Owns the BatchNorm rules (running variances mixed in log space by default, or re-estimated),
running a soup through one template module with `torch.func.functional_call`, and many soups
at once with `torch.func.vmap` or folded into one batch. The K x P matrix the soups are mixed
from is `soupviz.soups.parameters.ParameterMatrix`; weight checks and grids live in `soupviz.soups.weights`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from soupviz.errors import NonFiniteLogitsError, SoupvizError, SoupWeightsError
from soupviz.soups.parameters import ParameterMatrix, format_weights
from soupviz.soups.weights import Weights, check_weights

BATCHNORM_LABELS = {
    "mix": "BatchNorm running means mixed like the weights, running variances in log space (geometric).",
    "mix-linear": "BatchNorm statistics mixed like the weights, variances linearly (soups with variance <= 0 refused).",
}


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
        """A soup of a `SoupFamily` behind its one normalisation (`SoupFamily.template`)."""
        return cls(family.template(), ParameterMatrix.from_family(family, device), **kw)

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


class SoupVector:
    """One fixed soup vector (P,) run through a soup's template: a classifier that keeps its
    parameters whatever weights the soup takes next (a transfer source, a merged model)."""

    def __init__(self, soup: Soup, flat: torch.Tensor) -> None:
        self.soup, self.flat = soup, flat

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The vector as a state dict of views."""
        return self.soup.params.as_tensors(self.flat)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) for images `x` (N, C, H, W) in [0, 1]."""
        return functional_call(self.soup.template, self.tensors, (x,))
