"""Read a family's records for a grid of soups from the results store, with the share done, so
pages can draw figures from a store while a sweep is still writing to it."""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from soupviz.checkpoints.families import Ingredient, SoupFamily, baseline_family_name, family_from_ingredients
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.packed import SHIPPED_STORE, packed_store, unpacked_store
from soupviz.results.records import CorruptionMean, Record, corruption_mean
from soupviz.results.speaking import quantity, speaking_record, spec_quantity, strength_order
from soupviz.results.store import ResultStore
from soupviz.soups.weights import grid_weights, weights_key
from soupviz.threats import THREATS

GRID_STEPS = (0.1, 0.2, 0.25, 0.5)
WRITING_SECONDS = 120.0


@dataclass(frozen=True)
class StoredGrid:
    """The stored records of a grid (one per soup and spec, the first stored wins) and how many
    of the expected (soup, spec) pairs they cover; for the corruption mean, one `CorruptionMean`
    per soup whose conditions are all stored."""

    records: list[Record | CorruptionMean]
    found: int
    expected: int

    @property
    def share(self) -> float:
        return self.found / self.expected if self.expected else 0.0

    def ranked(self) -> list[Record]:
        """The grid's soups inside the simplex, most accurate first (ties in grid order)."""
        inside = [r for r in self.records if min(r.weights) >= 0]
        return sorted(inside, key=lambda r: -r.accuracy)

    def caption(self) -> str:
        """'from the precomputed store: N of M soups' for a figure's note or caption."""
        return f"from the precomputed store: {self.found} of {self.expected} soups"


def stored_grid(records: Sequence[Record], grid: Sequence[Sequence[float]]) -> StoredGrid:
    """The first of `records` (read from a store, e.g. `family_records`) for each soup of `grid`
    and spec, and the share of the grid's (soup, spec) pairs they cover; missing pairs are absent."""
    wanted = {weights_key(w) for w in grid}
    chosen, seen = [], set()
    for record in records:
        key = (weights_key(record.weights), record.spec)
        if key[0] in wanted and key not in seen:
            seen.add(key)
            chosen.append(record)
    specs = {record.spec for record in records}
    return StoredGrid(chosen, len(chosen), len(wanted) * max(1, len(specs)))


def stored_grids(
    records: Sequence[Record], k: int, soups: Sequence[Sequence[float]] | None = None,
) -> dict[str, StoredGrid]:
    """Per spec key, the `stored_grid` of a family's `records` (e.g. `family_records`) over the grid
    their sweep ran on (`grid_step`, for `k` ingredients), or over `soups` where given (a heatmap's
    rows). Where a spec was stored on several image subsets, the most complete grid is kept (by
    share done, then soups found, then images per soup; the first stored on a tie); a spec none of
    whose soups lies on its grid is left out. Where corruptions are stored, their
    `corruption_mean_grid` comes just before the first of them."""
    grids: dict[str, StoredGrid] = {}
    subsets: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        subsets.setdefault((record.spec, record.images), []).append(record)
    for (spec, _), subset in subsets.items():
        grid = stored_grid(subset, soups if soups is not None else _grid(k, grid_step(subset, k)))
        if grid.found and (spec not in grids or _completeness(grid) > _completeness(grids[spec])):
            grids[spec] = grid
    mean = corruption_mean_grid(grids)
    if mean is None:
        return grids
    first = next(key for key, grid in grids.items() if grid.records[0].kind == "corruption")
    ordered: dict[str, StoredGrid] = {}
    for key, grid in grids.items():
        if key == first:
            ordered[mean.records[0].spec] = mean
        ordered[key] = grid
    return ordered


def corruption_mean_grid(grids: Mapping[str, StoredGrid]) -> StoredGrid | None:
    """The corruption mean (`corruption_mean`) of each soup of the stored corruption `grids` (per
    spec key, e.g. from `stored_grids`) that has every condition stored, on the image subset most
    conditions were measured on: a soup still missing a condition during a sweep is left out
    rather than averaged over fewer. None without corruption grids or complete soups."""
    corruptions = [g for g in grids.values() if g.records[0].kind == "corruption"]
    if not corruptions:
        return None
    images = Counter(g.records[0].images for g in corruptions).most_common(1)[0][0]
    conditions = [g for g in corruptions if g.records[0].images == images]
    by_soup: dict[str, list[Record]] = {}
    for grid in conditions:
        for record in grid.records:
            by_soup.setdefault(weights_key(record.weights), []).append(record)
    means = [corruption_mean(soup) for soup in by_soup.values() if len(soup) == len(conditions)]
    if not means:
        return None
    return StoredGrid(means, len(means), max(g.expected for g in conditions))


def _completeness(grid: StoredGrid) -> tuple[float, int, int]:
    """How complete `grid` is, for choosing among a spec's image subsets: share done, soups found, images."""
    return grid.share, grid.found, grid.records[0].n


