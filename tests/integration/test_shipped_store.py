"""The precomputed store shipped with the family (`results.sqlite`) holds what its README says,
so the explorer, heatmap and trade-off pages open on finished figures: clean accuracy on the whole
4-simplex at step 0.1, L∞ and L2 with the default attacks on it too (500 images), L∞, L2 and L1
with the preview attack and L∞ and L2 with the default attacks on the step-0.2 grid (200 images),
the 14 corruptions × 5 severities on the whole step-0.1 grid, the presets over every budget, and the SAT baseline
beside them; every record complete and labelled by the attack that made it; the pages pick the
most complete grid of each."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from soupviz.checkpoints.families import load_baselines, load_family
from soupviz.results.grids import (
    family_records,
    family_store,
    stored_baselines,
    stored_grid,
    stored_grids,
    strongest_grids,
    summary_grids,
    tradeoff_grids,
)
from soupviz.results.store import family_fingerprint
from soupviz.serve.settings import FAMILIES_DIR
from soupviz.serve.soup_rows import row_soups
from soupviz.soups.weights import grid_weights
from soupviz.threats import THREATS

pytestmark = pytest.mark.slow  # unpacks and reads the whole shipped store

SHIPPED = FAMILIES_DIR / "cifar10-preact_resnet_small"
ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_store_covers_the_grids_its_readme_names() -> None:
    family = load_family(SHIPPED)
    store = family_store(SHIPPED)
    assert not (SHIPPED / "results.sqlite").exists() and (SHIPPED / "results.sqlite.xz").is_file()
    records = family_records(store, family.hashes)
    by_method: dict[tuple[str, int], list] = {}
    for record in records:
        if record.kind != "corruption":
            by_method.setdefault((record.method, record.n), []).append(record)

    def covered(method: str, n: int, step: float) -> int:
        """How many soups of the step's grid the method's records on n images cover."""
        return stored_grid(by_method.get((method, n), []), grid_weights(4, step)).found

    assert covered("clean accuracy", 500, 0.1) == 286
    preview = [f"PGD-10 {threat}" for threat in ("L∞ 8/255", "L2 0.5", "L1 12")]
    default = [f"PGD-10 + PGD-T-10 (3 targets) {threat}" for threat in ("L∞ 8/255", "L2 0.5")]
    assert all(covered(m, 200, 0.2) == 56 for m in preview)
    assert all(covered(m, 200, 0.2) == 56 and covered(m, 200, 0.5) == 10 for m in default)
    assert all(covered(m, 500, 0.1) == 286 for m in default)
    assert all(r.mask and r.n in (200, 500) for r in records if r.upper_bound)

    grids = stored_grids(records, 4)
    shown = {grid.records[0].method: grid for grid in grids.values() if grid.records[0].kind == "attack"}
    for method in default:
        assert shown[method].found == 286 and shown[method].share == 1.0, method
        assert all(record.n == 500 for record in shown[method].records), method
    mean = next(grid for grid in grids.values() if grid.records[0].kind == "corruption-mean")
    assert mean.records[0].conditions == 70 and mean.found == mean.expected == 286 and mean.share == 1.0

    presets = row_soups(["ingredients", "presets"], family, None)
    strongest = strongest_grids(stored_grids(records, 4, [w for _, w in presets]))
    transfer = {key for key, grid in strongest.items()
                if grid.records[0].kind == "attack" and grid.records[0].measure.source}
    # L∞, L2 (default attacks) and L1 12 (preview) crafted on each of the four ingredients, on 200 images
    assert len(transfer) == 12 and all(strongest[key].found == 8 and strongest[key].records[0].n == 200
                                       for key in transfer)
    white_box = list(summary_grids(strongest).values())  # Home's heatmap: the transfers are the Merge lab's
    assert len(white_box) == 12 and all(grid.found == len(presets) == 8 for grid in white_box)
    assert not any(key in transfer for key in summary_grids(strongest))
    baselines = load_baselines(family)
    assert len(stored_baselines(store, family, baselines, white_box)) == 12
    for threat in THREATS:  # the trade-off's SAT triangle, on the images of each stored grid
        assert len(stored_baselines(store, family, baselines, tradeoff_grids(grids, threat))) == 2, threat


def test_reading_the_shipped_store_leaves_the_family_folder_as_committed() -> None:
    """The store ships packed (`results.sqlite.xz`, a committed file under 20 MB); pages read an
    unpacked copy in the cache folder, so a clone's `git status` stays clean after the dashboard ran."""
    packed = SHIPPED / "results.sqlite.xz"
    before = packed.read_bytes()
    store = family_store(SHIPPED)
    assert SHIPPED not in store.path.parents and len(before) < 20 * 2**20
    assert store.records(family=family_fingerprint(load_family(SHIPPED).hashes))
    assert family_store(SHIPPED).path == store.path  # unpacked once
    del store
    gc.collect()
    assert packed.read_bytes() == before and not (SHIPPED / "results.sqlite").exists()


def test_the_shipped_store_holds_the_layer_swap_matrix() -> None:
    from soupviz.evaluate.layer_swaps import stored_swaps

    family = load_family(SHIPPED)
    swaps = stored_swaps(family_store(SHIPPED), family)
    assert family.names[swaps.base] == "linf" and len(swaps.swaps) == 18
    # the default attacks speak where they cover every swap (the PGD-10 preview steps aside): L∞ and
    # L2 by PGD-10 + PGD-T-10, L1 by AutoAttack's APGD stages, on the base and all 18 swaps
    complete = {"clean", "linf:0.0313725:pgd+pgd-t:10:1:t3", "l2:0.5:pgd+pgd-t:10:1:t3", "l1:12:autoattack-apgd:0:1"}
    assert set(swaps.base_records) == complete
    assert all(set(records) == complete for records in swaps.swap_records.values())
    assert all(r.n == 200 and r.mask for records in swaps.swap_records.values() for r in records.values())
