"""Benchmark soups: materialising one against the naive state-dict way and the bandwidth bound,
and single-soup against batched (loop, vmap) forward throughput. Prints the ratios measured in
this one run and writes them to bench/results/soup.json.

    OMP_NUM_THREADS=1 python bench/bench_soup.py --quick
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from soupviz.device import describe_device, pick_device
from soupviz.files import atomic_write_json
from soupviz.models.registry import create_model
from soupviz.soups.parameters import ParameterMatrix
from soupviz.soups.soup import Soup
from soupviz.soups.weights import simplex_grid

RESULTS = Path(__file__).parent / "results" / "soup.json"
LEGEND = {
    "naive": "per-key weighted sum of the state dicts, then load_state_dict into a module",
    "set_weights": "Soup.set_weights: check the weights, matvec into the soup's own buffer",
    "mix_fresh_matvec": "ParameterMatrix.mix: (1,K)@(K,P) matvec into a new tensor",
    "mix_buffer_matvec": "the same matvec into a reused buffer",
    "mix_fresh_add_loop": "K elementwise passes (mul, then add_ with alpha) into a new tensor",
    "mix_buffer_add_loop": "the same add loop into a reused buffer",
    "mix_fresh_float64": "float64 accumulation, chunk by chunk, into a new tensor",
    "copy_soup_fresh": "bandwidth reference: torch.empty_like(flat).copy_(flat)",
    "copy_soup_buffer": "bandwidth reference: copy of the soup vector into a reused buffer",
    "copy_matrix_buffer": "bandwidth reference: copy of the K x P matrix into a reused buffer",
}


def timed(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict:
    """Median cold-cache wall time in milliseconds of each function, after a warm-up call.

    The functions take turns, repeat after repeat, so that load from other processes on a
    shared machine falls on all of them alike; before each call a 128 MiB scratch buffer is
    rewritten so that no function finds its data in the CPU caches left by another.
    """
    scratch = torch.empty(32 * 2**20, device=device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            scratch.fill_(1.0)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def ingredients(arch: str, k: int) -> list[dict[str, torch.Tensor]]:
    """K state dicts of `arch` with distinct random weights and BatchNorm statistics."""
    states = []
    for seed in range(k):
        torch.manual_seed(seed)
        model = create_model(arch)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        states.append(model.state_dict())
    return states


def naive_soup(states: list[dict[str, torch.Tensor]], weights: list[float], model) -> None:
    """The model-soups way: a weighted sum per key of the state dicts, then load_state_dict."""
    mixed = {
        key: sum(w * s[key] for w, s in zip(weights, states, strict=True))
        if tensor.is_floating_point()
        else tensor
        for key, tensor in states[0].items()
    }
    model.load_state_dict(mixed)


def add_loop(matrix: torch.Tensor, weights: list[float], out: torch.Tensor | None) -> torch.Tensor:
    """The fused-addmm-like alternative to one matvec: K elementwise passes."""
    out = torch.mul(matrix[0], weights[0], out=out)
    for row, w in zip(matrix[1:], weights[1:], strict=True):
        out.add_(row, alpha=w)
    return out


def float64_chunked(matrix: torch.Tensor, weights: torch.Tensor, chunk: int = 1 << 16):
    """Mixing in float64 (the timm habit), chunk by chunk so the upcast stays in cache."""
    out = torch.empty(matrix.shape[1], device=matrix.device)
    w64 = weights.to(matrix.device, torch.float64)
    for start in range(0, matrix.shape[1], chunk):
        out[start : start + chunk] = w64 @ matrix[:, start : start + chunk].double()
    return out


def bench_materialise(arch: str, k: int, repeats: int, device: torch.device) -> dict:
    states = ingredients(arch, k)
    params = ParameterMatrix.from_state_dicts(states, device)
    soup = Soup(create_model(arch), params)
    weights = torch.distributions.Dirichlet(torch.ones(k)).sample().double()
    weights /= weights.sum()
    w_list = weights.tolist()
    model = create_model(arch).to(device)
    device_states = [{key: t.to(device) for key, t in s.items()} for s in states]
    flat, matrix = params.mix(weights), params.matrix
    buffer, matrix_buffer = torch.empty_like(flat), torch.empty_like(matrix)
    fns = {
        "naive": lambda: naive_soup(device_states, w_list, model),
        "set_weights": lambda: soup.set_weights(weights),
        "mix_fresh_matvec": lambda: params.mix(weights),
        "mix_buffer_matvec": lambda: params.mix(weights, out=buffer),
        "mix_fresh_add_loop": lambda: add_loop(matrix, w_list, None),
        "mix_buffer_add_loop": lambda: add_loop(matrix, w_list, buffer),
        "mix_fresh_float64": lambda: float64_chunked(matrix, weights),
        "copy_soup_fresh": lambda: torch.empty_like(flat).copy_(flat),
        "copy_soup_buffer": lambda: buffer.copy_(flat),
        "copy_matrix_buffer": lambda: matrix_buffer.copy_(matrix),
    }
    ms = timed(fns, repeats if params.p > 5e6 else 5 * repeats, device)
    # The mix reads K*P floats and writes P; a copy of the soup vector reads P and writes P.
    traffic_bound = ms["copy_soup_buffer"] * (k + 1) / 2
    ratios = {
        "naive / set_weights (target >= 10)": ms["naive"] / ms["set_weights"],
        "naive / mix_fresh_matvec": ms["naive"] / ms["mix_fresh_matvec"],
        "mix_fresh_matvec / copy_soup_fresh (target <= 2)": ms["mix_fresh_matvec"]
        / ms["copy_soup_fresh"],
        "set_weights / traffic-matched bound (target <= 2)": ms["set_weights"] / traffic_bound,
        "set_weights / copy_matrix_buffer": ms["set_weights"] / ms["copy_matrix_buffer"],
        "mix_buffer_add_loop / mix_buffer_matvec": ms["mix_buffer_add_loop"]
        / ms["mix_buffer_matvec"],
        "mix_fresh_float64 / mix_fresh_matvec": ms["mix_fresh_float64"] / ms["mix_fresh_matvec"],
    }
    targets = {
        "set_weights >= 10x faster than naive": ms["naive"] / ms["set_weights"] >= 10,
        "set_weights within 2x of the traffic-matched bound": ms["set_weights"]
        <= 2 * traffic_bound,
    }
    return {
        "arch": arch,
        "k": k,
        "parameters": params.p,
        "megabytes_per_soup": params.p * 4 / 2**20,
        "traffic_matched_bound_ms": traffic_bound,
        "ms": ms,
        "legend": LEGEND,
        "ratios": ratios,
        "targets_met": targets,
    }


def bench_forward(arch: str, k: int, soups: int, n: int, repeats: int, device: torch.device):
    params = ParameterMatrix.from_state_dicts(ingredients(arch, k), device)
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    grid = (
        simplex_grid(k, 1 / (soups - 1), subset=[0, 1])[:soups] if soups > 1 else torch.eye(k)[:1]
    )
    single, loop = Soup(create_model(arch), params), Soup(create_model(arch), params, "loop")
    vmapped = Soup(create_model(arch), params, "vmap")

    def one_by_one() -> None:
        for w in grid:
            single.set_weights(w)
            single(x)

    with torch.no_grad():
        ms = {
            "single soup, one at a time": one_by_one,
            "batched_logits (loop)": lambda: loop.batched_logits(grid, x),
            "batched_logits (vmap)": lambda: vmapped.batched_logits(grid, x),
        }
        ms = timed(ms, repeats, device)
    images_per_s = {name: len(grid) * n / (t / 1e3) for name, t in ms.items()}
    return {
        "arch": arch,
        "soups": len(grid),
        "images": n,
        "ms": ms,
        "images_per_s": images_per_s,
        "vmap_speedup_over_single": ms["single soup, one at a time"] / ms["batched_logits (vmap)"],
        "vmap_speedup_over_loop": ms["batched_logits (loop)"] / ms["batched_logits (vmap)"],
        "vmap_ran_batched": vmapped.batch_method == "vmap",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--k", type=int, default=4, help="number of ingredients")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = pick_device(args.device)
    repeats = 7 if args.quick else 25
    archs = ["preact_resnet18", "preact_resnet_small"]
    forward_archs = ["preact_resnet_small"] if args.quick else archs
    soups, n = (4, 16) if args.quick else (8, 64)
    print(f"{describe_device(device)}, torch {torch.__version__}, K={args.k}, medians of {repeats}")
    materialise = []
    for arch in archs:
        result = bench_materialise(arch, args.k, repeats, device)
        materialise.append(result)
        print(
            f"\n{arch}: P={result['parameters']:,} ({result['megabytes_per_soup']:.1f} MB per soup)"
        )
        for name, value in result["ms"].items():
            print(f"  {value:9.2f} ms  {name:<20} {LEGEND[name]}")
        print(f"  {result['traffic_matched_bound_ms']:9.2f} ms  traffic-matched copy bound")
        for name, value in result["ratios"].items():
            print(f"  {value:9.2f} x   {name}")
        for name, met in result["targets_met"].items():
            print(f"  {'met' if met else 'NOT met':>9}     {name}")
    forward = []
    for arch in forward_archs:
        result = bench_forward(arch, args.k, soups, n, max(2, repeats // 4), device)
        forward.append(result)
        print(f"\n{arch} forward, {result['soups']} soups x {n} images:")
        for name, value in result["images_per_s"].items():
            print(f"  {value:9.1f} images/s  {name}")
        print(f"  {result['vmap_speedup_over_single']:9.2f} x   vmap speed-up over one at a time")
        print(f"  {result['vmap_speedup_over_loop']:9.2f} x   vmap speed-up over the batched loop")
    notes = (
        "Medians of interleaved, cold-cache repeats. The traffic-matched bound is the time to "
        "copy the soup vector into a buffer times (K+1)/2: mixing must read K*P floats and "
        "write P. 'fresh' "
        "timings allocate their output, so they include page faults for large tensors."
    )
    summary = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "repeats": repeats,
        "notes": notes,
        "materialise": materialise,
        "forward": forward,
    }
    atomic_write_json(summary, args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
