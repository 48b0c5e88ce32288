"""Importing checkpoints from elsewhere (read by `soupviz.foreign_formats`): the input normalisation
is chosen, the model is run once, and our safetensors and card are written; a folder of foreign
files opens as a family of imported copies.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from soupviz.cards import Card, card_path
from soupviz.checkpoints import SoupFamily, check_state_dict, load_family, save_checkpoint
from soupviz.data import ImageSet
from soupviz.errors import CheckpointError
from soupviz.foreign_formats import fill_counters, match_architecture, read_foreign
from soupviz.models import CIFAR10_MEAN, CIFAR10_STD, create_model
from soupviz.storage import cache_dir, files_stamp
from soupviz.threats import DEFAULT_BUDGETS, THREATS

FOREIGN_SUFFIXES = (".pt", ".pth", ".ckpt")
FAMILY_SUFFIXES = (".safetensors", ".json", *FOREIGN_SUFFIXES)  # the files a family folder is read from
IMPORT_THREATS = ("unknown", "none", *THREATS)
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
# RobustBench's DeepMind-layout models normalise inside the network with CIFAR-10 statistics that
# are not in their state dict; its other CIFAR-10 models take raw pixels in [0, 1].
ZOO_NORMALISATION = {arch: (CIFAR10_MEAN, CIFAR10_STD) for arch in ("dm_wide_resnet28_10", "wide_resnet70_16")}


@dataclass
class ImportResult:
    """What `import_checkpoint` wrote and what running the model showed."""

    path: Path
    card: Card
    check: str
    accuracy: float | None = None

    def summary(self) -> str:
        card = self.card
        return (
            f"{self.path}: {card.arch} from a {card.source['format']} file, normalisation mean "
            f"{_short(card.mean)} std {_short(card.std)}; {self.check}"
        )


def _short(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def import_checkpoint(
    source: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    arch: str | None = None,
    fmt: str = "auto",
    threat: str = "unknown",
    eps: float | None = None,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    check_images: ImageSet | None = None,
) -> ImportResult:
    """Import a foreign checkpoint into `out` as `<name>.safetensors` with its card.

    The normalisation is, in order: `normalisation` (mean, std) if given, the one stored in the
    file, the zoo's convention for the architecture (`ZOO_NORMALISATION`), else none (inputs
    used as pixels in [0, 1], as RobustBench's WideResNet-28-10/34-10 and PreActResNet-18 expect).
    The model is then run on `check_images` (its clean accuracy is reported: near 10% on
    CIFAR-10 usually means a wrong normalisation) or on 8 seeded random images, and must give
    finite logits of the right shape.

    Args:
        threat, eps: what the model was trained against, as the user states it ('unknown' if
            not given); `eps` defaults to the threat's usual budget (pixel scale).

    Returns:
        The written path, its card (with `source`: format, file name and SHA-256) and the check.
    """
    foreign = read_foreign(source, fmt)
    arch, num_classes = match_architecture(foreign, arch)
    if threat not in IMPORT_THREATS:
        raise CheckpointError(f"Unknown threat {threat!r}: use one of {', '.join(IMPORT_THREATS)}.")
    if eps is None and threat in DEFAULT_BUDGETS:
        eps = DEFAULT_BUDGETS[threat]
    if normalisation is None:
        stored = (foreign.mean, foreign.std) if foreign.mean is not None else None
        normalisation = stored or ZOO_NORMALISATION.get(arch, IDENTITY)
    mean, std = (tuple(float(v) for v in values) for values in normalisation)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise CheckpointError(f"The normalisation of {foreign.path} needs 3 means and 3 positive stds: {mean}, {std}.")
    model = create_model(arch, num_classes, mean, std)
    state = fill_counters(foreign.state_dict, arch, num_classes)
    check_state_dict(model, state, foreign.path)
    model.load_state_dict(state)
    check, accuracy = _run_check(model.eval(), check_images, num_classes, foreign.path)
    card = Card(
        name=name or re.sub(r"[^\w.-]+", "_", foreign.path.stem),
        arch=arch,
        threat=threat,
        eps=eps,
        num_classes=num_classes,
        mean=mean,
        std=std,
        data_source="",
        notes=f"Imported with soupviz import from {foreign.path.name} ({foreign.format}).",
        source={"format": foreign.format, "file": foreign.path.name, "sha256": foreign.sha256},
    )
    return ImportResult(save_checkpoint(state, card, out), card, check, accuracy)


def _run_check(model: torch.nn.Module, images: ImageSet | None, classes: int, path: Path) -> tuple[str, float | None]:
    with torch.no_grad():
        if images is None:
            x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
            labels = None
        else:
            x, labels = images.floats(), images.labels
        logits = model(x)
    if logits.shape != (len(x), classes) or not torch.isfinite(logits).all():
        raise CheckpointError(f"The checkpoint {path} gives non-finite or mis-shaped logits {tuple(logits.shape)}.")
    if labels is None:
        return "ran on 8 random images: finite logits.", None
    accuracy = float((logits.argmax(1) == labels.to(logits.device)).float().mean())
    hint = " (near chance: check the normalisation with --mean/--std)" if accuracy < 2 / classes else ""
    return f"{accuracy:.1%} clean accuracy on {len(x)} test images{hint}.", accuracy


def foreign_files(folder: str | Path) -> list[Path]:
    """Files of `folder` that need importing: .pt/.pth/.ckpt, and .safetensors without a card."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return [
        p
        for p in files
        if p.suffix in FOREIGN_SUFFIXES or (p.suffix == ".safetensors" and not card_path(p).exists())
    ]


def folder_stamp(folder: str | Path) -> str:
    """The `storage.files_stamp` of a family folder's checkpoints and cards (`FAMILY_SUFFIXES`): the
    cache key of what is read from it, changing when a checkpoint is added, replaced, removed or
    rewritten in place (a sweep writing its store there changes nothing); '' for no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return ""
    return files_stamp(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in FAMILY_SUFFIXES))


def open_family(folder: str | Path, cache: str | Path | None = None) -> SoupFamily:
    """The family in `folder`, importing its foreign files first (see `foreign_files`).

    A folder of carded safetensors loads as it is. Otherwise its foreign files are imported
    (architecture and format detected, normalisation as `import_checkpoint` chooses, threat
    'unknown') and its carded checkpoints copied into `cache/<stamp>/<folder name>`, made once
    per `folder_stamp`. The family keeps the folder's name.

    Args:
        cache: where imported families live (default: `<soupviz cache>/imported`).
    """
    folder = Path(folder)
    foreign = foreign_files(folder)
    if not foreign:
        return load_family(folder)
    target = Path(cache or cache_dir() / "imported") / folder_stamp(folder) / folder.name
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        for path in foreign:
            import_checkpoint(path, target)
        for path in folder.glob("*.safetensors"):
            if path not in foreign:
                shutil.copy2(path, target / path.name)
                shutil.copy2(card_path(path), target / card_path(path).name)
        (target / ".complete").write_text("")
    return load_family(target)
