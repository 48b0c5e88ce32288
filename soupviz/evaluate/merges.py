"""Merges beyond the plain soup, measured like soups: layer-wise soups (block groups taking other
weights than the rest) and task-vector merges (task arithmetic, TIES, DARE) relative to a base.

A `Merge` says how; `merge_evaluator` turns a soup `Evaluator` into one that evaluates the merge
at each row of soup weights, on the same images, seed and store. A row is the soup's coordinates:
for task-vector merges λ_i = w_i for every ingredient but the base (whose weight is 1 − Σλ), so the
'sum' merge at a row is the plain soup of that row; for a layer-wise merge the row is the weight
of every group not named in `groups`. Records carry the merge in their method and family name and
are stored under their own family fingerprint, so no page mistakes them for plain soups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch

from soupviz.attacks.base import Classifier
from soupviz.checkpoints.families import SoupFamily
from soupviz.errors import NonFiniteLogitsError, SoupvizError
from soupviz.evaluate.evaluator import Evaluator
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record
from soupviz.results.store import family_fingerprint
from soupviz.soups.layerwise import LayerwiseSoup
from soupviz.soups.parameters import format_weights
from soupviz.soups.soup import SoupVector
from soupviz.soups.task_vectors import DARE_DROP, METHODS, TIES_LAMBDA, TIES_TOP_K, merge_vector
from soupviz.soups.weights import EXTRAPOLATION_LIMIT

MERGES = ("soup", *METHODS)
MERGE_NAMES = {"soup": "layer-wise soup", "sum": "task arithmetic", "ties": "TIES merge", "dare": "DARE merge"}


@dataclass(frozen=True)
class Merge:
    """How ingredients are merged.

    Args:
        method: 'soup' (a plain soup, layer-wise when `groups` is given), 'sum' (task arithmetic),
            'ties' or 'dare' (see `soupviz.soups.task_vectors`).
        base: the base ingredient's name for task vectors; None takes the family's lineage
            (the ingredient the others' cards name as parent, `lineage_base`).
        top_k: TIES' kept share of each task vector (Yadav et al.: 0.2).
        drop: DARE's drop probability (Yu et al.: 0.9).
        seed: seed of DARE's drop masks.
        groups: (group, weights) pairs: these block groups take these soup weights (K,) instead
            of the row's (`soupviz.soups.layerwise.block_groups` names the groups).
    """

    method: str = "soup"
    base: str | None = None
    top_k: float = TIES_TOP_K
    drop: float = DARE_DROP
    seed: int = 0
    groups: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.method not in MERGES:
            raise SoupvizError(f"Unknown merge {self.method!r}: use one of {', '.join(MERGES)}.")
        if self.groups and self.method != "soup":
            raise SoupvizError("Layer-wise groups combine with the plain soup only; drop --groups or --merge.")
        if self.method == "soup" and not self.groups:
            raise SoupvizError("A merge that is a plain soup needs block groups; give --groups or a --merge method.")

    def describe(self, family: SoupFamily) -> str:
        """The merge in words, e.g. 'TIES merge (top 20% of each task vector, signs elected, disjoint
        mean) on the base linf' or 'layer-wise soup (layer3 (0, 0, 1, 0))'."""
        if self.method == "soup":
            return f"{MERGE_NAMES['soup']} ({'; '.join(f'{g} {format_weights(w)}' for g, w in self.groups)})"
        how = {"sum": "", "ties": f" (top {100 * self.top_k:g}% of each task vector, signs elected, disjoint mean)",
               "dare": f" (drop p={self.drop:g}, rescaled, seed {self.seed}, then task arithmetic)"}[self.method]
        return f"{MERGE_NAMES[self.method]}{how} on the base {family.names[lineage_base(family, self.base)]}"

    def name(self, family: SoupFamily) -> str:
        """A short identity for family names and file names, e.g. 'ties-k0.2-linf', 'layers-layer3=l2'."""
        if self.method == "soup":
            return "layers-" + "+".join(f"{g}={_weights_name(w, family.names)}" for g, w in self.groups)
        base = family.names[lineage_base(family, self.base)]
        detail = {"sum": "", "ties": f"-k{self.top_k:g}", "dare": f"-p{self.drop:g}-s{self.seed}"}[self.method]
        return f"{self.method}{detail}-{base}"


def _weights_name(weights: Sequence[float], names: Sequence[str]) -> str:
    """An ingredient's name for its one-hot weights, else the weights joined by ':'."""
    ones = [i for i, w in enumerate(weights) if w != 0]
    return names[ones[0]] if len(ones) == 1 and weights[ones[0]] == 1 else ":".join(f"{w:g}" for w in weights)


def merge_family(family: SoupFamily, merge: Merge) -> tuple[str, str]:
    """The family name a merge's records carry ('cifar10-x/merges/ties-k0.2-linf') and the family
    fingerprint they are stored under (apart from the plain soups')."""
    name = f"{family.name}/merges/{merge.name(family)}"
    return name, family_fingerprint([*family.hashes, name])


def lineage_base(family: SoupFamily, base: str | None = None) -> int:
    """The index of the base ingredient: `base` by name, else the ingredient of the family that the
    most other ingredients' cards name as their parent (the shipped family's: linf).

    Raises:
        SoupvizError: `base` is not an ingredient, or no card names a parent inside the family.
    """
    if base is not None:
        if base not in family.names:
            raise SoupvizError(f"The base {base!r} is not an ingredient of {family.name} ({', '.join(family.names)}).")
        return family.names.index(base)
    hashes = list(family.hashes)
    parents = [(ingredient.card.parent or {}).get("content_hash") for ingredient in family.ingredients]
    counts = {i: parents.count(h) for i, h in enumerate(hashes) if parents.count(h)}
    if not counts:
        raise SoupvizError(f"No card of {family.name} names a parent among its ingredients; name the base "
                           "ingredient of the task vectors (--base NAME).")
    return max(counts, key=lambda i: (counts[i], -i))


