"""Benchmark what a slider move in the dashboard costs on the shipped family and real CIFAR-10:
the calls behind it (keep the weights on the simplex, then `quick_records`, the page's
`st.cache_data`-memoised clean accuracy of the new soup on the default subset) for a soup never
seen (cold), one seen in this session (the `st.cache_data` hit) and one only the disk result cache
holds (after `st.cache_data` is cleared), side by side in one run; plus the one-time setup and a
robust metric that fills in afterwards. Prints the ratios and writes bench/results/dashboard.json.

`st.cache_data` runs here outside `streamlit run`: Streamlit then keeps it in its in-memory
storage (`MemoryCacheStorageManager`), the layer that answers hits in a running app too, so a hit
costs what it costs there: hashing the arguments and unpickling a copy of the records.

    OMP_NUM_THREADS=1 python bench/bench_dashboard.py --quick
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the dashboard's pages package, as `streamlit run app.py` sees it

import streamlit as st  # noqa: E402
import streamlit.logger  # noqa: E402

streamlit.logger.set_log_level("error")  # bare-mode warnings (no `streamlit run`), one per cache or state access

from pages._components import _cached_records, quick_records  # noqa: E402
from pages._state import Keys  # noqa: E402
from soupviz.checkpoints.families import load_family  # noqa: E402
from soupviz.data import load_split, resolve_source  # noqa: E402
from soupviz.device import describe_device, pick_device  # noqa: E402
from soupviz.errors import SoupvizError  # noqa: E402
from soupviz.evaluate.factory import BuiltEvaluator, open_evaluator  # noqa: E402
from soupviz.files import atomic_write_json  # noqa: E402
from soupviz.results.metric_specs import MetricSpec  # noqa: E402
from soupviz.results.store import ResultStore  # noqa: E402
from soupviz.serve.settings import default_settings, shipped_family_folder  # noqa: E402
from soupviz.soups.parameters import ParameterMatrix  # noqa: E402
from soupviz.soups.weights import rebalance  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "dashboard.json"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1e3, out


def slider_moves(k: int, count: int, seed: int) -> list[list[float]]:
    """Weights after `count` random slider moves, each kept on the simplex by `rebalance`."""
    rng, weights, moves = random.Random(seed), [1.0 / k] * k, []
    for _ in range(count):
        weights = rebalance(weights, rng.randrange(k), round(rng.uniform(0, 1), 2))
        moves.append(weights)
    return moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer moves, no robust metric")
    parser.add_argument("--family", type=Path, default=shipped_family_folder(), help="default: the shipped family")
    parser.add_argument("--data", default=None, help="CIFAR-10 source (default: $SOUPVIZ_DATA, then the local copy)")
    parser.add_argument("--images", type=int, default=default_settings().images, help="the dashboard's default subset")
    parser.add_argument("--moves", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings, device = default_settings(), pick_device(args.device)
    moves = args.moves or (6 if args.quick else 20)
    clean = [MetricSpec("clean")]
    try:
        if args.family is None or not args.family.is_dir():
            raise SoupvizError(f"No family folder at {args.family}: pass --family.")
        source = resolve_source(args.data)
        setup = {}
        setup["load_family_ms"], family = timed(lambda: load_family(args.family))
        setup["parameter_matrix_ms"], params = timed(lambda: ParameterMatrix.from_family(family, device))
        setup["test_images_ms"], images = timed(lambda: load_split(source, "test").subset(args.images, settings.seed))
    except SoupvizError as error:
        sys.exit(f"bench_dashboard: {error}")
    with tempfile.TemporaryDirectory() as scratch:
        setup["session_evaluator_ms"], evaluator = timed(
            lambda: open_evaluator(family, test=images, params=params, seed=settings.seed,
                                   batch_size=settings.batch_size, batchnorm=settings.batchnorm, cache=False))
        evaluator.store = ResultStore(Path(scratch) / "results.sqlite")
        st.session_state[Keys.EVALUATOR] = BuiltEvaluator(f"bench:{scratch}", evaluator)
        weights = slider_moves(len(family.names), moves + 1, seed=0)
        evaluator.evaluate([weights[0]], clean)  # warm-up: first-call allocations, not a slider move

        def move(w: list[float]) -> float:
            return timed(lambda: quick_records(evaluator, [w], clean))[0]

        cold, memory = [], []
        for w in weights[1:]:  # each new soup, then straight back to it: miss, then st.cache_data hit
            cold.append(move(w))
            memory.append(move(w))
        _cached_records.clear()
        disk = [move(w) for w in weights[1:]]  # st.cache_data empty, the disk result cache full
        rebalance_ms = [timed(lambda: rebalance(weights[0], 1, 0.37))[0] for _ in range(100)]
        accuracy = quick_records(evaluator, [weights[-1]], clean)[0].accuracy
        robust = {}
        if not args.quick:
            spec = MetricSpec("attack", threat="linf", attack=settings.attack, steps=settings.steps)
            robust["metric"] = f"{spec.column} by {settings.attack.upper()}-{settings.steps}"
            robust["ms"], (record,) = timed(lambda: evaluator.evaluate([weights[-1]], [spec]))
            robust["accuracy"] = record.accuracy
            # Attacks run only on correctly classified points; a slider move during an attack waits
            # for the batch in flight (the run stops between batches).
            batches = -(-len(images) // settings.batch_size)
            robust["ms_per_batch"] = robust["ms"] / batches
    result = {
        "device": describe_device(device), "torch": torch.__version__, "streamlit": st.__version__,
        "cpu": platform.machine(), "threads": torch.get_num_threads(), "family": family.name,
        "ingredients": family.names, "arch": family.arch, "k": len(family.names), "images": len(images),
        "data": source, "batch_size": settings.batch_size, "moves": moves,
        "setup_ms": setup,
        "slider_move_ms": {
            "rebalance_median": statistics.median(rebalance_ms),
            "clean_cold_median": statistics.median(cold), "clean_cold_max": max(cold),
            "clean_disk_cache_median": statistics.median(disk),
            "clean_st_cache_data_median": statistics.median(memory),
        },
        "ratios": {
            "cold_over_disk_cache": statistics.median(cold) / statistics.median(disk),
            "cold_over_st_cache_data": statistics.median(cold) / statistics.median(memory),
            "disk_cache_over_st_cache_data": statistics.median(disk) / statistics.median(memory),
        },
        "last_soup_clean_accuracy": accuracy,
        "robust_cold": robust,
        "notes": "A slider move = rebalance + quick_records(new weights, [clean]) on the default subset, through "
                 "the dashboard's st.cache_data function (pages/_components.py _cached_records) run outside "
                 "`streamlit run` (Streamlit's in-memory cache storage). cold: weights never evaluated "
                 "(st.cache_data miss, disk cache miss, set_weights + forward passes); st.cache_data: the same "
                 "weights again in the session (hash the arguments, unpickle the records); disk cache: after "
                 "st.cache_data.clear(), the ResultStore answers. Medians of the same moves in one run.",
    }
    atomic_write_json(result, args.out)
    ms = result["slider_move_ms"]
    print(f"{result['device']}, {family.name} ({', '.join(family.names)}), {len(images)} images from {source}")
    print("setup (once per process or session): " + ", ".join(f"{k} {v:.0f} ms" for k, v in setup.items()))
    print(f"slider move, clean accuracy (medians of {moves}): cold {ms['clean_cold_median']:.0f} ms "
          f"(max {ms['clean_cold_max']:.0f}), disk cache {ms['clean_disk_cache_median']:.2f} ms, "
          f"st.cache_data {ms['clean_st_cache_data_median']:.3f} ms, rebalance {ms['rebalance_median']:.3f} ms")
    ratios = result["ratios"]
    print(f"ratios: cold / disk cache {ratios['cold_over_disk_cache']:.0f}x, "
          f"cold / st.cache_data {ratios['cold_over_st_cache_data']:.0f}x, "
          f"disk cache / st.cache_data {ratios['disk_cache_over_st_cache_data']:.1f}x")
    if robust:
        print(f"robust metric filling in afterwards: {robust['metric']} {robust['ms'] / 1e3:.1f} s "
              f"(accuracy {robust['accuracy']:.1%}; {robust['ms_per_batch'] / 1e3:.2f} s per batch of "
              f"{settings.batch_size}, the longest a slider move waits for an attack in flight)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
