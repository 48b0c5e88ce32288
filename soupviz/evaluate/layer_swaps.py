"""Where robustness lives: the layer-swap matrix. The base ingredient with one block group taken
from another ingredient, for every group (`soupviz.soups.layerwise.block_groups`) and every other
ingredient, measured like soups (`merge_evaluator`) beside the base itself; and those records read
back from a store for the figure (`soupviz.present.merge_figures.layer_swap_heatmap`); and a
layer-wise soup's groups from one choice per block group (`chosen_groups`), as the Merge lab sets them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from soupviz.checkpoints.families import SoupFamily
from soupviz.errors import SoupvizError
from soupviz.evaluate.evaluator import Evaluator
from soupviz.evaluate.merges import Merge, lineage_base, merge_evaluator, merge_family, parse_groups
from soupviz.models.registry import create_model
from soupviz.progress import ProgressCallback
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record
from soupviz.results.speaking import spec_quantity, strength_rank
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


SOUP_CHOICE, MIX_CHOICE = "soup", "mix"  # a block group keeps the soup's weights / takes weights given as text


def example_choices(family: SoupFamily) -> dict[str, str]:
    """One choice per block group of the family's architecture, in model order, to start a
    layer-wise soup from: `SOUP_CHOICE` everywhere but the middle group, which takes the family's
    last ingredient ('layer3' from 'l1' on the shipped family)."""
    groups = family_groups(family)
    return {group: family.names[-1] if i == len(groups) // 2 else SOUP_CHOICE for i, group in enumerate(groups)}


def chosen_groups(choices: Mapping[str, str], names: Sequence[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """A layer-wise soup's `Merge.groups` from one choice per block group: an ingredient's name,
    soup weights as 'W:W:...' (one per ingredient, in family order) or `SOUP_CHOICE` (the group
    keeps the soup's weights), read by `parse_groups` as the CLI's --groups is.

    Raises:
        SoupvizError: every group keeps the soup's weights, or a choice is neither an ingredient nor weights.
    """
    text = ",".join(f"{group}={choice}" for group, choice in choices.items() if choice != SOUP_CHOICE)
    if not text:
        raise SoupvizError("Every block group keeps the soup's weights, so this is the plain soup: give at least "
                           "one group an ingredient or a mix.")
    return parse_groups(text, names)


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
    """The layer swaps of `family` in `store`, on the image set with the most swap records, with the
    base's records on those images; the last stored record of a metric speaks for it. Per quantity
    (clean, a threat at a budget: `spec_quantity`) one metric is kept: the strongest attack stored
    for every swap (`strength_rank`); for a quantity that no attack covers completely, the one
    stored for the most swaps, if the base has it too, as a partial column whose missing cells stay
    missing (a run stopped for time). A swap is the base's soup with one group swapped: a layer-wise
    soup of other weights is not one. None when the store holds no swap with a metric to show."""
    index = lineage_base(family, base)
    swaps = layer_swaps(family, index)
    row = [float(w) for w in base_row(family, index)]  # a swap is the base elsewhere, not another soup
    found = {(s.group, s.donor): [r for r in store.records(family=merge_family(family, s.merge)[1]) if r.weights == row]
             for s in swaps}
    counts: dict[str, int] = {}
    for records in found.values():
        for record in records:
            counts[record.images] = counts.get(record.images, 0) + 1
    if not counts:
        return None
    images = max(counts, key=counts.get)
    swap_records = {key: {r.spec: r for r in records if r.images == images} for key, records in found.items()}
    base_all = {r.spec: r for r in store.records(family=family_fingerprint(family.hashes))
                if r.images == images and r.weights == row}
    measures: dict[str, MetricSpec] = {}
    coverage: dict[str, int] = {}
    for records in swap_records.values():
        for spec, record in records.items():
            measures[spec] = record.measure
            coverage[spec] = coverage.get(spec, 0) + 1
    chosen = []
    for quantity in {spec_quantity(m) for m in measures.values()}:
        mine = [spec for spec, m in measures.items() if spec_quantity(m) == quantity]
        complete = [spec for spec in mine if coverage[spec] == len(swaps)]
        if complete:
            chosen.append(min(complete, key=lambda spec: strength_rank(measures[spec])))
        elif partial := [spec for spec in mine if spec in base_all]:
            chosen.append(max(partial, key=lambda spec: (coverage[spec], -strength_rank(measures[spec]))))
    if not chosen:
        return None
    swap_records = {key: {spec: r for spec, r in records.items() if spec in chosen}
                    for key, records in swap_records.items()}
    base_records = {spec: r for spec, r in base_all.items() if spec in chosen}
    return StoredSwaps(index, swaps, base_records, swap_records, images)
