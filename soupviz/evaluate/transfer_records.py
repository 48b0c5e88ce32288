"""Transfer robustness read back from records: which stored transfer records speak for a family's
soups (the image set holding most of them), their white-box twins on the same images, the column
order of a heatmap (per threat: white-box, then each source), and transfer − white-box paired per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from soupviz.evaluate.comparison import PairedDifference, paired_difference
from soupviz.results.metric_specs import UNIFORM_SOURCE
from soupviz.results.records import Record
from soupviz.threats import THREATS


def white_box_key(record: Record) -> str:
    """The key of the white-box metric a transfer record is the twin of (its spec without source)."""
    return replace(record.measure, source=None).key


def is_self_transfer(record: Record) -> bool:
    """Whether a transfer record's examples were crafted on the evaluated soup itself (an ingredient
    from its own name, the uniform soup from 'uniform'): a check that should match white-box."""
    source, k = record.measure.source, len(record.weights)
    if source == UNIFORM_SOURCE:
        return all(abs(w - 1 / k) < 1e-9 for w in record.weights)
    names = [name.lower() for name in record.ingredients]
    return source.lower() in names and all(abs(w - (i == names.index(source.lower()))) < 1e-9
                                           for i, w in enumerate(record.weights))


@dataclass(frozen=True)
class StoredTransfers:
    """Transfer records of one image set, their white-box twins on it, and the heatmap's columns."""

    records: list[Record]
    columns: list[str]
    images: str


def stored_transfers(records: Sequence[Record]) -> StoredTransfers | None:
    """From a family's stored records: the transfer records on the image set that holds most of
    them (the last stored per soup and metric speaking), the white-box records of the same metrics
    on those images, and the columns in threat order, each threat's white-box first, then its
    sources in the order stored. None without transfer records."""
    transfers = [r for r in records if r.kind == "attack" and r.measure.source]
    if not transfers:
        return None
    counts: dict[str, int] = {}
    for record in transfers:
        counts[record.images] = counts.get(record.images, 0) + 1
    images = max(counts, key=counts.get)
    chosen = {(tuple(r.weights), r.spec): r for r in transfers if r.images == images}
    twins = {white_box_key(r) for r in chosen.values()}
    chosen.update(((tuple(r.weights), r.spec), r) for r in records
                  if r.images == images and r.kind == "attack" and not r.measure.source and r.spec in twins)
    kept = list(chosen.values())
    columns = []
    for threat in THREATS:
        mine = [r for r in kept if r.measure.threat == threat]
        columns += sorted(dict.fromkeys(r.spec for r in mine), key=lambda key: "@" in key)
    return StoredTransfers(kept, columns, images)


def transfer_gaps(records: Sequence[Record]) -> list[tuple[Record, Record, PairedDifference]]:
    """(transfer, white-box, transfer − white-box paired per image) for every transfer record whose
    soup has the white-box twin on the same images; a positive difference means the soup resists
    the transferred examples better than its own white-box attack."""
    index = {(tuple(r.weights), r.spec, r.images): r for r in records if not r.measure.source}
    found = []
    for record in (r for r in records if r.kind == "attack" and r.measure.source):
        twin = index.get((tuple(record.weights), white_box_key(record), record.images))
        if twin is not None:
            found.append((record, twin, paired_difference(record, twin)))
    return found

