"""Layer-wise soups: each block group of the architecture (stem, each stage, head) mixed with its
own weights. Groups come from the template module's top-level structure (`block_groups`), never
from a per-model list; a group's columns are cut from the plain soup vector of its own weights
(`mix_groups`), so a group-constant layer-wise soup is the plain soup bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from soupviz.errors import NonFiniteLogitsError, SoupvizError, SoupWeightsError
from soupviz.soups.parameters import ParameterMatrix, format_weights, is_running_variance
from soupviz.soups.soup import Soup
from soupviz.soups.weights import Weights, check_weights

Groups = dict[str, tuple[str, ...]]


def block_groups(model: nn.Module) -> Groups:
    """The model's block groups: group name -> its state-dict keys, in the model's order.

    Each top-level child that contains submodules (a stage such as `layer1`, `block2`) is a group
    of its own; the leaf modules before the first stage form `stem` (e.g. the first conv and its
    BatchNorm), those after the last stage `head` (e.g. the final BatchNorm and the classifier),
    and leaves between stages keep their own names. A model without stages gets one group per
    top-level child. Parameters held by the model itself form a group named after them.

    Example:
        >>> list(block_groups(create_model("preact_resnet_small")))
        ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    """
    children = dict(model.named_children())
    owner: dict[str, list[str]] = {}
    for key in model.state_dict():
        owner.setdefault(key.split(".", 1)[0] if key.split(".", 1)[0] in children else key, []).append(key)
    stages = [name for name in owner if name in children and any(True for _ in children[name].children())]
    if not stages:
        return {name: tuple(keys) for name, keys in owner.items()}
    names = list(owner)
    first, last = names.index(stages[0]), names.index(stages[-1])
    groups: dict[str, list[str]] = {}
    for position, name in enumerate(names):
        group = "stem" if position < first else "head" if position > last else name
        groups.setdefault(group, []).extend(owner[name])
    return {name: tuple(keys) for name, keys in groups.items()}


def group_columns(params: ParameterMatrix, keys: Sequence[str]) -> torch.Tensor:
    """The columns (long tensor) of a soup vector that hold `keys`, the log-variance columns of
    their running variances included; integer buffers have none."""
    columns = []
    for key in keys:
        if key not in params.layout:
            continue
        start, shape = params.layout[key]
        columns.append(torch.arange(start, start + math.prod(shape)))
        if is_running_variance(key):
            log_start = params.log_variances.start + start - params.variances.start
            columns.append(torch.arange(log_start, log_start + math.prod(shape)))
    return torch.cat(columns) if columns else torch.zeros(0, dtype=torch.long)


def check_group_weights(weights: Weights, groups: Sequence[str], k: int, **checks: Any) -> torch.Tensor:
    """Validate layer-wise weights (G, K): each group's row as `check_weights` checks a soup's
    (keywords alike), float64 on the CPU.

    Raises:
        SoupWeightsError: one sentence naming the group and the weight at fault.
    """
    w = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
    if w.dim() != 2 or w.shape[0] != len(groups):
        raise SoupWeightsError(
            f"Layer-wise weights have shape {tuple(w.shape)} but there are {len(groups)} block groups "
            f"({', '.join(groups)}); give one weight row per group."
        )
    rows = []
    for name, row in zip(groups, w, strict=True):
        try:
            rows.append(check_weights(row, k, **checks))
        except SoupWeightsError as error:
            raise SoupWeightsError(f"In the block group {name!r}: {error}") from error
    return torch.stack(rows)


def mix_groups(
    params: ParameterMatrix, columns: Sequence[torch.Tensor], weights: torch.Tensor, linear_variances: bool = False
) -> torch.Tensor:
    """The layer-wise soup vector (P,): group g's `columns[g]` from the plain soup vector of its
    weights `weights[g]` (checked, (G, K)), each distinct row mixed once (`ParameterMatrix.mix`:
    the same K x P matvec and BatchNorm rule as a plain soup, so equal rows give the plain soup
    bit for bit). Columns in no group keep the first group's soup. With `linear_variances`, a
    soup whose variances in some group would not all be positive raises `SoupWeightsError`.
    """
    distinct: dict[tuple[float, ...], torch.Tensor] = {}
    flat = None
    for cols, row in zip(columns, weights, strict=True):
        key = tuple(row.tolist())
        if key not in distinct:
            distinct[key] = params.mix(row, linear_variances=linear_variances, refuse_nonpositive=False)
        if flat is None:
            flat = distinct[key].clone()
        cols = cols.to(params.device)
        flat[cols] = distinct[key][cols]
    if linear_variances:
        for cols, row in zip(columns, weights, strict=True):
            cols = cols.to(params.device)
            in_block = cols[(cols >= params.variances.start) & (cols < params.variances.stop)]
            if bool((flat[in_block] <= 0).any()):
                raise SoupWeightsError(
                    f"The block group with weights {format_weights(row)} has a BatchNorm running variance <= 0 "
                    "when variances are mixed linearly; mix them in log space or re-estimate them."
                )
    return flat


class LayerwiseSoup:
    """A classifier whose block groups each take their own soup weights, under a `Soup`'s
    template, parameter matrix and BatchNorm rule ('mix' or 'mix-linear'; statistics re-estimated
    per soup are not supported here and are refused).

    Example:
        >>> layered = LayerwiseSoup(Soup.from_family(family))
        >>> layered.set_weights(layered.swap([1, 0, 0, 0], {"layer3": [0, 0, 1, 0]}))
        >>> logits = layered(images)  # linf everywhere but layer3, which is l2's
    """

    def __init__(self, soup: Soup, groups: Groups | None = None) -> None:
        if soup.bn_mode == "reestimate":
            raise SoupvizError("Layer-wise soups mix BatchNorm statistics with each group's weights; "
                               "use --batchnorm mix with them.")
        self.soup = soup
        self.groups = groups if groups is not None else block_groups(soup.template)
        covered = {key for keys in self.groups.values() for key in keys}
        missing = sorted(set(soup.params.layout) - covered)
        if missing:
            raise SoupvizError(f"The block groups leave out {missing[0]!r}; give groups covering every parameter.")
        self.columns = [group_columns(soup.params, keys) for keys in self.groups.values()]
        self._weights = torch.ones(len(self.groups), soup.params.k, dtype=torch.float64) / soup.params.k
        self._flat = mix_groups(soup.params, self.columns, self._weights, self.linear_variances)

    @property
    def names(self) -> list[str]:
        """The block groups' names, in the order of weight rows."""
        return list(self.groups)

    @property
    def linear_variances(self) -> bool:
        return self.soup.bn_mode == "mix-linear"

    @property
    def weights(self) -> torch.Tensor:
        """The current weights, float64 (G, K)."""
        return self._weights.clone()

    def swap(self, default: Weights, overrides: Mapping[str, Weights]) -> torch.Tensor:
        """Weights (G, K): `default` (K,) for every group but those named in `overrides`.

        Raises:
            SoupvizError: an override names no group of the model.
        """
        unknown = [name for name in overrides if name not in self.groups]
        if unknown:
            raise SoupvizError(f"No block group {unknown[0]!r} in this model: use one of {', '.join(self.groups)}.")
        return torch.stack([torch.as_tensor(overrides.get(name, default), dtype=torch.float64).reshape(-1)
                            for name in self.groups])

    def set_weights(self, weights: Weights, **checks: Any) -> None:
        """Check `weights` (G, K), one row per group (keywords as in `check_weights`), and mix them."""
        checked = check_group_weights(weights, self.names, self.soup.params.k, **checks)
        self._flat = mix_groups(self.soup.params, self.columns, checked, self.linear_variances)
        self._weights = checked

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The current soup as a state dict of views into its vector."""
        return self.soup.params.as_tensors(self._flat)

    @property
    def bn_label(self) -> str:
        """The BatchNorm rule, as records state it: the soup's, applied per group."""
        return self.soup.bn_label.rstrip(".") + ", per block group."

    def describe(self) -> str:
        """The soup's weights per group, e.g. 'stem (1, 0, 0, 0) · layer3 (0, 0, 1, 0) · ...'."""
        return " · ".join(f"{name} {format_weights(row)}" for name, row in zip(self.groups, self._weights, strict=True))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) of the current soup for images `x` (N, C, H, W) in [0, 1]."""
        return functional_call(self.soup.template, self.tensors, (x,))

    def check_logits(self, logits: torch.Tensor) -> None:
        """Raise `NonFiniteLogitsError` naming the group weights unless every logit is finite."""
        if not bool(torch.isfinite(logits).all()):
            raise NonFiniteLogitsError(
                f"The layer-wise soup {self.describe()} outputs NaN or infinite logits, so it has no accuracy "
                "or loss; choose weights nearer the simplex."
            )
