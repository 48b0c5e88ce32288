"""Evaluate soups of a family on metric specs, through the results store, with progress reports.

An `Evaluator` holds a family's soup and one fixed image subset, so every soup is compared
on the same images. Each (soup, metric) record is stored keyed by the ingredients' hashes,
the weights, the metric, the images' content, the seed, the BatchNorm mode and the fingerprint
of the code that computed it (`results.store.code_fingerprint`, stored in each record). Several soups
are evaluated folded into one batch (`Soup.folded`); a soup evaluated alone is attacked only on
the points it still classifies correctly, and reports a running estimate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch

from soupviz.attacks import robust_mask
from soupviz.attacks.base import Classifier, ShareCallback
from soupviz.attacks.transfer import survives_transfer, transfer_examples
from soupviz.checkpoints.families import SoupFamily
from soupviz.corruptions.cifar_c import corrupt
from soupviz.data import ImageSet
from soupviz.device import pick_device
from soupviz.errors import SoupvizError
from soupviz.evaluate.methods import method_label, spec_attacks
from soupviz.progress import Progress, ProgressCallback
from soupviz.results.metric_specs import UNIFORM_SOURCE, MetricSpec, wilson_interval
from soupviz.results.records import Record
from soupviz.results.store import ResultStore, code_fingerprint, family_fingerprint, packbits, record_key, unpackbits
from soupviz.soups.soup import Soup, SoupVector, check_finite_logits
from soupviz.soups.weights import EXTRAPOLATION_LIMIT, check_weights, weights_key


class Evaluator:
    """Evaluates soups of `family` on the fixed images `images`.

    Args:
        family: the ingredients.
        images: the evaluation subset (e.g. `load_split(...).subset(1000, seed)`).
        device: 'auto', 'cpu' or 'cuda'.
        seed: seed of every attack and random corruption.
        batch_size: images per forward/attack batch (per soup when soups are folded).
        store: where records persist (`ResultStore`); None disables it.
        soup: an existing `Soup` of the family to reuse (e.g. with re-estimated BatchNorm).
        fold: at most this many soups are folded into one batch (default: 8 on GPUs, 1 on
            CPUs). Folded soups are attacked on every image at every step, where a soup alone is
            attacked only on the images it still classifies correctly and stops on those it
            breaks; a CPU gains nothing from the wider batch to pay for that, so there folding
            measured slower (bench/results/sweep.md). Attacks draw random starts per batch, so a
            robust record depends on its batch by those draws alone.
    """

    folds = True  # whether `classifier` rows can be folded into one batch (`Soup.folded`)

    def __init__(
        self,
        family: SoupFamily,
        images: ImageSet,
        *,
        device: str | torch.device = "auto",
        seed: int = 0,
        batch_size: int = 250,
        store: ResultStore | None = None,
        soup: Soup | None = None,
        fold: int | None = None,
    ) -> None:
        self.family, self.images, self.seed, self.batch_size, self.store = family, images, seed, batch_size, store
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        self.fold = max(1, fold or (1 if self.device.type == "cpu" else 8))
        self.soup = soup or Soup.from_family(family, self.device)
        self.x = images.floats(self.device)
        self.y = images.labels.to(self.device)
        self.images_id = images.digest()
        self.images_label = f"{len(images)} images of {images.source}"
        self.code_fingerprint = code_fingerprint()
        self.family_id = family_fingerprint(family.hashes)

    def evaluate(
        self,
        weights: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor,
        specs: Sequence[MetricSpec],
        progress: ProgressCallback | None = None,
    ) -> list[Record]:
        """Records for every soup (rows of `weights`, (S, K) or (K,)) and spec, spec-major.

        Weights must sum to 1; entries outside [0, 1] are extrapolation and are allowed. Stored
        records are read back; the rest are computed `fold` soups at a time and stored.

        Raises:
            NonFiniteLogitsError: a soup outputs NaN or infinity, so it has no accuracy.
        """
        rows = self.check_rows(weights)
        total = sum(self._units(spec) for spec in specs) * len(rows)
        state = {"done": 0, "total": total, "callback": progress}
        return [record for spec in specs for record in self._records(rows, spec, state)]

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
        """What besides weights, spec, images and seed distinguishes a stored result."""
        return {"batchnorm": self.batchnorm, "batch_size": self.batch_size}

    def key(self, row: torch.Tensor, spec: MetricSpec) -> str:
        """The store key of the record of `spec` for the soup `row`; a transfer attack's key holds
        its source soup's content too."""
        parts = self.cache_parts()
        if spec.source:
            parts["source"] = soup_identity(self.family.hashes, self.source_weights(spec.source))
        return record_key(
            soup=soup_identity(self.family.hashes, row),
            spec=spec.key,
            images=self.images_id,
            seed=self.seed,
            code=self.code_fingerprint,
            **parts,
        )

    def source_weights(self, source: str) -> torch.Tensor:
        """Soup weights (K,) of a transfer source: an ingredient's one-hot row, or the uniform soup.

        Raises:
            SoupvizError: `source` names neither an ingredient of the family nor 'uniform'.
        """
        k = len(self.family.names)
        if source == UNIFORM_SOURCE:
            return torch.full((k,), 1 / k, dtype=torch.float64)
        names = [name.lower() for name in self.family.names]
        if source.lower() not in names:
            raise SoupvizError(f"The transfer source {source!r} is not an ingredient of {self.family.name} "
                               f"({', '.join(self.family.names)}) nor {UNIFORM_SOURCE!r}; name one of them.")
        return torch.eye(k, dtype=torch.float64)[names.index(source.lower())]

    def source_model(self, source: str) -> Classifier:
        """The model a transfer attack from `source` is crafted on: the family's soup of
        `source_weights`, under this evaluator's BatchNorm rule."""
        return SoupVector(self.soup, self.soup.soup_vectors(self.source_weights(source)[None])[0])

    def batch_count(self) -> int:
        """How many batches the images split into."""
        return -(-len(self.images) // self.batch_size)

    def batches(self, spec: MetricSpec, only: range | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The evaluation batches (x, y) for `spec` (those numbered in `only`, default all),
        corrupted with one seed per batch number for corruption specs, so every evaluator sees
        the same corrupted images."""
        pairs = zip(self.x.split(self.batch_size), self.y.split(self.batch_size), strict=False)
        for index, (x, y) in enumerate(pairs):
            if only is not None and index not in only:
                continue
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

    def stored(self, row: torch.Tensor, spec: MetricSpec, record: Record) -> Record:
        """A record read from the store, with this evaluator's names for the soup and family (the
        store keys a soup by its ingredients' contents, whichever family it was computed in)."""
        return replace(record, weights=[float(w) for w in row], ingredients=self.family.names,
                       family=self.family.name)

    def masks(self, rows: torch.Tensor, spec: MetricSpec, only: range | None = None,
              state: dict | None = None) -> torch.Tensor:
        """Per-image results (S, n) of the soups `rows` (S, K) on the clean, attack or corruption
        metric `spec`, on the batches numbered in `only` (default all), folded into one batch
        when there are several soups."""
        state = state or {"done": 0, "total": 0, "callback": None}
        if spec.kind == "union":
            raise ValueError("a union's mask is the intersection of its threats' masks")
        if spec.source:
            return self._transferred(rows, spec, only, state)
        if self.folded(len(rows)):
            return self._folded(rows, spec, only, state)
        if spec.kind == "attack":
            return torch.stack([self._attacked(row, spec, state, only) for row in rows])
        masks = torch.stack([self._predicted(row, spec) if only is None else self._predicted_on(row, spec, only)
                             for row in rows])
        _advance(state, len(rows), spec.column)
        return masks

    def folded(self, soups: int) -> bool:
        """Whether `masks` folds `soups` soups into one batch."""
        return soups > 1 and self.folds

    def layout(self, soups: int) -> str:
        """How `masks` batches `soups` soups, as the store records it."""
        return f"folded with {soups - 1} other soups" if self.folded(soups) else "alone"

    def _units(self, spec: MetricSpec) -> int:
        return {"attack": self.batch_count(), "union": self.batch_count() * len(spec.threats)}.get(spec.kind, 1)

    def _records(self, rows: torch.Tensor, spec: MetricSpec, state: dict) -> list[Record]:
        keys = [self.key(row, spec) for row in rows]
        found = self.store.get_many(keys) if self.store is not None else {}
        records = {i: self.stored(rows[i], spec, found[k]) for i, k in enumerate(keys) if k in found}
        missing_count = len(rows) - len(records)
        _advance(state, self._units(spec) * len(records),
                 f"measuring {spec.column}" if missing_count else f"{spec.column} (cached)")
        missing = [i for i in range(len(rows)) if i not in records]
        size = max(1, len(missing)) if spec.source else self.fold  # transfer examples are crafted once for all
        for start in range(0, len(missing), size):
            chunk = missing[start : start + size]
            if spec.kind == "union":
                masks = torch.stack([
                    torch.stack([unpackbits(r.mask, len(self.images)) for r in self._records(rows[chunk], part, state)])
                    for part in measured_specs(spec)
                ]).all(0)
            else:
                masks = self.masks(rows[chunk], spec, state=state)
            fresh = [(keys[i], self.record(rows[i], spec, mask)) for i, mask in zip(chunk, masks, strict=True)]
            if self.store is not None:
                layout = "transfer: examples crafted once per batch" if spec.source else self.layout(len(chunk))
                self.store.put_many([(key, record, self.family_id, layout) for key, record in fresh],
                                    hashes=self.family.hashes)
            records.update((i, record) for i, (_, record) in zip(chunk, fresh, strict=True))
        return [records[i] for i in range(len(rows))]

    def _predicted(self, row: torch.Tensor, spec: MetricSpec) -> torch.Tensor:
        return self._predicted_on(row, spec, None)

    def _predicted_on(self, row: torch.Tensor, spec: MetricSpec, only: range | None) -> torch.Tensor:
        model = self.classifier(row)
        with torch.no_grad():
            return torch.cat([(self._logits(model, row, x).argmax(1) == y).cpu() for x, y in self.batches(spec, only)])

    def _logits(self, model: Classifier, row: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        check_finite_logits(logits, row)
        return logits

    def _attacked(self, row: torch.Tensor, spec: MetricSpec, state: dict, only: range | None = None) -> torch.Tensor:
        model = self.classifier(row)
        attacks = spec_attacks(spec, model, seed=self.seed)
        robust, message = [], f"{spec.column}: 0/{len(self.images)} images"
        for x, y in self.batches(spec, only):
            if not robust:  # a soup with NaN outputs has them on every image: one batch tells
                with torch.no_grad():
                    self._logits(model, row, x)
            robust.append(robust_mask(attacks, model, x, y, progress=_within(state, 1, message)).cpu())
            done = torch.cat(robust)
            message = f"{spec.column}: {len(done)}/{len(self.images)} images"
            _advance(state, 1, message, self.record(row, spec, done))
        return torch.cat(robust)

    def _transferred(self, rows: torch.Tensor, spec: MetricSpec, only: range | None, state: dict) -> torch.Tensor:
        """Masks (S, n) of a transfer attack: each batch's examples are crafted once on the source
        (`source_model`), then every soup of `rows` is judged on them (`survives_transfer`)."""
        attacks = spec_attacks(spec, self.source_model(spec.source), seed=self.seed)
        masks = []
        for x, y in self.batches(spec, only):
            message = f"{spec.column}: {len(rows)} soups"
            examples = transfer_examples(attacks, x, y, progress=_within(state, len(rows), message))
            batch = []
            for row in rows:
                model = self.classifier(row)
                with torch.no_grad():
                    self._logits(model, row, x)
                batch.append(survives_transfer(model, x, y, examples).cpu())
            masks.append(torch.stack(batch))
            _advance(state, len(rows), message)
        return torch.cat(masks, dim=1)

    def _folded(self, rows: torch.Tensor, spec: MetricSpec, only: range | None, state: dict) -> torch.Tensor:
        """Masks (S, n) of S soups run as one folded classifier: soup s on rows s*b:(s+1)*b."""
        model = self.soup.folded(rows, extrapolate=True, margin=EXTRAPOLATION_LIMIT)
        attacks = spec_attacks(spec, model, seed=self.seed) if spec.kind == "attack" else []
        s, masks = len(rows), []
        for index, (x, y) in enumerate(self.batches(spec, only)):
            xs, ys = x.repeat(s, 1, 1, 1), y.repeat(s)
            if index == 0 or not attacks:  # a soup with NaN outputs has them on every image: one batch tells
                with torch.no_grad():
                    logits = model(xs)
                check_finite_logits(logits.view(s, len(x), -1), rows)
            if attacks:
                within = _within(state, s, f"{spec.column}: {s} soups folded")
                masks.append(robust_mask(attacks, model, xs, ys, batch_size=len(xs), progress=within).view(s, -1).cpu())
                _advance(state, s, f"{spec.column}: {s} soups folded")
            else:
                masks.append((logits.argmax(1) == ys).view(s, -1).cpu())
        if not attacks:
            _advance(state, s, f"{spec.column}: {s} soups folded")
        return torch.cat(masks, dim=1)


def measured_specs(spec: MetricSpec) -> list[MetricSpec]:
    """The specs measured to get `spec`: a union's attack per threat at its default budget
    (its record is their intersection), else `spec` itself."""
    return spec.measured_specs()


def soup_identity(hashes: Sequence[str], row: torch.Tensor) -> list[tuple[str, float]]:
    """What a soup is, for caching: its ingredients' content hashes with their nonzero weights
    (rounded as `soups.weights.weights_key` rounds them), sorted, so the same soup has one key
    whichever family folder it is evaluated from."""
    kept = [(h, float(w)) for h, w in zip(hashes, row, strict=False) if float(w) != 0.0]
    return sorted(zip((h for h, _ in kept), weights_key([w for _, w in kept]), strict=True))


def _within(state: dict, units: int, message: str) -> ShareCallback:
    """Reports of the share done of the next `units` units of work, before `_advance` counts them."""

    def report(share: float) -> None:
        if state["callback"] is not None:
            state["callback"](Progress(min(state["total"], state["done"] + units * share), state["total"], message))

    return report


def _advance(state: dict, units: int, message: str, partial: Record | None = None) -> None:
    state["done"] = min(state["total"], state["done"] + units)
    if state["callback"] is not None:
        state["callback"](Progress(state["done"], state["total"], message, partial))
