"""Read a family's records for a grid of soups from the results store, with the share done, so
pages can draw figures from a store while a sweep is still writing to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from soupviz.metrics import MetricSpec, Record
from soupviz.report import weights_key
from soupviz.store import ResultStore


@dataclass(frozen=True)
class StoredGrid:
    """The stored records of a grid (one per soup and spec, the first stored wins) and how many
    of the expected (soup, spec) pairs they cover."""

    records: list[Record]
    found: int
    expected: int

    @property
    def share(self) -> float:
        return self.found / self.expected if self.expected else 0.0

    def caption(self) -> str:
        """'from the precomputed store: N of M soups' for a figure's note or caption."""
        return f"from the precomputed store: {self.found} of {self.expected} soups"


def stored_grid(
    store: ResultStore, family: str, specs: Sequence[MetricSpec], grid: Sequence[Sequence[float]],
) -> StoredGrid:
    """The records of `family` (its `family_fingerprint`) in `store` for the soups of `grid` under
    `specs`. Missing pairs are simply absent; reading never blocks a sweep writing the store."""
    wanted = {weights_key(w) for w in grid}
    records, seen = [], set()
    for spec in specs:
        for record in store.records(family=family, spec=spec.key):
            key = (weights_key(record.weights), spec.key)
            if key[0] in wanted and key not in seen:
                seen.add(key)
                records.append(record)
    return StoredGrid(records, len(records), len(wanted) * len(specs))
