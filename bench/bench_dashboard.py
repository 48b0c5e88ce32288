"""Benchmark what a slider move in the dashboard costs: the library calls behind it (keep the
weights on the simplex, then clean accuracy of the new soup on the default subset), cold (a
soup never seen) against cached (the result cache on disk, and in memory as st.cache_data
keeps it), plus the one-time setup and one robust metric that fills in afterwards. Prints the
ratios measured in this run and writes bench/results/dashboard.json.

    OMP_NUM_THREADS=1 python bench/bench_dashboard.py --quick
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from soupviz.app_state import default_settings, rebalance
from soupviz.checkpoints import Card, load_family, save_checkpoint
from soupviz.dashboard import build_evaluator
from soupviz.data import CIFAR10_CLASSES, ImageSet, load_split, resolve_source
from soupviz.device import describe_device, pick_device
from soupviz.errors import DataError
from soupviz.metrics import MetricSpec
from soupviz.models import create_model
from soupviz.results_cache import ResultCache
from soupviz.soup import ParameterMatrix
from soupviz.storage import atomic_write_json

RESULTS = Path(__file__).parent / "results" / "dashboard.json"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1e3, out


def family_folder(requested: str | None, scratch: Path) -> tuple[Path, str]:
    """The family to time: the one asked for, else the shipped one, else four random
    preact_resnet_small ingredients (timings do not depend on what the weights learnt)."""
    from soupviz.app_state import shipped_family_folder

    folder = Path(requested) if requested else shipped_family_folder()
    if folder is not None and folder.is_dir():
        return folder, str(folder)
    folder = scratch / "family"
    for seed, threat in enumerate(("none", "linf", "l2", "l1")):
        torch.manual_seed(seed)
        card = Card(f"random-{threat}", "preact_resnet_small", threat)
        save_checkpoint(create_model("preact_resnet_small").state_dict(), card, folder)
    return folder, "random preact_resnet_small x 4 (no family shipped)"


def test_images(n: int, seed: int) -> tuple[ImageSet, str]:
    try:
        source = resolve_source(None)
        return load_split(source, "test").subset(n, seed), source
    except DataError:
        generator = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
        return ImageSet(images, torch.arange(n) % 10, CIFAR10_CLASSES, "synthetic"), "synthetic (no CIFAR-10 found)"


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
    parser.add_argument("--family", help="family folder (default: the shipped one, else random weights)")
    parser.add_argument("--images", type=int, default=default_settings().images, help="the dashboard's default subset")
    parser.add_argument("--moves", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings, device = default_settings(), pick_device(args.device)
    moves = args.moves or (6 if args.quick else 20)
    clean = [MetricSpec("clean")]
    with tempfile.TemporaryDirectory() as scratch:
        folder, family_note = family_folder(args.family, Path(scratch))
        setup = {}
        setup["load_family_ms"], family = timed(lambda: load_family(folder))
        setup["parameter_matrix_ms"], params = timed(lambda: ParameterMatrix.from_family(family, device))
        setup["test_images_ms"], (images, source) = timed(lambda: test_images(args.images, settings.seed))
        setup["session_evaluator_ms"], evaluator = timed(
            lambda: build_evaluator(family, params, images, settings, cache=False))
        evaluator.cache = ResultCache(Path(scratch) / "results")
        weights = slider_moves(len(family.names), moves + 1, seed=0)
        evaluator.evaluate([weights[0]], clean)  # warm-up: first-call allocations, not a slider move
        memo: dict[tuple, object] = {}

        def move(w: list[float]) -> object:
            key = tuple(w)
            if key not in memo:
                memo[key] = evaluator.evaluate([w], clean)
            return memo[key]

        cold = [timed(lambda w=w: evaluator.evaluate([w], clean))[0] for w in weights[1:]]
        disk = [timed(lambda w=w: evaluator.evaluate([w], clean))[0] for w in weights[1:]]
        for w in weights[1:]:
            move(w)
        memory = [timed(lambda w=w: move(w))[0] for w in weights[1:]]
        rebalance_ms = [timed(lambda: rebalance(weights[0], 1, 0.37))[0] for _ in range(100)]
        robust = {}
        if not args.quick:
            spec = MetricSpec("attack", threat="linf", attack=settings.attack, steps=settings.steps)
            robust = {"metric": f"{spec.column} by {settings.attack.upper()}-{settings.steps}",
                      "ms": timed(lambda: evaluator.evaluate([weights[-1]], [spec]))[0]}
            # Attacks run only on correctly classified points; an untrained family gets few right.
            # Labelling the images with the soup's own predictions makes every point count: the
            # cost a trained family (~90% clean accuracy) comes close to.
            evaluator.soup.set_weights(weights[-1])
            with torch.no_grad():
                predicted = evaluator.soup(images.floats(device)).argmax(1).cpu()
            relabelled = ImageSet(images.images, predicted, images.classes, images.source + " (relabelled)")
            every = build_evaluator(family, params, relabelled, settings, cache=False)
            robust["ms_every_point_attacked"] = timed(lambda: every.evaluate([weights[-1]], [spec]))[0]
            # A slider move during an attack waits for the batch in flight (the run stops between batches).
            batches = -(-len(images) // settings.batch_size)
            robust["ms_per_batch_every_point_attacked"] = robust["ms_every_point_attacked"] / batches
    result = {
        "device": describe_device(device), "torch": torch.__version__, "cpu": platform.machine(),
        "threads": torch.get_num_threads(), "family": family_note, "arch": family.arch, "k": len(family.names),
        "images": len(images), "data": source, "batch_size": settings.batch_size, "moves": moves,
        "setup_ms": setup,
        "slider_move_ms": {
            "rebalance_median": statistics.median(rebalance_ms),
            "clean_cold_median": statistics.median(cold), "clean_cold_max": max(cold),
            "clean_disk_cache_median": statistics.median(disk), "clean_memory_median": statistics.median(memory),
        },
        "ratios": {
            "cold_over_disk_cache": statistics.median(cold) / statistics.median(disk),
            "cold_over_memory": statistics.median(cold) / max(statistics.median(memory), 1e-6),
        },
        "robust_cold": robust,
        "notes": "A slider move = rebalance + Evaluator.evaluate(new weights, [clean]) on the default subset. "
                 "cold: weights never evaluated (set_weights + forward passes); disk cache: the same weights "
                 "again through the ResultCache; memory: a dict lookup as st.cache_data does. Medians.",
    }
    atomic_write_json(result, args.out)
    moves_ms = result["slider_move_ms"]
    print(f"{result['device']}, {result['family']}, {len(images)} images from {source}")
    print("setup (once per process or session): " + ", ".join(f"{k} {v:.0f} ms" for k, v in setup.items()))
    print(f"slider move, clean accuracy: cold {moves_ms['clean_cold_median']:.0f} ms "
          f"(max {moves_ms['clean_cold_max']:.0f}), "
          f"disk cache {moves_ms['clean_disk_cache_median']:.2f} ms, memory {moves_ms['clean_memory_median']:.4f} ms, "
          f"rebalance {moves_ms['rebalance_median']:.3f} ms")
    print(f"ratios: cold / disk cache {result['ratios']['cold_over_disk_cache']:.0f}x, "
          f"cold / memory {result['ratios']['cold_over_memory']:.0f}x")
    if robust:
        print(f"robust metric filling in afterwards: {robust['metric']} {robust['ms'] / 1e3:.1f} s "
              f"({robust['ms_every_point_attacked'] / 1e3:.1f} s when every point is classified right and attacked; "
              f"{robust['ms_per_batch_every_point_attacked'] / 1e3:.2f} s per batch of {settings.batch_size}, "
              "the longest a slider move waits for an attack in flight)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
