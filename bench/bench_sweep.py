"""Benchmark sweeps on the shipped family: soups per second folded into one batch against one at a
time, a Ray sweep on 2 workers against the same sweep in-process, and the paper-grade sweep (286
soups × clean, L∞, L2, L1 at the default attacks and 70 corruption conditions, 1,000 images)
projected from the measured cost of one soup on each metric. Prints the ratios measured side by
side in this one run and writes bench/results/sweep.json and sweep.md.

    OMP_NUM_THREADS=1 python bench/bench_sweep.py            # CPU
    python bench/bench_sweep.py --device cuda --gpus 1,8,64  # the projection from a GPU's cost
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from soupviz.checkpoints.families import load_family
from soupviz.corruptions.cifar_c import corruption_names
from soupviz.data import load_split
from soupviz.device import describe_device, pick_device
from soupviz.evaluate.evaluator import Evaluator
from soupviz.evaluate.sweeps import SweepSetup, sweep
from soupviz.files import atomic_write_json
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore
from soupviz.soups.weights import simplex_grid

FAMILY = Path(__file__).parents[1] / "assets" / "families" / "cifar10-preact_resnet_small"
RESULTS = Path(__file__).parent / "results"
COST_METRICS = ("clean", "linf", "l2", "l1", "corruptions")
PAPER = {"soups": len(simplex_grid(4, 0.1)), "images": 1000, "severities": 5}


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall seconds of each function, the functions taking turns repeat after repeat so
    that load from other processes falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_folding(device: torch.device, soups: int, images: int, repeats: int) -> list[dict]:
    """Soups per second with `soups` soups folded into one batch against one soup at a time: on
    clean accuracy over 16 × `images` images (it is cheap), and the default L∞ attack over `images`."""
    family = load_family(FAMILY)
    test = load_split(None, "test")
    rows = simplex_grid(4, 0.25)[:soups]
    rows_out = []
    for spec, count in ((MetricSpec("clean"), 16 * images), (MetricSpec("attack", threat="linf"), images)):
        subset = test.subset(count, 0)
        evaluators = {name: Evaluator(family, subset, device=device, batch_size=count, fold=fold)
                      for name, fold in (("one at a time", 1), ("folded", soups))}
        seconds = timed({name: (lambda e=e, spec=spec: e.evaluate(rows, [spec])) for name, e in evaluators.items()},
                        repeats)
        rate = {name: soups / s for name, s in seconds.items()}
        rows_out.append({"metric": spec.key, "soups": soups, "images": count, "seconds": seconds,
                         "soups_per_second": rate, "folded_speedup": rate["folded"] / rate["one at a time"]})
    return rows_out


def bench_ray(device: torch.device, soups: int, images: int, workers: int) -> dict:
    """The same sweep in-process and on a local Ray cluster of `workers` CPUs (workers warmed up
    first on clean accuracy, so both timings start from a built evaluator)."""
    import ray

    setup = SweepSetup(str(FAMILY), images=images, batch_size=images, fold=1, device=device.type)
    rows, specs = simplex_grid(4, 0.25)[:soups], [MetricSpec("attack", threat="linf")]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        start = time.perf_counter()
        local = sweep(setup, rows, specs, ResultStore(folder / "local.sqlite"))
        local_s = time.perf_counter() - start
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            sweep(setup, rows, [MetricSpec("clean")], ResultStore(folder / "warm.sqlite"), engine="ray")
            start = time.perf_counter()
            remote = sweep(setup, rows, specs, ResultStore(folder / "ray.sqlite"), engine="ray")
            ray_s = time.perf_counter() - start
        finally:
            ray.shutdown()
    return {"soups": soups, "images": images, "metric": specs[0].key, "workers": workers,
            "seconds": {"in-process": local_s, f"ray, {workers} workers": ray_s},
            "ray_speedup": local_s / ray_s, "identical_records": remote == local}


def bench_costs(device: torch.device, images: int, metrics: tuple[str, ...] = COST_METRICS) -> dict:
    """Seconds per soup per image of each metric of the paper-grade sweep (corruptions at
    severity 3), one soup alone, by spec key, with the metric's kind; only those in `metrics`
    (a rehearsal measures fewer)."""
    family = load_family(FAMILY)
    evaluator = Evaluator(family, load_split(None, "test").subset(images, 0), device=device, batch_size=images)
    specs = [MetricSpec("clean")] * ("clean" in metrics)
    specs += [MetricSpec("attack", threat=t) for t in ("linf", "l2", "l1") if t in metrics]
    specs += [MetricSpec("corruption", corruption=name, severity=3) for name in corruption_names()
              if "corruptions" in metrics]
    costs = {}
    for spec in specs:
        start = time.perf_counter()
        evaluator.evaluate([0.25] * 4, [spec])
        costs[spec.key] = {"kind": spec.kind, "seconds_per_image": (time.perf_counter() - start) / images}
    return costs


def projection(costs: dict[str, float], counts: list[int]) -> dict:
    """Hours of the paper-grade sweep on each count of workers of the measured device, assuming
    the soup × metric tasks (286 × 74) keep every worker busy, cost per image stays flat, and
    every severity costs what severity 3 does."""
    by_kind = {kind: sum(c["seconds_per_image"] for c in costs.values() if c["kind"] == kind)
               for kind in ("clean", "attack", "corruption")}
    per_soup_image = by_kind["clean"] + by_kind["attack"] + PAPER["severities"] * by_kind["corruption"]
    total = PAPER["soups"] * PAPER["images"] * per_soup_image
    return {"per_soup_image_seconds": per_soup_image, "one_worker_hours": total / 3600,
            "hours": {str(n): total / 3600 / n for n in counts}}


def markdown(result: dict) -> str:
    lines = ["# Sweeps: folding, Ray, and the paper-grade projection", "",
             f"{result['device']}, torch {result['torch']}, {result['cpu']}. {result['notes']}", "",
             "| metric | soups × images | one at a time (soups/s) | folded (soups/s) | folded speed-up "
             "(target ≥ 1.5) |",
             "|---|---|---|---|---|"]
    for row in result["folding"]:
        rate = row["soups_per_second"]
        lines.append(f"| {row['metric']} | {row['soups']} × {row['images']} | {rate['one at a time']:.3f} | "
                     f"{rate['folded']:.3f} | {row['folded_speedup']:.2f}× |")
    ray = result.get("ray")
    if ray:
        seconds = " · ".join(f"{name}: {s:.1f} s" for name, s in ray["seconds"].items())
        lines += ["", f"Ray: {ray['soups']} soups × {ray['images']} images, {ray['metric']}: {seconds}; "
                  f"speed-up {ray['ray_speedup']:.2f}× (target ≥ 1.6); identical records: {ray['identical_records']}."]
    plan = result["projection"]
    lines += ["", f"Paper-grade sweep ({PAPER['soups']} soups × clean, L∞, L2, L1 default attacks and "
              f"{len(corruption_names())} corruptions × {PAPER['severities']} severities, {PAPER['images']} images): "
              f"{plan['per_soup_image_seconds'] * 1e3:.1f} ms per soup per image on one worker "
              f"({result['workers_are']}), so {plan['one_worker_hours']:.0f} hours on one.", "",
              "| workers | hours |", "|---|---|"]
    lines += [f"| {n} | {hours:.1f} |" for n, hours in plan["hours"].items()]
    lines += ["", "Seconds per image of one soup, per metric:", ""]
    lines += [f"- {key}: {c['seconds_per_image'] * 1e3:.1f} ms" for key, c in result["costs"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--soups", type=int, default=4, help="soups folded together")
    parser.add_argument("--images", type=int, default=64, help="images of the folding and Ray comparisons")
    parser.add_argument("--cost-images", type=int, default=8, help="images of the per-metric cost")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (0: skip the Ray comparison)")
    parser.add_argument("--gpus", default="1,2,8,32", help="worker counts of the projection")
    parser.add_argument("--note", default="", help="a line on the conditions (e.g. a shared machine)")
    parser.add_argument("--metrics", default=",".join(COST_METRICS), help="metrics of the per-metric cost")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of sweep.json and sweep.md")
    args = parser.parse_args()
    device = pick_device(args.device)
    result = {"device": describe_device(device), "torch": torch.__version__, "cpu": platform.machine(),
              "omp_threads": os.environ.get("OMP_NUM_THREADS", ""),
              "workers_are": "GPUs" if device.type == "cuda" else "CPU cores, one thread each",
              "notes": args.note or "Medians of interleaved repeats."}
    result["folding"] = bench_folding(device, args.soups, args.images, args.repeats)
    for row in result["folding"]:
        print(f"folding {row['metric']}: {row['folded_speedup']:.2f}x ({row['soups_per_second']})")
    if args.workers:
        result["ray"] = bench_ray(device, args.soups * 2, args.images, args.workers)
        print(f"ray: {result['ray']['ray_speedup']:.2f}x ({result['ray']['seconds']})")
    result["costs"] = bench_costs(device, args.cost_images, tuple(args.metrics.split(",")))
    result["projection"] = projection(result["costs"], [int(n) for n in args.gpus.split(",")])
    print(f"projection: {result['projection']}")
    atomic_write_json(result, args.out / "sweep.json")
    (args.out / "sweep.md").write_text(markdown(result))
    print(args.out / "sweep.md")


if __name__ == "__main__":
    main()
