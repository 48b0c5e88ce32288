"""The family recipe: a robust L∞ base by fast adversarial training (FGSM from a random start,
cyclic learning rate; Wong et al. 2020), then short nominal, L2 and L1 fine-tunes from it and a
SAT baseline (Croce et al. 2023), each run by `train.loop.train`, so checkpoints and cards are
exactly what `soupviz train` writes (lineage in `parent`).

Epochs are planned to fit a time budget: `calibrate` times real training steps on the device,
`plan_family` shares the budget between the steps by their measured cost, and the plan is
written to `<out>/recipe.json`, so a resumed run (`--resume`) follows the same plan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from soupviz.checkpoints.cards import card_path, read_card
from soupviz.data import ImageSet, load_split
from soupviz.device import describe_device
from soupviz.errors import SoupvizError
from soupviz.files import atomic_write_json
from soupviz.models.registry import create_model
from soupviz.progress import ProgressCallback, silent
from soupviz.train.config import TrainConfig, autocast_dtype
from soupviz.train.losses import batch_loss, method_budgets

PLAN_FILE = "recipe.json"
BASE = "linf"  # the step every other step fine-tunes
CIFAR10_TRAIN_IMAGES = 50_000


@dataclass(frozen=True)
class RecipeStep:
    """One checkpoint of the recipe: where it goes (`folder` under the family, '' or 'baselines'),
    how it trains (its peak learning rate is the scale's), its share of the time budget and its
    cap on epochs."""

    name: str
    folder: str
    threat: str
    method: str
    attack_steps: int | None
    schedule: str
    warmup: float
    share: float
    max_epochs: int
    seed: int


@dataclass(frozen=True)
class Scale:
    """Sizes of a recipe run: the architecture, batch, training and validation images, the peak
    learning rates of the base and of the fine-tunes, and a cap on training-attack steps (None:
    the steps' own)."""

    name: str
    arch: str
    batch_size: int
    base_lr: float
    finetune_lr: float
    train_images: int | None
    val_images: int
    val_steps: int
    max_attack_steps: int | None = None


# Shares of the budget: half for the base (Wong et al.: 15 epochs of FGSM-RS reach ~46% PGD-50 on a
# full-width PreActResNet-18); the fine-tunes are short (the soups paper fine-tunes for a few epochs).
STEPS = (
    RecipeStep("linf", "", "linf", "fgsm", 1, "cyclic", 0.4, 0.50, 30, 0),
    RecipeStep("nominal", "", "none", "standard", None, "cosine", 0.1, 0.08, 10, 1),
    RecipeStep("l2", "", "l2", "pgd", 5, "cosine", 0.1, 0.12, 10, 2),
    RecipeStep("l1", "", "l1", "pgd", 10, "cosine", 0.1, 0.16, 10, 3),
    RecipeStep("sat", "baselines", "linf", "sat", 5, "cosine", 0.1, 0.14, 10, 4),
)

SCALES = {
    # A lent H100/H200: half-width PreActResNet-18 (2.8M parameters; five fp32 checkpoints of 11.2 MB
    # come back within 8 files of 16 MiB, full width would not), batches of 512. Peak learning rates
    # scaled from batch 128 (Wong et al.'s 0.2; the shipped fine-tunes' 0.05) between the square
    # root and linear rules: 0.4 and 0.1.
    "gpu": Scale("gpu", "preact_resnet18_half", 512, 0.4, 0.1, None, 1000, 10),
    # The CPU rehearsal of the whole job: the shipped small architecture on a few dozen images.
    "tiny": Scale("tiny", "preact_resnet_small", 32, 0.1, 0.05, 64, 16, 1, max_attack_steps=2),
}


def epoch_cost(method: str, attack_steps: int | None) -> float:
    """Cost of one epoch relative to a standard one (forward + backward = 3 forward passes; each
    attack step a forward and an input-gradient backward, 2)."""
    if method == "standard":
        return 1.0
    return (3 + 2 * (attack_steps or 1)) / 3


def calibrate(scale: Scale, device: torch.device, precision: str = "auto", batches: int = 8) -> float:
    """Seconds per image of one standard training step of `scale`'s architecture on `device`,
    from `batches` timed FGSM-RS steps on random images (after two warm-up steps) divided by
    their cost; the plan multiplies it by each step's `epoch_cost`."""
    model = create_model(scale.arch).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    budgets = method_budgets("fgsm", "linf", None, 1, None)
    generator = torch.Generator(device).manual_seed(0)
    x = torch.rand(scale.batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (scale.batch_size,), device=device)
    dtype = autocast_dtype(precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            loss = batch_loss("fgsm", model, x, y, budgets, generator=generator).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    return seconds / (batches * scale.batch_size) / epoch_cost("fgsm", 1)


def plan_family(
    out: str | Path,
    scale: Scale,
    budget_s: float,
    image_s: float,
    *,
    data: str | None = None,
    device: str = "auto",
    seed: int = 0,
    precision: str = "auto",
    command: str = "",
) -> list[TrainConfig]:
    """The recipe's `TrainConfig`s, in training order, with epochs sized to `budget_s`.

    Each step gets `share × budget_s` seconds; at `image_s` seconds per image of a standard step
    (`calibrate`) that buys floor(share·budget / (image_s · images · epoch_cost)) epochs, at least
    1 and at most the step's cap. Fine-tunes start from `<out>/linf.safetensors`.

    Args:
        seed: added to each step's own seed.
    """
    if budget_s <= 0 or image_s <= 0:
        raise SoupvizError("The recipe needs a positive time budget and a positive seconds-per-image.")
    out = Path(out)
    images = scale.train_images or CIFAR10_TRAIN_IMAGES - scale.val_images
    configs = []
    for step in STEPS:
        steps = step.attack_steps
        if steps is not None and scale.max_attack_steps is not None:
            steps = min(steps, scale.max_attack_steps)
        seconds_per_epoch = image_s * images * epoch_cost(step.method, steps)
        epochs = max(1, min(step.max_epochs, math.floor(step.share * budget_s / seconds_per_epoch)))
        configs.append(TrainConfig(
            name=step.name, out=str(out / step.folder) if step.folder else str(out),
            threat=step.threat, method=step.method, attack_steps=steps, arch=scale.arch,
            parent=None if step.name == BASE else str(out / f"{BASE}.safetensors"),
            epochs=epochs, batch_size=scale.batch_size,
            lr=scale.base_lr if step.name == BASE else scale.finetune_lr,
            schedule=step.schedule, warmup=step.warmup, train_images=scale.train_images,
            val_images=scale.val_images, val_steps=scale.val_steps, precision=precision,
            data=data, device=device, seed=seed + step.seed, command=command,
            extra={"family_recipe": scale.name, "planned_seconds": round(step.share * budget_s, 1),
                   "planned_image_s": image_s},
        ))
    return configs


def write_plan(out: str | Path, configs: list[TrainConfig], info: dict[str, Any]) -> Path:
    """Write the plan (`info` and every config as `soupviz train` would take it) to `<out>/recipe.json`."""
    path = Path(out) / PLAN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json({**info, "steps": [dataclasses.asdict(c) for c in configs],
                       "commands": [train_command(c) for c in configs]}, path)
    return path


def read_plan(out: str | Path) -> list[TrainConfig]:
    """The configs of the plan in `<out>/recipe.json` (a resumed recipe follows them unchanged)."""
    path = Path(out) / PLAN_FILE
    try:
        steps = json.loads(path.read_text())["steps"]
        return [TrainConfig(**step) for step in steps]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SoupvizError(f"The recipe plan {path} cannot be read ({error}): drop --resume to plan afresh.") from error


def train_command(config: TrainConfig) -> str:
    """The `soupviz train` command line that runs `config` (its non-default settings as flags)."""
    parts = ["soupviz", "train", config.name]
    for f in dataclasses.fields(TrainConfig):
        kind, value = f.metadata.get("cli"), getattr(config, f.name)
        if kind in (None, "positional"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.name == "attack_steps" and value == (1 if config.method == "fgsm" else 10):
            continue
        if kind != "required" and (value == default or (f.name == "device" and value == "auto")):
            continue
        if value is None or isinstance(value, (list, dict)):
            continue
        parts += [f.metadata.get("flag") or "--" + f.name.replace("_", "-"), f"{value:g}"
                  if isinstance(value, float) else str(value)]
    return " ".join(parts)


def train_family(
    configs: list[TrainConfig], resume: bool = False, progress: ProgressCallback = silent,
    data: ImageSet | None = None,
) -> list[Path]:
    """Train the recipe's steps in order and return their checkpoints.

    A step whose checkpoint already exists from the same settings is kept (so a rerun after an
    interruption skips finished steps, and with `resume` `train`'s per-epoch state resumes the
    unfinished one); one from other settings is refused, never overwritten. The training split is
    decoded once for all steps.
    """
    from soupviz.train.loop import train

    data = data if data is not None else load_split(configs[0].data, "train")
    paths = []
    for config in configs:
        path = Path(config.out) / f"{config.name}.safetensors"
        if path.exists() and _same_run(path, config):
            paths.append(path)
            continue
        if path.exists():
            raise SoupvizError(f"{path} already exists from other settings than this recipe's: choose another "
                               "folder, or move it away.")
        paths.append(train(dataclasses.replace(config), resume=resume, progress=progress, data=data))
    return paths


_SAME = ("arch", "threat", "method", "epochs", "lr", "schedule", "batch_size", "seed", "attack_steps",
         "train_images", "precision")


def _same_run(path: Path, config: TrainConfig) -> bool:
    recipe = read_card(card_path(path)).recipe
    return all(recipe.get(key) == getattr(config, key) for key in _SAME)


def describe_plan(configs: list[TrainConfig], image_s: float, device: torch.device) -> str:
    """One line per step: name, method, epochs and the planned seconds, with the device."""
    lines = [f"family recipe on {describe_device(device)}: {image_s * 1e6:.1f} µs per image of a standard step"]
    for c in configs:
        images = c.train_images or CIFAR10_TRAIN_IMAGES - c.val_images
        seconds = image_s * images * epoch_cost(c.method, c.attack_steps) * c.epochs
        lines.append(f"  {c.name}: {c.method} {c.threat}, {c.epochs} epochs, about {seconds:.0f} s  "
                     f"({train_command(c)})")
    return "\n".join(lines)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
