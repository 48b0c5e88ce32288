"""Benchmark our PGD against pyautoattack's APGD-CE on the same model and images: time per
iteration and robust accuracy, per threat, at equal budget and iterations. Prints the ratios
measured in this one run and writes them to bench/results/attacks.json.

    OMP_NUM_THREADS=1 python bench/bench_attacks.py --quick
    OMP_NUM_THREADS=1 python bench/bench_attacks.py --checkpoint runs/family/linf.safetensors

Without --checkpoint the model is the tiny CNN that tests/integration/test_attack_crosscheck.py
fast-adversarially trains (about a minute on one CPU thread). Both attacks see only the
clean-correct images (as `robust_mask` runs them), as one batch.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from soupviz.attacks import APGD, DEFAULT_BUDGETS, PGD, THREATS
from soupviz.data import load_split
from soupviz.device import describe_device, pick_device
from soupviz.files import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "attacks.json"


def load_model(checkpoint: str | None, arch: str, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The model to attack and a line describing it."""
    if checkpoint is None:
        sys.path.insert(0, str(ROOT / "tests" / "integration"))
        from test_attack_crosscheck import EPOCHS, TRAIN_IMAGES, fast_adversarial_training

        train = load_split(None, "train").subset(TRAIN_IMAGES, seed=1)
        start = time.perf_counter()
        model = fast_adversarial_training(train.floats().contiguous(), train.labels)
        seconds = time.perf_counter() - start
        line = f"tiny CNN, fast AT on {TRAIN_IMAGES} images x {EPOCHS} epochs ({seconds:.0f} s)"
        return model.to(device), line
    if checkpoint.endswith(".state.pt"):  # a training run's resumable state
        from soupviz.models.registry import create_model

        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model = create_model(arch)
        model.load_state_dict(state["model"])
        epoch = state.get("epoch", "?")
        return model.to(device).eval(), f"{arch} from training state {checkpoint} (epoch {epoch})"
    from soupviz.checkpoints.families import load_checkpoint

    ingredient = load_checkpoint(checkpoint)
    return ingredient.build_model(device).eval(), f"{ingredient.card.arch} checkpoint {checkpoint}"


def run_once(attack, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[float, int]:
    """(seconds, robust images) of one attack call on (x, y)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    x_adv = attack(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        return seconds, int((attack.model(x_adv).argmax(1) == y).sum())


def compare(model, x, y, threat: str, steps: int, repeats: int, device) -> dict:
    """Interleaved repeats of the three attacks on the same batch; medians of the times."""
    eps = DEFAULT_BUDGETS[threat]
    attacks = {
        "pgd": PGD(model, threat, eps, steps=steps),
        "pgd_all_steps": PGD(model, threat, eps, steps=steps, early_stop=False),
        "apgd_ce": APGD(model, threat, eps, steps=steps),
    }
    times: dict[str, list[float]] = {name: [] for name in attacks}
    robust: dict[str, int] = {}
    for _ in range(repeats):
        for name, attack in attacks.items():
            seconds, robust[name] = run_once(attack, x, y, device)
            times[name].append(seconds)
    ms = {name: statistics.median(values) * 1e3 / steps for name, values in times.items()}
    return {
        "threat": threat,
        "eps": eps,
        "steps": steps,
        "labels": {name: attack.describe() for name, attack in attacks.items()},
        "ms_per_iteration": ms,
        "robust_images": robust,
        "speedup_vs_apgd": {
            "pgd": ms["apgd_ce"] / ms["pgd"],
            "pgd_all_steps": ms["apgd_ce"] / ms["pgd_all_steps"],
        },
    }


def bench_model(model, line: str, images: int, step_counts, repeats: int, device) -> dict:
    """Every threat and step count on one model; prints a line per comparison."""
    test = load_split(None, "test").subset(images, seed=0)
    x, y = test.floats(device).contiguous(), test.labels.to(device)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    x, y = x[correct], y[correct]
    print(f"{line}; {describe_device(device)}")
    print(f"clean accuracy {correct.float().mean():.3f}: attacking {len(y)} of {images} images")
    for attack in (PGD(model, "l1", 12.0, steps=1), APGD(model, "l1", 12.0, steps=1)):
        attack(x[:8], y[:8])  # warm-up: first-call allocations are not the attacks' cost
    rows = []
    for threat in THREATS:
        for steps in step_counts:
            row = compare(model, x, y, threat, steps, repeats, device)
            rows.append(row)
            ms, robust = row["ms_per_iteration"], row["robust_images"]
            speed, gap = row["speedup_vs_apgd"], 100 * (robust["pgd"] - robust["apgd_ce"]) / images
            print(
                f"  {threat:4} {steps:3} steps | robust accuracy PGD {robust['pgd'] / images:.3f}"
                f" APGD-CE {robust['apgd_ce'] / images:.3f} ({gap:+.1f} pt) | ms/iter PGD "
                f"{ms['pgd']:.1f} (all steps {ms['pgd_all_steps']:.1f}) APGD {ms['apgd_ce']:.1f}"
                f" | APGD/PGD time {speed['pgd']:.2f}x (all steps {speed['pgd_all_steps']:.2f}x)"
            )
    return {
        "model": line,
        "images": images,
        "clean_accuracy": correct.float().mean().item(),
        "attacked_images": len(y),
        "results": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 images, 10 steps, 1 repeat")
    parser.add_argument(
        "--checkpoint", action="append", default=[],
        help="also bench this soupviz checkpoint or training *.state.pt (repeatable)",
    )  # fmt: skip
    parser.add_argument("--arch", default="preact_resnet_small", help="architecture of a .state.pt")
    parser.add_argument("--images", type=int, help="test images (default 500, quick 200)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3, quick 1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = pick_device(args.device)
    images = args.images or (200 if args.quick else 500)
    step_counts = (10,) if args.quick else (10, 20)
    repeats = args.repeats or (1 if args.quick else 3)
    runs = [
        bench_model(*load_model(path, args.arch, device), images, step_counts, repeats, device)
        for path in [None, *args.checkpoint]
    ]
    atomic_write_json(
        {
            "device": describe_device(device),
            "torch": torch.__version__,
            "cpu": platform.machine(),
            "threads": torch.get_num_threads(),
            "quick": args.quick,
            "repeats": repeats,
            "notes": (
                "Robust accuracy is over all images (clean-wrong ones count as not robust); "
                "it is an upper bound on the true robust accuracy. ms_per_iteration is the "
                "median wall time of one attack call on the clean-correct batch divided by its "
                "steps. 'pgd' stops attacking an image once it is broken (what evaluation "
                "runs); 'pgd_all_steps' attacks every image for every step, as APGD does "
                "within a restart, and its robust count is of its last iterate. "
                "speedup_vs_apgd > 1 means ours is faster."
            ),
            "models": runs,
        },
        args.out,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