def summary_grids(grids: Mapping[str, StoredGrid]) -> dict[str, StoredGrid]:
    """`grids` (e.g. `stored_grids`) as a figure of every metric shows them: corruption conditions
    folded into their mean where it exists (70 columns of conditions would drown the threats), and
    without transfer attacks (a weaker attack on a threat its white-box column measures; the Merge
    lab sets them beside it)."""
    folded = any(g.records[0].kind == "corruption-mean" for g in grids.values())
    return {key: g for key, g in grids.items()
            if not (folded and g.records[0].kind == "corruption") and not _is_transfer(g.records[0])}


def _is_transfer(record: Record | CorruptionMean) -> bool:
    return isinstance(record, Record) and bool(record.measure.source)


def tradeoff_grids(
    grids: Mapping[str, StoredGrid], threat: str, against: str = "clean",
) -> tuple[StoredGrid, StoredGrid] | None:
    """The (x, y) grids a trade-off figure of `threat` against `against` ('clean', another threat,
    or 'corruption-mean') draws from `grids` (e.g. `stored_grids`): for a threat, of its robust
    accuracy grids the one made by a stronger attack than the preview (which overstates robustness)
    where there is one, then the one with the most soups; None where either is missing."""
    found = [grid for grid in grids.values() if grid.found]

    def strongest(name: str) -> StoredGrid | None:
        robust = [g for g in found if g.records[0].kind == "attack" and g.records[0].measure.threat == name
                  and not g.records[0].measure.source]
        return min(robust, key=_weakness) if robust else None

    x = strongest(against) if against in THREATS else next((g for g in found if g.records[0].kind == against), None)
    y = strongest(threat)
    return None if x is None or y is None else (x, y)


def strongest_grids(grids: Mapping[str, StoredGrid]) -> dict[str, StoredGrid]:
    """`grids` (e.g. `stored_grids`) with one grid per quantity measured (clean accuracy, a threat at
    a budget, a union, a corruption condition, the corruption mean): of several attacks on one threat
    and budget, the grid a stronger attack than the preview made where there is one, then the one
    with the most soups (a transfer attack from a source is a quantity of its own, after the white-box
    one). In the order a heatmap reads them: clean, threats by budget, unions, the corruption mean,
    the conditions."""
    best: dict[tuple, tuple[str, StoredGrid]] = {}
    for key, grid in grids.items():
        if not grid.found:
            continue
        measured = quantity(grid.records[0])
        if measured not in best or _weakness(grid) < _weakness(best[measured][1]):
            best[measured] = (key, grid)
    return dict(best[measured] for measured in sorted(best))


def _weakness(grid: StoredGrid) -> tuple[int, int, int]:
    """Sorts the grids of one quantity strongest first: by `speaking.strength_order` of their
    attack (the preview last), then more soups."""
    rank, fewer_images = strength_order(grid.records[0])
    return rank, -grid.found, fewer_images


def family_records(
    store: ResultStore, hashes: Sequence[str], specs: Sequence[MetricSpec] | None = None,
    names: Sequence[str] | None = None, soups: Sequence[Sequence[float]] | None = None,
) -> list[Record]:
    """The records in `store` of every soup of the family with ingredient content hashes `hashes`
    (`SoupFamily.hashes`), whichever family computed them (`ResultStore.soup_records`), of `specs`
    (default all) and of the soups `soups` (default all; only those are parsed), in insertion
    order, their ingredients named `names` where given. Reading never blocks a sweep writing the
    store (WAL mode)."""
    wanted = None if soups is None else {weights_key(w) for w in soups}

    def chosen(weights: list[float] | None) -> bool:
        return weights is not None and weights_key(weights) in wanted

    keep = None if wanted is None else chosen
    if specs is None:
        records = store.soup_records(hashes, soups=keep)
    else:
        records = [r for spec in specs for r in store.soup_records(hashes, spec=spec.key, soups=keep)]
    return records if names is None else [replace(r, ingredients=list(names)) for r in records]


def stored_baselines(
    store: ResultStore, family: SoupFamily, baselines: Sequence[Ingredient], grids: Sequence[StoredGrid],
    complete: bool = True,
) -> list[Record | CorruptionMean]:
    """The records of `baselines` (e.g. `load_baselines`) in `store` on the metric and image subset
    of each of `grids` (for a corruption mean, the mean of all its conditions), as
    `soupviz eval FAMILY --baselines --store` writes them: what a figure drawn from the grids sets
    beside the soups. With `complete`, a baseline missing any of them is left out."""
    found = []
    for baseline in baselines:
        one = family_from_ingredients([baseline], baseline_family_name(family, baseline))
        mine = [replace(r, family=one.name) for r in family_records(store, one.hashes, names=one.names)]
        matches = [_baseline_match(mine, grid.records[0]) for grid in grids]
        if all(matches) or not complete:
            found += [match for match in matches if match is not None]
    return found


