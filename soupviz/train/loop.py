"""Training and fine-tuning loops for soup ingredients.

`train` runs a `TrainConfig` (see `soupviz.train.config`) with per-epoch state that `resume`
picks up, a JSON-lines log of per-epoch metrics and validation on held-out training images,
reports its progress as `Progress` in training images, and writes the selected epoch as a
safetensors checkpoint with its card.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from soupviz.attacks.pgd import PGD
from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import load_checkpoint, save_checkpoint
from soupviz.data import ImageSet, augment, load_split, subset_indices
from soupviz.device import describe_device, pick_device
from soupviz.errors import SoupvizError
from soupviz.files import atomic_torch_save, atomic_write_bytes
from soupviz.models.registry import create_model
from soupviz.progress import Progress, ProgressCallback, silent
from soupviz.threats import DEFAULT_BUDGETS
from soupviz.train.config import TrainConfig, autocast_dtype, learning_rate
from soupviz.train.losses import batch_loss, method_budgets

_IDENTITY = ("arch", "threat", "method", "eps", "batch_size", "seed")  # a resume must match


@dataclass
class _Session:
    """What one run carries from epoch to epoch: its model and optimizer, the two random streams,
    the fine-tuned parent's card (None for a run from scratch) and the state and log files."""

    config: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    attack_generator: torch.Generator
    parent: Card | None
    device: torch.device
    state_path: Path
    log_path: Path


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: ProgressCallback = silent,
    data: ImageSet | None = None,
) -> Path:
    """Run `config` and return the path of the written checkpoint.

    Each epoch ends with validation and a resumable state file `<out>/<name>.state.pt`
    (model, optimizer, random generators, history); with `resume=True` training continues
    from the last saved epoch, so an interrupted run loses at most one epoch. `data`, when
    given, replaces the training split of `config.data`; validation images are held out of it.
    The training images are moved to the device once; `config.precision` sets the autocast dtype of
    the attacks and forward passes (`train.config.autocast_dtype`), and the model runs channels-last.

    Args:
        progress: told the training images done of the whole run's (`epochs` × the training
            images) after every batch, with the epoch and its running loss and accuracy as the
            message; after each epoch is saved, with a summary line as the message and the
            epoch's stats (as logged) as `partial`.
    """
    config.validate()
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model, parent = _initial_model(config, device)
    budgets = method_budgets(
        config.method, config.threat, config.eps, config.attack_steps,
        config.attack_step_size, extra_threats=tuple(config.lrat_threats),
    )
    train_set, val_set = _split(config, data)
    # The training images live on the device as one uint8 tensor; batches are cropped, flipped
    # and scaled there (no per-image work on the host).
    train_set = ImageSet(train_set.images.to(device), train_set.labels.to(device), train_set.classes,
                         train_set.source)
    session = _open_session(config, model, parent, device)
    run = _start_run(session, resume)
    images = len(train_set)
    starting = f"{config.name} epoch {min(run['epoch'] + 1, config.epochs)}/{config.epochs}"
    progress(Progress(images * run["epoch"], images * config.epochs, starting))
    for epoch in range(run["epoch"], config.epochs):
        started = time.time()
        stats = _train_epoch(session, budgets, train_set, epoch, progress)
        stats.update(validate(model, val_set, config, device))
        stats.update(epoch=epoch + 1, seconds=round(time.time() - started, 2))
        _save_epoch(session, run, stats)
        progress(Progress(images * (epoch + 1), images * config.epochs, _summary(stats, config), stats))
    chosen = run["best"] if config.select != "last" else {"epoch": config.epochs, "model": _cpu_state(model)}
    card = _card(session, budgets, train_set.source, run, chosen["epoch"])
    return save_checkpoint(chosen["model"], card, config.out)


def _initial_model(config: TrainConfig, device: torch.device) -> tuple[torch.nn.Module, Card | None]:
    """A fresh `config.arch`, or the `--from` parent's weights with its card (whose architecture
    `config.arch` then takes), channels-last on `device`."""
    parent_card = None
    if config.parent:
        if not str(config.parent).endswith(".safetensors"):
            raise SoupvizError(f"--from takes a .safetensors checkpoint with its card: bring {config.parent} in "
                               "with `soupviz import` first.")
        parent = load_checkpoint(config.parent)
        parent_card, config.arch = parent.card, parent.card.arch
        model = parent.build_model(device)
    else:
        model = create_model(config.arch).to(device)
    return model.to(memory_format=torch.channels_last), parent_card


