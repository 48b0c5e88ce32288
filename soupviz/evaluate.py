"""Evaluate soups of a family on metric specs, with an on-disk cache and progress reports.

An `Evaluator` holds a family's soup and one fixed image subset, so every soup is compared
on the same images. Each (soup, metric) result is cached keyed by the ingredients' hashes,
the weights, the metric, the images' content, the seed and the BatchNorm mode; attacks run
only on points the soup still classifies correctly, and report a running estimate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import torch

from soupviz.attacks import DEFAULT_BUDGETS, robust_mask
from soupviz.checkpoints import SoupFamily
from soupviz.corruptions import corrupt
from soupviz.data import ImageSet
from soupviz.device import pick_device
from soupviz.metrics import MetricSpec, Progress, ProgressCallback, Record, method_label, spec_attacks, wilson_interval
from soupviz.results_cache import ResultCache, cache_key, packbits, unpackbits
from soupviz.soup import Soup, check_weights

EXTRAPOLATION_LIMIT = 10.0


class Evaluator:
    """Evaluates soups of `family` on the fixed images `images`.

    Args:
        family: the ingredients.
        images: the evaluation subset (e.g. `load_split(...).subset(1000, seed)`).
        device: 'auto', 'cpu' or 'cuda'.
        seed: seed of every attack and random corruption.
        batch_size: images per forward/attack batch.
        cache: where results persist; None disables caching.
        soup: an existing `Soup` of the family to reuse (e.g. with re-estimated BatchNorm).
    """

    def __init__(
        self,
        family: SoupFamily,
        images: ImageSet,
        *,
        device: str | torch.device = "auto",
        seed: int = 0,
        batch_size: int = 250,
        cache: ResultCache | None = None,
        soup: Soup | None = None,
    ) -> None:
        self.family, self.images, self.seed, self.batch_size, self.cache = family, images, seed, batch_size, cache
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        self.soup = soup or Soup.from_family(family, self.device)
        self.x = images.floats(self.device)
        self.y = images.labels.to(self.device)
        digest = hashlib.sha256(images.images.numpy().tobytes() + images.labels.numpy().tobytes())
        self.images_id = digest.hexdigest()[:20]
        self.images_label = f"{len(images)} images of {images.source}"

    def evaluate(
        self, weights: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor, specs: Sequence[MetricSpec],
        progress: ProgressCallback | None = None,
    ) -> list[Record]:
        """Records for every soup (rows of `weights`, (S, K) or (K,)) and spec, spec-major.

        Weights must sum to 1; entries outside [0, 1] are extrapolation and are allowed.
        """
        rows = check_weights(weights, len(self.family.ingredients), extrapolate=True, margin=EXTRAPOLATION_LIMIT)
        rows = rows.reshape(-1, rows.shape[-1])
        batches = -(-len(self.images) // self.batch_size)
        total = sum(_units(spec, batches) for spec in specs) * len(rows)
        state = {"done": 0, "total": total, "callback": progress}
        return [self._one(row, spec, state) for spec in specs for row in rows]

    def ingredient_weights(self) -> torch.Tensor:
        """One-hot weight rows, one per ingredient: evaluating them evaluates the ingredients."""
        return torch.eye(len(self.family.ingredients), dtype=torch.float64)

    def _key(self, row: torch.Tensor, spec: MetricSpec) -> str:
        return cache_key(
            family=self.family.hashes, weights=[round(float(w), 8) for w in row], spec=spec.key,
            images=self.images_id, seed=self.seed, batchnorm=self.soup.bn_label,
        )

    def _one(self, row: torch.Tensor, spec: MetricSpec, state: dict) -> Record:
        key = self._key(row, spec)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            _advance(state, _units(spec, -(-len(self.images) // self.batch_size)), f"{spec.column} (cached)")
            return Record(**hit)
        if spec.kind == "union":
            masks = [
                unpackbits(self._one(row, replace(spec, kind="attack", threat=t, eps=DEFAULT_BUDGETS[t], threats=()), state).mask, len(self.images))
                for t in spec.threats
            ]
            mask = torch.stack(masks).all(0)
        else:
            self.soup.set_weights(row, extrapolate=True, margin=EXTRAPOLATION_LIMIT)
            mask = self._attacked(row, spec, state) if spec.kind == "attack" else self._predicted(spec, state)
        record = self._record(row, spec, mask)
        if self.cache is not None:
            self.cache.put(key, record.__dict__)
        return record

    def _predicted(self, spec: MetricSpec, state: dict) -> torch.Tensor:
        correct = []
        with torch.no_grad():
            for x, y in zip(self.x.split(self.batch_size), self.y.split(self.batch_size)):
                if spec.kind == "corruption":
                    x = corrupt(x, spec.corruption, spec.severity, seed=self.seed * 100_003 + len(correct))
                correct.append(self.soup(x).argmax(1) == y)
        _advance(state, 1, spec.column)
        return torch.cat(correct).cpu()

    def _attacked(self, row: torch.Tensor, spec: MetricSpec, state: dict) -> torch.Tensor:
        attacks = spec_attacks(spec, self.soup, seed=self.seed)
        robust = []
        for x, y in zip(self.x.split(self.batch_size), self.y.split(self.batch_size)):
            robust.append(robust_mask(attacks, self.soup, x, y).cpu())
            done = torch.cat(robust)
            partial = self._record(row, spec, done)
            _advance(state, 1, f"{spec.column}: {len(done)}/{len(self.images)} images", partial)
        return torch.cat(robust)

    def _record(self, row: torch.Tensor, spec: MetricSpec, mask: torch.Tensor) -> Record:
        correct, n = int(mask.sum()), len(mask)
        low, high = wilson_interval(correct, n)
        return Record(
            weights=[float(w) for w in row], ingredients=self.family.names, metric=spec.column, spec=spec.key,
            kind=spec.kind, n=n, correct=correct, accuracy=correct / max(n, 1), ci_low=low, ci_high=high,
            method=method_label(spec), upper_bound=spec.is_upper_bound, images=self.images_label,
            seed=self.seed, batchnorm=self.soup.bn_label, family=self.family.name, mask=packbits(mask),
        )


def _units(spec: MetricSpec, batches: int) -> int:
    if spec.kind == "attack":
        return batches
    if spec.kind == "union":
        return batches * len(spec.threats)
    return 1


def _advance(state: dict, units: int, message: str, partial: Record | None = None) -> None:
    state["done"] = min(state["total"], state["done"] + units)
    if state["callback"] is not None:
        state["callback"](Progress(state["done"], state["total"], message, partial))


def open_evaluator(
    family: SoupFamily,
    *,
    data: str | None = None,
    images: int = 1000,
    seed: int = 0,
    device: str = "auto",
    batchnorm: str = "mix",
    calibration_images: int = 512,
    cache: bool = True,
    batch_size: int = 250,
) -> Evaluator:
    """The evaluator the CLI and the dashboard share: `images` test images drawn with `seed`,
    BatchNorm statistics mixed or re-estimated on `calibration_images` clean training images."""
    from soupviz.data import load_split

    test = load_split(data, "test").subset(images, seed)
    evaluator = Evaluator(
        family, test, device=device, seed=seed, batch_size=batch_size, cache=ResultCache() if cache else None
    )
    if batchnorm == "reestimate":
        train = load_split(data, "train").subset(calibration_images, seed)
        evaluator.soup.reestimate_batchnorm(train.floats(evaluator.device), batch_size=128, batches=-(-calibration_images // 128))
    elif batchnorm != "mix":
        from soupviz.errors import SoupvizError

        raise SoupvizError(f"BatchNorm mode must be 'mix' or 'reestimate', not {batchnorm!r}.")
    return evaluator
