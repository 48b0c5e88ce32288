"""How far the explorer's interpolated tiles land from measurements, and how fast they come.

For the family's stored grids (default: the shipped family's precomputed store) this interpolates
each stored soup from all the others (`soupviz.results.interpolation.leave_one_out`: the piecewise-linear
interpolation the explorer's tiles show before the live measurement is in) and compares it with
the soup's own record, per metric: mean and largest absolute error in points, over the stored soups
inside the others' hull, beside the records' own 95% interval half-width for scale. It also times
what a slider move costs the explorer: the interpolation of every tile metric at a new soup, once
the grids are triangulated (first use, also timed).

    python bench/bench_interpolation.py                 # writes bench/results/interpolation.json and .md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soupviz.checkpoints.importing import open_family  # noqa: E402
from soupviz.files import atomic_write_json  # noqa: E402
from soupviz.results.grids import family_records, family_store, stored_grids  # noqa: E402
from soupviz.results.interpolation import SimplexInterpolator, leave_one_out  # noqa: E402
from soupviz.serve.page_specs import corruption_specs, robust_specs  # noqa: E402
from soupviz.serve.settings import default_settings, shipped_family_folder  # noqa: E402
from soupviz.soups.weights import project_weights  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default=None, help="default: the shipped family")
    parser.add_argument("--moves", type=int, default=200, help="random soups to time the tiles' interpolation on")
    args = parser.parse_args()
    family = open_family(args.family or shipped_family_folder())
    k, store = len(family.names), family_store(family.folder)
    grids = stored_grids(family_records(store, family.hashes), k)
    tiles = [spec.key for spec in robust_specs(default_settings()) + corruption_specs(default_settings())]
    chosen = {key: grid for key, grid in grids.items()
              if grid.records[0].kind not in ("corruption", "corruption-mean") or key in tiles}

    rows = []
    for key, grid in chosen.items():
        start = time.perf_counter()
        found = leave_one_out(grid.records)
        if found is None:
            continue
        rows.append({"key": key, "tile": key in tiles, **dataclasses.asdict(found),
                     "seconds": round(time.perf_counter() - start, 2)})
        print(rows[-1], flush=True)

    start = time.perf_counter()
    interpolators = [SimplexInterpolator(grids[key].records) for key in tiles if key in grids]
    build = time.perf_counter() - start
    rng = random.Random(0)
    soups = [project_weights([rng.random() for _ in range(k)], total=1.0).tolist() for _ in range(args.moves)]
    times, answered = [], 0
    for soup in soups:
        start = time.perf_counter()
        answered += sum(grid.at(soup) is not None for grid in interpolators)
        times.append(time.perf_counter() - start)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": round(os.getloadavg()[0], 2), "family": family.name, "store_records": len(store),
        "leave_one_out": rows,
        "tiles": {"metrics": [key for key in tiles if key in grids], "triangulate_s": round(build, 3),
                  "per_move_ms": {"median": round(1000 * statistics.median(times), 2),
                                  "max": round(1000 * max(times), 2)},
                  "moves": args.moves,
                  "answered_share": round(answered / (args.moves * max(1, len(interpolators))), 3)},
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(result, RESULTS / "interpolation.json")
    (RESULTS / "interpolation.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = [
        "# Interpolated tiles: leave-one-out error and speed (`bench/bench_interpolation.py`)", "",
        f"{r['machine']}, load average {r['load_average']:.1f}; family {r['family']}, store of "
        f"{r['store_records']} records. Each stored soup inside the hull of the others is interpolated from them "
        "(piecewise-linear over their Delaunay cells, as the explorer's tiles show it before the live measurement "
        "is in) and compared with its own record. Errors in points of accuracy; the records' mean 95% interval "
        "half-width for scale.", "",
        "| metric | attack | images | stored soups | tested | mean error | RMSE | max error | 95% half-width | tile |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["leave_one_out"]:
        lines.append(f"| {row['metric']} | {row['method']} | {row['n']} | {row['soups']} | {row['tested']} "
                     f"| {row['mean_abs']:.2f} | {row['rmse']:.2f} | {row['max_abs']:.2f} | {row['sampling']:.2f} "
                     f"| {'yes' if row['tile'] else ''} |")
    tiles = r["tiles"]
    lines += ["", f"A slider move: interpolating the explorer's {len(tiles['metrics'])} default tile metrics "
              f"({', '.join(tiles['metrics'])}) at a new soup takes {tiles['per_move_ms']['median']} ms (median, "
              f"max {tiles['per_move_ms']['max']} ms over {tiles['moves']} random soups of the simplex; "
              f"{100 * tiles['answered_share']:.0f}% of tiles answered, the rest outside a grid's hull); "
              f"triangulating their grids on first use took {tiles['triangulate_s']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