def _baseline_match(records: Sequence[Record], like: Record | CorruptionMean) -> Record | CorruptionMean | None:
    """Of one baseline's `records`, the one measuring what `like` measures on its images."""
    if like.kind != "corruption-mean":
        return next((r for r in records if r.spec == like.spec and r.images == like.images), None)
    conditions: dict[str, Record] = {}
    for record in records:
        if record.kind == "corruption" and record.images == like.images:
            conditions.setdefault(record.spec, record)
    return corruption_mean(list(conditions.values())) if len(conditions) == like.conditions else None


def family_store(folder: Path | None) -> ResultStore:
    """The store a family's pages read: the one in its folder (`results.sqlite`, where a sweep
    writes; else the shipped `results.sqlite.xz`, unpacked once into the cache folder), else the
    default store in the cache folder, where `soupviz sweep` writes by default."""
    if folder:
        shipped, packed = Path(folder) / SHIPPED_STORE, packed_store(Path(folder))
        if shipped.is_file():
            return ResultStore(shipped)
        if packed is not None:
            stat = packed.stat()
            return ResultStore(unpacked_store(str(packed), stat.st_size, stat.st_mtime_ns))
    return ResultStore(None)


def being_written(store: ResultStore, within: float = WRITING_SECONDS, now: float | None = None) -> bool:
    """Whether `store` was written within the last `within` seconds: a sweep is likely adding
    records, so pages reading it should reread it often (and rarely otherwise)."""
    modified = store.modified()
    return modified > 0 and (time.time() if now is None else now) - modified <= within


def grid_step(records: Sequence[Record], k: int, steps: Sequence[float] = GRID_STEPS) -> float:
    """The coarsest of `steps` whose `k`-ingredient simplex grid holds every convex soup of
    `records` (the grid a sweep was run on), else the finest."""
    soups = {weights_key(r.weights) for r in records if min(r.weights) >= 0}
    for step in sorted(steps, reverse=True):
        if soups <= _grid_keys(k, step):
            return step
    return min(steps)


@functools.cache
def _grid(k: int, step: float) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(w) for w in grid_weights(k, step))


@functools.cache
def _grid_keys(k: int, step: float) -> frozenset[str]:
    return frozenset(weights_key(w) for w in _grid(k, step))


def stored_records(
    store: ResultStore, hashes: Sequence[str], weights: Sequence[float], specs: Sequence[MetricSpec],
) -> dict[str, Record]:
    """For each of `specs` (by key), the stored record that speaks for the soup `weights` of the
    family with ingredient content hashes `hashes` and what the spec measures
    (`speaking.speaking_record`: by any attack on the same threat and budget, the strongest, then on
    the most images), where there is one: what a page shows at once, with its attack and n, while
    it measures the soup live."""
    if not store.path.is_file():
        return {}
    key, found = weights_key(weights), {}
    stored_specs = [MetricSpec.from_key(spec) for spec in store.specs(hashes)]
    for spec in specs:
        records = _same_quantity(store, hashes, spec, stored_specs, lambda w: weights_key(w) == key)
        chosen = speaking_record(records)
        if chosen is not None:
            found[spec.key] = chosen
    return found


def speaking_records(store: ResultStore | None, hashes: Sequence[str], records: Sequence[Record]) -> list[Record]:
    """Each of `records` (measured now, e.g. by `soupviz eval`) in its place, or the record of `store`
    that speaks instead (`speaking.speaking_record` of it and every stored record of the same soup,
    quantity and BatchNorm rule, by any attack: a stronger attack, else more images): what a CLI
    table prints, as a page's tiles show `stored_records`. A record without weights stays, and so do
    corruption conditions (their mean must come from one image set)."""
    if store is None or not store.path.is_file():
        return list(records)
    wanted = {weights_key(r.weights) for r in records if r.weights}
    stored_specs = [MetricSpec.from_key(spec) for spec in store.specs(hashes)]
    specs = {spec_quantity(r.measure): r.measure for r in records if r.kind != "corruption"}
    found: dict[tuple, list[Record]] = {}
    for spec in specs.values():
        for r in _same_quantity(store, hashes, spec, stored_specs, lambda w: weights_key(w) in wanted):
            found.setdefault((weights_key(r.weights), quantity(r), r.batchnorm), []).append(r)
    return [speaking_record([r, *found.get((weights_key(r.weights), quantity(r), r.batchnorm), [])])
            if r.weights and r.kind != "corruption" else r for r in records]


def _same_quantity(
    store: ResultStore, hashes: Sequence[str], spec: MetricSpec, stored_specs: Sequence[MetricSpec],
    soups: Callable[[list[float]], bool],
) -> list[Record]:
    """The records in `store` of the soups `soups` accepts measuring what `spec` measures, by any attack."""
    return [r for other in stored_specs if spec_quantity(other) == spec_quantity(spec)
            for r in store.soup_records(hashes, spec=other.key, soups=lambda w: w is not None and soups(w))]