def lambdas_to_weights(lambdas: Sequence[float], k: int, base: int) -> list[float]:
    """Soup coordinates (K,) of task-vector coefficients λ (one per ingredient but the base, in
    family order): w_i = λ_i and w_base = 1 − Σ λ.

    Raises:
        SoupvizError: not K − 1 coefficients.
    """
    if len(lambdas) != k - 1:
        raise SoupvizError(f"Give one coefficient per task vector: {k - 1} (every ingredient but the base), "
                           f"got {len(lambdas)}.")
    weights = list(map(float, lambdas))
    weights.insert(base, 1.0 - sum(weights))
    return weights


def parse_groups(text: str, names: Sequence[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """Groups from 'layer3=l2,head=0.5:0.5:0:0': each block group takes an ingredient (by name) or
    soup weights separated by ':' (one per ingredient, in family order).

    Raises:
        SoupvizError: a part is not GROUP=INGREDIENT or GROUP=W:W:..., or names a group twice.
    """
    groups: dict[str, tuple[float, ...]] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        group, equals, value = part.partition("=")
        if not equals or not group.strip() or group.strip() in groups:
            raise SoupvizError(
                f"Cannot read the group {part!r}: write GROUP=INGREDIENT or GROUP=W:W:..., each group once."
            )
        if value.strip() in names:
            weights = tuple(float(name == value.strip()) for name in names)
        else:
            try:
                weights = tuple(float(w) for w in value.split(":"))
            except ValueError:
                raise SoupvizError(f"The group {part!r} names neither an ingredient ({', '.join(names)}) nor "
                                   "weights such as 0.5:0.5:0:0.") from None
        groups[group.strip()] = weights
    if not groups:
        raise SoupvizError("--groups names no group: write GROUP=INGREDIENT or GROUP=W:W:..., comma-separated.")
    return tuple(groups.items())


def default_lambdas(k: int) -> list[float]:
    """TIES' default coefficient (λ = 1) for each of the k − 1 task vectors."""
    return [TIES_LAMBDA] * (k - 1)


class MergeEvaluator(Evaluator):
    """An `Evaluator` of `merge` at each row of soup weights (see the module docstring)."""

    folds = False

    def __init__(self, family: SoupFamily, images, merge: Merge, **kw) -> None:
        super().__init__(family, images, **kw)
        if self.soup.bn_mode == "reestimate":
            raise SoupvizError("Merges mix BatchNorm statistics by the soup rule; use --batchnorm mix with them.")
        self.merge = merge
        self.base = None if merge.method == "soup" else lineage_base(family, merge.base)
        self.layered = LayerwiseSoup(self.soup) if merge.groups else None
        if self.layered is not None:
            self.layered.swap(torch.ones(self.soup.params.k), dict(merge.groups))  # refuses unknown groups
        self.merge_family, self.family_id = merge_family(family, merge)

    def classifier(self, row: torch.Tensor) -> Classifier:
        """The merged model at soup coordinates `row` (K,)."""
        if self.layered is not None:
            weights = self.layered.swap(row, dict(self.merge.groups))
            self.layered.set_weights(weights, extrapolate=True, margin=EXTRAPOLATION_LIMIT)
            return self.layered
        m = self.merge
        flat = merge_vector(self.soup.params, row, self.base, m.method, m.top_k, drop=m.drop, seed=m.seed,
                            linear_variances=self.soup.bn_mode == "mix-linear")
        return SoupVector(self.soup, flat)

    @property
    def batchnorm(self) -> str:
        """The BatchNorm rule, as records state it."""
        if self.layered is not None:
            return self.layered.bn_label
        return self.soup.bn_label.rstrip(".") + ", of the soup at the merge's coordinates (never trimmed or dropped)."

    def method_prefix(self) -> str:
        return f"{self.merge.describe(self.family)}: "

    def cache_parts(self) -> dict:
        """The soup's parts and the merge, its base resolved to the base's content."""
        merge = asdict(self.merge)
        merge["base"] = None if self.base is None else self.family.hashes[self.base]
        return {**super().cache_parts(), "merge": merge}

    def record(self, row: torch.Tensor, spec: MetricSpec, mask: torch.Tensor) -> Record:
        return replace(super().record(row, spec, mask), family=self.merge_family)

    def stored(self, row: torch.Tensor, spec: MetricSpec, record: Record) -> Record:
        return replace(super().stored(row, spec, record), family=self.merge_family)

    def _logits(self, model: Classifier, row: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        if not bool(torch.isfinite(logits).all()):
            raise NonFiniteLogitsError(
                f"The {self.merge.describe(self.family)} at weights {format_weights(row)} outputs NaN or infinite "
                "logits, so it has no accuracy or loss; choose weights nearer the simplex."
            )
        return logits


def merge_evaluator(evaluator: Evaluator, merge: Merge) -> MergeEvaluator:
    """An evaluator of `merge` on `evaluator`'s family, images, seed, batch size, device, store
    and soup (its BatchNorm rule), so its records compare one to one with the soups'."""
    return MergeEvaluator(evaluator.family, evaluator.images, merge, device=evaluator.device, seed=evaluator.seed,
                          batch_size=evaluator.batch_size, store=evaluator.store, soup=evaluator.soup)
