"""Evaluate soups of a family on metric specs, with an on-disk cache and progress reports.

An `Evaluator` holds a family's soup and one fixed image subset, so every soup is compared
on the same images. Each (soup, metric) result is cached keyed by the ingredients' hashes,
the weights, the metric, the images' content, the seed, the BatchNorm mode and the fingerprint
of the code that computed it (`results_cache.code_fingerprint`, stored in each record); attacks run
only on points the soup still classifies correctly, and report a running estimate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch

from soupviz.attacks import robust_mask
from soupviz.attacks.base import Classifier
from soupviz.checkpoints import SoupFamily
from soupviz.corruptions import corrupt
from soupviz.data import ImageSet
from soupviz.device import pick_device
from soupviz.metrics import (
    MetricSpec,
    Progress,
    ProgressCallback,
    Record,
    method_label,
    spec_attacks,
    wilson_interval,
)
from soupviz.results_cache import ResultCache, cache_key, code_fingerprint, packbits, unpackbits
from soupviz.soup import Soup, check_finite_logits
from soupviz.threats import DEFAULT_BUDGETS
from soupviz.weights import EXTRAPOLATION_LIMIT, check_weights


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
        self.code_fingerprint = code_fingerprint()

    def evaluate(
        self,
        weights: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor,
        specs: Sequence[MetricSpec],
        progress: ProgressCallback | None = None,
    ) -> list[Record]:
        """Records for every soup (rows of `weights`, (S, K) or (K,)) and spec, spec-major.

        Weights must sum to 1; entries outside [0, 1] are extrapolation and are allowed.

        Raises:
            NonFiniteLogitsError: a soup outputs NaN or infinity, so it has no accuracy.
        """
        rows = self.check_rows(weights)
        total = sum(self._units(spec) for spec in specs) * len(rows)
        state = {"done": 0, "total": total, "callback": progress}
        return [self._one(row, spec, state) for spec in specs for row in rows]

    def ingredient_weights(self) -> torch.Tensor:
        """One-hot weight rows, one per ingredient: evaluating them evaluates the ingredients."""
        return torch.eye(len(self.family.ingredients), dtype=torch.float64)

    def check_rows(self, weights: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor) -> torch.Tensor:
        """Weights as checked float64 rows (S, K)."""
        rows = check_weights(weights, len(self.family.ingredients), extrapolate=True, margin=EXTRAPOLATION_LIMIT)
        return rows.reshape(-1, rows.shape[-1])

    def classifier(self, row: torch.Tensor) -> Classifier:
        """The classifier that `row` names: here the soup with those weights."""
        self.soup.set_weights(row, extrapolate=True, margin=EXTRAPOLATION_LIMIT)
        return self.soup

    @property
    def batchnorm(self) -> str:
        """How BatchNorm statistics are handled, as records state it."""
        return self.soup.bn_label

    def method_prefix(self) -> str:
        """Text before each record's method label (empty for soups)."""
        return ""

    def cache_parts(self) -> dict:
        """What besides weights, spec, images and seed distinguishes a cached result."""
        return {"batchnorm": self.batchnorm, "batch_size": self.batch_size}

    def batches(self, spec: MetricSpec) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The evaluation batches (x, y) for `spec`, corrupted with one seed per batch for
        corruption specs, so every evaluator sees the same corrupted images."""
        for index, (x, y) in enumerate(zip(self.x.split(self.batch_size), self.y.split(self.batch_size), strict=False)):
            if spec.kind == "corruption":
                x = corrupt(x, spec.corruption, spec.severity, seed=self.seed * 100_003 + index)
            yield x, y

    def record(self, row: torch.Tensor, spec: MetricSpec, mask: torch.Tensor) -> Record:
        """The record of `spec` for weights `row` from the per-image mask of correct answers."""
        correct, n = int(mask.sum()), len(mask)
        low, high = wilson_interval(correct, n)
        return Record(
            weights=[float(w) for w in row],
            ingredients=self.family.names,
            measure=spec,
            n=n,
            correct=correct,
            accuracy=correct / max(n, 1),
            ci_low=low,
            ci_high=high,
            method=self.method_prefix() + method_label(spec),
            images=self.images_label,
            seed=self.seed,
            batchnorm=self.batchnorm,
            family=self.family.name,
            mask=packbits(mask),
            code_fingerprint=self.code_fingerprint,
        )

    def _units(self, spec: MetricSpec) -> int:
        batches = -(-len(self.images) // self.batch_size)
        return {"attack": batches, "union": batches * len(spec.threats)}.get(spec.kind, 1)

    def _one(self, row: torch.Tensor, spec: MetricSpec, state: dict) -> Record:
        key = cache_key(
            soup=soup_identity(self.family.hashes, row),
            spec=spec.key,
            images=self.images_id,
            seed=self.seed,
            code=self.code_fingerprint,
            **self.cache_parts(),
        )
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            _advance(state, self._units(spec), f"{spec.column} (cached)")
            return replace(
                Record.from_dict(hit), weights=[float(w) for w in row], ingredients=self.family.names,
                family=self.family.name,
            )
        if spec.kind == "union":
            parts = [replace(spec, kind="attack", threat=t, eps=DEFAULT_BUDGETS[t], threats=()) for t in spec.threats]
            mask = torch.stack([unpackbits(self._one(row, part, state).mask, len(self.images)) for part in parts]).all(
                0
            )
        elif spec.kind == "attack":
            mask = self._attacked(row, spec, state)
        else:
            mask = self._predicted(row, spec)
            _advance(state, 1, spec.column)
        record = self.record(row, spec, mask)
        if self.cache is not None:
            self.cache.put(key, record.to_dict())
        return record

    def _predicted(self, row: torch.Tensor, spec: MetricSpec) -> torch.Tensor:
        model = self.classifier(row)
        with torch.no_grad():
            return torch.cat([(self._logits(model, row, x).argmax(1) == y).cpu() for x, y in self.batches(spec)])

    def _logits(self, model: Classifier, row: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        check_finite_logits(logits, row)
        return logits

    def _attacked(self, row: torch.Tensor, spec: MetricSpec, state: dict) -> torch.Tensor:
        model = self.classifier(row)
        attacks = spec_attacks(spec, model, seed=self.seed)
        robust = []
        for x, y in self.batches(spec):
            if not robust:  # a soup with NaN outputs has them on every image: one batch tells
                with torch.no_grad():
                    self._logits(model, row, x)
            robust.append(robust_mask(attacks, model, x, y).cpu())
            done = torch.cat(robust)
            _advance(state, 1, f"{spec.column}: {len(done)}/{len(self.images)} images", self.record(row, spec, done))
        return torch.cat(robust)


def soup_identity(hashes: Sequence[str], row: torch.Tensor) -> list[tuple[str, float]]:
    """What a soup is, for caching: its ingredients' content hashes with their nonzero weights,
    sorted, so the same soup has one key whichever family folder it is evaluated from."""
    return sorted((h, round(float(w), 8)) for h, w in zip(hashes, row, strict=False) if float(w) != 0.0)


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
    BatchNorm statistics mixed ('mix': means linearly, variances in log space) or re-estimated
    ('reestimate') on `calibration_images` clean training images."""
    from soupviz.data import load_split

    test = load_split(data, "test").subset(images, seed)
    evaluator = Evaluator(
        family, test, device=device, seed=seed, batch_size=batch_size, cache=ResultCache() if cache else None
    )
    if batchnorm == "reestimate":
        train = load_split(data, "train").subset(calibration_images, seed)
        evaluator.soup.reestimate_batchnorm(
            train.floats(evaluator.device), batch_size=128, batches=-(-calibration_images // 128)
        )
    elif batchnorm != "mix":
        from soupviz.errors import SoupvizError

        raise SoupvizError(f"BatchNorm mode must be 'mix' or 'reestimate', not {batchnorm!r}.")
    return evaluator
