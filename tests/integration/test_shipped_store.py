"""The precomputed store shipped with the family (`results.sqlite`) holds what its README says,
so the explorer, heatmap and trade-off pages open on finished figures: clean accuracy on the whole
4-simplex at step 0.1, L∞ and L2 with the default attacks on it too (500 images), L∞, L2 and L1
with the preview attack and L∞ and L2 with the default attacks on the step-0.2 grid (200 images),
every record complete and labelled by the attack that made it; the pages pick the most complete
grid of each."""

from __future__ import annotations

import gc
import subprocess
from pathlib import Path

import pytest

from soupviz.checkpoints import load_family
from soupviz.settings import FAMILIES_DIR
from soupviz.store import ResultStore, family_fingerprint
from soupviz.store_grid import family_records, family_store, stored_grid, stored_grids
from soupviz.weights import grid_weights

SHIPPED = FAMILIES_DIR / "cifar10-preact_resnet_small"
ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_store_covers_the_grids_its_readme_names() -> None:
    family = load_family(SHIPPED)
    store = family_store(SHIPPED)
    assert store.path == SHIPPED / "results.sqlite"
    records = family_records(store, family_fingerprint(family.hashes))
    by_method: dict[str, list] = {}
    for record in records:
        by_method.setdefault(record.method, []).append(record)

    def covered(method: str, step: float) -> int:
        """How many soups of the step's grid the method's records cover."""
        return stored_grid(by_method.get(method, []), grid_weights(4, step)).found

    clean = [m for m in by_method if not by_method[m][0].upper_bound]
    assert len(clean) == 1 and covered(clean[0], 0.1) == 286 and by_method[clean[0]][0].n == 500
    preview = [m for m in by_method if m.startswith("PGD-10 L")]
    default = [m for m in by_method if m.startswith("PGD-10 + PGD-T-10 (3 targets) L")]
    assert len(preview) == 3 and all(covered(m, 0.2) == 56 for m in preview)
    assert len(default) == 2 and all(covered(m, 0.2) == 56 and covered(m, 0.5) == 10 for m in default)
    assert all(r.mask and r.n in (200, 500) for r in records if r.upper_bound)

    shown = {grid.records[0].method: grid for grid in stored_grids(records, 4).values()}
    for method in default:
        assert shown[method].found == 286 and shown[method].share == 1.0, method
        assert all(record.n == 500 for record in shown[method].records), method


def test_reading_the_shipped_store_leaves_its_file_as_committed(tmp_path: Path) -> None:
    """The store is committed in WAL mode, so the pages opening it do not rewrite the file's header
    and a clone's `git status` stays clean after the dashboard has run."""
    shown = subprocess.run(["git", "show", f"HEAD:{SHIPPED.relative_to(ROOT) / 'results.sqlite'}"],
                           capture_output=True, cwd=ROOT, check=False)
    if shown.returncode:
        pytest.skip("not a git checkout: the committed store cannot be read")
    committed = tmp_path / "results.sqlite"
    committed.write_bytes(shown.stdout)
    store = ResultStore(committed)
    assert store.records(family=family_fingerprint(load_family(SHIPPED).hashes))
    del store
    gc.collect()
    assert committed.read_bytes() == shown.stdout
