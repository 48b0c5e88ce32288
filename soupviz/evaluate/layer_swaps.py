"""Where robustness lives: the layer-swap matrix. The base ingredient with one block group taken
from another ingredient, for every group (`soupviz.soups.layerwise.block_groups`) and every other
ingredient, measured like soups (`merge_evaluator`) beside the base itself; and those records read
back from a store for the figure (`soupviz.present.merge_figures.layer_swap_heatmap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from soupviz.checkpoints.families import SoupFamily
from soupviz.evaluate.evaluator import Evaluator
from soupviz.evaluate.merges import Merge, lineage_base, merge_evaluator, merge_family
from soupviz.models.registry import create_model
from soupviz.progress import ProgressCallback
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record
from soupviz.results.store import ResultStore, family_fingerprint
from soupviz.soups.layerwise import block_groups


@dataclass(frozen=True)
class Swap:
    """The base with block `group` taken from ingredient `donor` (an index), as a `Merge`."""

    group: str
    donor: int
    merge: Merge

    def title(self, labels: Sequence[str]) -> str:
        """The swap's row name, e.g. 'layer3 ← L2 0.5'."""
        return f"{self.group} ← {labels[self.donor]}"


def family_groups(family: SoupFamily) -> list[str]:
    """The block groups of the family's architecture, in model order."""
    card = family.ingredients[0].card
    return list(block_groups(create_model(card.arch, card.num_classes, card.mean, card.std)))


def example_groups(family: SoupFamily) -> str:
    """A groups text to start from ('layer3=l1' on the shipped family): the middle block group of
    the family's architecture taken from its last ingredient."""
    groups = family_groups(family)
    return f"{groups[len(groups) // 2]}={family.names[-1]}"


def layer_swaps(family: SoupFamily, base: int) -> list[Swap]:
    """Every (group, other ingredient) swap into the base, donor-major then in model order."""
    k = len(family.names)
    return [Swap(group, donor, Merge(groups=((group, tuple(float(i == donor) for i in range(k))),)))
            for donor in range(k) if donor != base for group in family_groups(family)]


def base_row(family: SoupFamily, base: int) -> torch.Tensor:
    """The base ingredient's one-hot soup weights (K,), float64."""
    return torch.eye(len(family.names), dtype=torch.float64)[base]


def evaluate_swaps(
    evaluator: Evaluator, specs: Sequence[MetricSpec], base: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[Record]:
    """Records of the base (a plain soup) and of every layer swap into it on `specs`, on the
    evaluator's images, seed and store; the base defaults to the family's lineage."""
    family = evaluator.family
    index = lineage_base(family, base)
    row = base_row(family, index)
    records = evaluator.evaluate(row, specs, progress)
    for swap in layer_swaps(family, index):
        records += merge_evaluator(evaluator, swap.merge).evaluate(row, specs, progress)
    return records


@dataclass(frozen=True)
class StoredSwaps:
    """The layer-swap records of one image set: the base's and each swap's, by metric key."""

    base: int
    swaps: list[Swap]
    base_records: dict[str, Record]
    swap_records: dict[tuple[str, int], dict[str, Record]]
    images: str


def stored_swaps(store: ResultStore, family: SoupFamily, base: str | None = None) -> StoredSwaps | None:
    """The layer swaps of `family` in `store`, on the image set with the most swap records and the
    metrics stored for the most swaps (all of them once a run is complete; a metric measured for a
    few swaps only is left out), the last stored record of a metric speaking for it, with the base's
    records on those images and metrics; None when the store holds no swap."""
    index = lineage_base(family, base)
    swaps = layer_swaps(family, index)
    found = {(s.group, s.donor): store.records(family=merge_family(family, s.merge)[1]) for s in swaps}
    counts: dict[str, int] = {}
    for records in found.values():
        for record in records:
            counts[record.images] = counts.get(record.images, 0) + 1
    if not counts:
        return None
    images = max(counts, key=counts.get)
    swap_records = {key: {r.spec: r for r in records if r.images == images} for key, records in found.items()}
    coverage: dict[str, int] = {}
    for records in swap_records.values():
        for spec in records:
            coverage[spec] = coverage.get(spec, 0) + 1
    specs = {spec for spec, count in coverage.items() if count == max(coverage.values())}
    swap_records = {key: {spec: r for spec, r in records.items() if spec in specs}
                    for key, records in swap_records.items()}
    row = [float(w) for w in base_row(family, index)]
    base_records = {r.spec: r for r in store.records(family=family_fingerprint(family.hashes))
                    if r.images == images and r.spec in specs and r.weights == row}
    return StoredSwaps(index, swaps, base_records, swap_records, images)