def _open_session(config: TrainConfig, model: torch.nn.Module, parent: Card | None, device: torch.device) -> _Session:
    """The optimizer, random streams and file paths of a run of `config` on `model`."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick its fastest kernels
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay, nesterov=True,
    )
    generator = torch.Generator().manual_seed(config.seed)
    # Attack noise is drawn on the images' device; on the CPU it shares the data stream.
    attack_generator = generator
    if device.type != "cpu":
        attack_generator = torch.Generator(device).manual_seed(config.seed)
    out = Path(config.out)
    return _Session(
        config=config, model=model, optimizer=optimizer, generator=generator, attack_generator=attack_generator,
        parent=parent, device=device, state_path=out / f"{config.name}.state.pt",
        log_path=out / f"{config.name}.log.jsonl",
    )


def _start_run(session: _Session, resume: bool) -> dict[str, Any]:
    """The run's record (epoch, history, best so far, elapsed seconds): restored with `resume` from
    the state file when there is one, else new; the log is rewritten from its history."""
    run: dict[str, Any] = {"epoch": 0, "history": [], "best": None, "elapsed": 0.0}
    if resume and session.state_path.exists():
        run = _restore(session)
    # The log restarts from the saved history: a kill between state and log never duplicates.
    atomic_write_bytes("".join(json.dumps(s) + "\n" for s in run["history"]).encode(), session.log_path)
    return run


def _save_epoch(session: _Session, run: dict[str, Any], stats: dict[str, Any]) -> None:
    """Add an epoch's `stats` to `run` (keeping the best-scoring weights), then save the state
    file and append the stats to the log."""
    config, model = session.config, session.model
    run["elapsed"] += stats["seconds"]
    run["history"].append(stats)
    score = stats["val_robust"] if config.method != "standard" else stats["val_clean"]
    if run["best"] is None or score >= run["best"]["score"]:
        run["best"] = {"score": score, "epoch": stats["epoch"], "model": _cpu_state(model)}
    run.update(
        epoch=stats["epoch"], model=model.state_dict(), optimizer=session.optimizer.state_dict(),
        generator=session.generator.get_state(), config=asdict(config),
    )
    if session.attack_generator is not session.generator:
        run["attack_generator"] = session.attack_generator.get_state()
    atomic_torch_save(run, session.state_path)
    with open(session.log_path, "a") as log:
        log.write(json.dumps(stats) + "\n")


def _card(session: _Session, budgets, data_source: str, run: dict[str, Any], selected_epoch: int) -> Card:
    """The card of the checkpoint chosen at `selected_epoch`: the recipe with its history, the
    training threat's budget (for single-threat methods), and the parent's lineage and input
    normalisation when fine-tuned."""
    config, parent = session.config, session.parent
    single = config.method not in ("standard", "sat")
    return Card(
        name=config.name,
        arch=config.arch,
        threat="sat" if config.method == "sat" else config.threat,
        eps=budgets[config.threat].eps if single else None,
        data_source=data_source,
        recipe={
            **asdict(config), "selected_epoch": selected_epoch,
            "device": describe_device(session.device), "history": run["history"],
        },
        parent={"name": parent.name, "content_hash": parent.content_hash} if parent else None,
        **({"num_classes": parent.num_classes, "mean": parent.mean, "std": parent.std}
           if parent else {}),  # an imported base keeps its own input normalisation
        command=config.command,
        wall_time_s=round(run["elapsed"], 1),
    )


def _restore(session: _Session) -> dict[str, Any]:
    path, config = session.state_path, session.config
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state.get("config", {})
    for key in _IDENTITY:
        if key in saved and saved[key] != getattr(config, key):
            raise SoupvizError(
                f"The saved state {path} comes from a run with {key}={saved[key]!r}, not "
                f"{getattr(config, key)!r}: resume with the same settings, or drop --resume."
            )
    session.model.load_state_dict(state["model"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.generator.set_state(state["generator"])
    if session.attack_generator is not session.generator and "attack_generator" in state:
        session.attack_generator.set_state(state["attack_generator"])
    return state


def _split(config: TrainConfig, data: ImageSet | None) -> tuple[ImageSet, ImageSet]:
    full = data if data is not None else load_split(config.data, "train")
    if config.val_images >= len(full):
        raise SoupvizError(
            f"--val-images {config.val_images} leaves no training images out of {len(full)}."
        )
    order = subset_indices(len(full), len(full), config.seed + 1)
    val, rest = order[: config.val_images], order[config.val_images :]
    if config.train_images:
        rest = rest[: config.train_images]
    return full.take(rest), full.take(val)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {key: value.detach().cpu().contiguous().clone() for key, value in state.items()}


def _summary(stats: dict[str, Any], config: TrainConfig) -> str:
    return (
        f"{config.name} epoch {stats['epoch']}/{config.epochs}: "
        f"train loss {stats['train_loss']:.3f} acc {stats['train_acc']:.3f}, "
        f"val clean {stats['val_clean']:.3f} robust {stats['val_robust']:.3f} "
        f"({stats['val_attack']}), {stats['images_per_s']:.0f} img/s, {stats['seconds']:.0f} s"
    )


def _train_epoch(session: _Session, budgets, data: ImageSet, epoch: int, progress: ProgressCallback) -> dict:
    config, model, optimizer = session.config, session.model, session.optimizer
    generator, attack_generator = session.generator, session.attack_generator
    device = next(model.parameters()).device
    model.train()
    per_epoch = math.ceil(len(data) / config.batch_size)
    order = torch.randperm(len(data), generator=generator)
    lrat = config.lrat_weighting()
    dtype = autocast_dtype(config.precision, device)
    sums: dict[str, float] = {}
    correct = seen = 0
    started = time.time()
    for step in range(per_epoch):
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        index = index.to(data.images.device)
        x = augment(data.images[index].float().div_(255), generator)
        x = x.contiguous(memory_format=torch.channels_last)
        y = data.labels[index]
        fraction = (epoch * per_epoch + step) / (per_epoch * config.epochs)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, fraction)
        with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            result = batch_loss(
                config.method, model, x, y, budgets,
                generator=attack_generator, trades_beta=config.trades_beta, lrat=lrat,
            )
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        optimizer.step()
        for key, value in {"train_loss": result.loss.item(), **result.stats}.items():
            sums[key] = sums.get(key, 0.0) + value * len(y)
        correct += (result.logits.argmax(1) == y).sum().item()
        seen += len(y)
        progress(Progress(
            len(data) * epoch + seen, len(data) * config.epochs,
            f"{config.name} epoch {epoch + 1}/{config.epochs}: loss {sums['train_loss'] / seen:.3f} "
            f"acc {correct / seen:.3f}",
        ))
    stats = {key: value / seen for key, value in sums.items()}
    stats.update(
        train_acc=correct / seen, lr_end=optimizer.param_groups[0]["lr"],
        images_per_s=round(seen / max(time.time() - started, 1e-9), 1),
    )
    return stats


def validate(
    model: torch.nn.Module, val: ImageSet, config: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Clean accuracy and PGD robust accuracy (an upper bound) on the held-out images, for
    the training threat (L∞ at the default budget for nominal and SAT runs)."""
    model.eval()
    threat = config.threat if config.threat in DEFAULT_BUDGETS else "linf"
    eps = DEFAULT_BUDGETS[threat]
    if config.eps is not None and config.threat == threat:
        eps = config.eps
    attack = PGD(model, threat, eps, steps=config.val_steps, seed=config.seed)
    clean = robust = 0
    for start in range(0, len(val), 250):
        x = val.images[start : start + 250].float().div(255).to(device)
        y = val.labels[start : start + 250].to(device)
        with torch.no_grad():
            clean += (model(x).argmax(1) == y).sum().item()
        with torch.no_grad():
            robust += (model(attack(x, y)).argmax(1) == y).sum().item()
    model.train()
    return {
        "val_clean": clean / len(val),
        "val_robust": robust / len(val),
        "val_attack": attack.describe(),
    }
