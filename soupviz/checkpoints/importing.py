"""Importing checkpoints from elsewhere (read by `soupviz.checkpoints.foreign_formats`): the input normalisation
is chosen, the model is run once, and our safetensors and card are written; a folder of foreign
files opens as a family of imported copies.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from soupviz.checkpoints.cards import Card, card_path
from soupviz.checkpoints.families import SoupFamily, check_state_dict, load_family, save_checkpoint
from soupviz.checkpoints.foreign_formats import ForeignCheckpoint, fill_counters, match_architecture, read_foreign
from soupviz.checkpoints.zoo_entries import ZooEntry, entry_for_file, zoo_entry
from soupviz.data import ImageSet
from soupviz.errors import CheckpointError
from soupviz.files import cache_dir, files_stamp, shown_path
from soupviz.models.registry import create_model
from soupviz.threats import DEFAULT_BUDGETS, THREATS

FOREIGN_SUFFIXES = (".pt", ".pth", ".ckpt")
FAMILY_SUFFIXES = (".safetensors", ".json", *FOREIGN_SUFFIXES)  # the files a family folder is read from
IMPORT_THREATS = ("unknown", "none", *THREATS)
NO_NORMALISATION = (
    "carries no input normalisation and is named after no RobustBench entry soupviz knows, so its mean and "
    "std cannot be told: name its entry with --zoo (e.g. --zoo Carmon2019Unlabeled), or give --mean and --std "
    "(--mean 0,0,0 --std 1,1,1 for a model that takes pixels in [0, 1] as they are)"
)


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
            f"{_short(card.mean)} std {_short(card.std)} (from {card.source['normalisation']}); {self.check}"
        )


def _short(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def import_checkpoint(
    source: str | Path, out: str | Path, *, name: str | None = None, arch: str | None = None, fmt: str = "auto",
    threat: str = "unknown", eps: float | None = None,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None, zoo: str | None = None,
    overwrite: bool = False, command: str = "", check_images: ImageSet | Callable[[], ImageSet | None] | None = None,
) -> ImportResult:
    """Import a foreign checkpoint into `out` as `<name>.safetensors` with its card.

    The file is read and checked (format, architecture, normalisation, name) before any image is
    loaded. The normalisation is, in order: `normalisation` (mean, std) if given, the one stored
    in the file, the RobustBench entry's (`zoo`, else the entry the file is named after, see
    `soupviz.checkpoints.zoo_entries`); with none of these the file is refused, never guessed. The model is
    then run on `check_images` (its clean accuracy is reported: near 10% on CIFAR-10 usually means
    a wrong normalisation) or on 8 seeded random images, and must give finite logits of the right
    shape.

    Args:
        threat, eps: what the model was trained against, as the user states it (default: the zoo
            entry's L∞/L2, else 'unknown'); `eps` defaults to the threat's usual budget (pixel scale).
        zoo: a RobustBench 1.1.1 CIFAR-10 entry name, e.g. 'Rice2020Overfitting'.
        overwrite: replace an ingredient of the same name in `out` (otherwise refused).
        command: the command line that asked for the import, recorded in the card.
        check_images: test images, or a function loading them (called only for a good file).

    Returns:
        The written path, its card (with `source`: format, file name, SHA-256, zoo entry and where
        the normalisation came from) and the check.
    """
    source = Path(source)
    entry = _stated_entry(source, threat, zoo, arch)
    foreign = read_foreign(source, fmt, entry.wrapper if entry else None)
    arch, num_classes = match_architecture(foreign, entry.arch if entry else arch)
    threat, eps = _stated_threat(threat, eps, entry)
    (mean, std), origin = _checked_normalisation(foreign, entry, normalisation)
    card_name = _free_name(out, name or re.sub(r"[^\w.-]+", "_", foreign.path.stem), overwrite)
    state, check, accuracy = _load_and_check(foreign, arch, num_classes, (mean, std), check_images)
    card = Card(
        name=card_name, arch=arch, threat=threat, eps=eps, num_classes=num_classes, mean=mean, std=std,
        data_source="", command=command, **_provenance(foreign, entry, origin),
    )
    return ImportResult(save_checkpoint(state, card, out), card, check, accuracy)


def _stated_entry(source: Path, threat: str, zoo: str | None, arch: str | None) -> ZooEntry | None:
    """The RobustBench entry `zoo` names, else the one `source` is named after (None for neither),
    once the stated threat and architecture are checked against it."""
    if threat not in IMPORT_THREATS:
        raise CheckpointError(f"Unknown threat {threat!r}: use one of {', '.join(IMPORT_THREATS)}.")
    entry = zoo_entry(zoo, threat) if zoo else entry_for_file(source, threat)
    if entry and arch and arch != entry.arch:
        raise CheckpointError(f"RobustBench's {entry.key} is a {entry.arch}, not a {arch}: drop --arch or --zoo.")
    return entry


def _stated_threat(threat: str, eps: float | None, entry: ZooEntry | None) -> tuple[str, float | None]:
    """The threat and budget to record: as stated, else the zoo entry's threat and the threat's usual budget."""
    if threat == "unknown" and entry and entry.threat in THREATS:
        threat = entry.threat
    if eps is None and threat in DEFAULT_BUDGETS:
        eps = DEFAULT_BUDGETS[threat]
    return threat, eps


def _checked_normalisation(
    foreign: ForeignCheckpoint, entry: ZooEntry | None, given
) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], str]:
    """((mean, std), where they came from) as `_normalisation` chooses them, as floats: 3 of each, stds positive."""
    normalisation, origin = _normalisation(foreign, entry, given)
    mean, std = (tuple(float(v) for v in values) for values in normalisation)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise CheckpointError(f"The normalisation of {shown_path(foreign.path)} needs 3 means and 3 positive "
                              f"stds: {mean}, {std}.")
    return (mean, std), origin


def _free_name(out: str | Path, name: str, overwrite: bool) -> str:
    """`name`, unless `out` already holds an ingredient of that name and `overwrite` is not given."""
    target = Path(out) / f"{name}.safetensors"
    if target.exists() and not overwrite:
        raise CheckpointError(
            f"{shown_path(target)} already exists: give the import another --name, or --overwrite to replace it."
        )
    return name


def _load_and_check(
    foreign: ForeignCheckpoint, arch: str, num_classes: int, normalisation: tuple[tuple[float, ...], ...],
    check_images: ImageSet | Callable[[], ImageSet | None] | None,
) -> tuple[dict[str, torch.Tensor], str, float | None]:
    """The file's state dict (BatchNorm counters filled in), checked by loading it into `arch` with
    `normalisation` (mean, std), and `_run_check`'s sentence and accuracy for that model;
    `check_images` (or the function giving them) is called only for a file that loads."""
    model = create_model(arch, num_classes, *normalisation)
    state = fill_counters(foreign.state_dict, arch, num_classes)
    check_state_dict(model, state, foreign.path)
    model.load_state_dict(state)
    images = check_images() if callable(check_images) else check_images
    return (state, *_run_check(model.eval(), images, num_classes, foreign.path))


def _provenance(foreign: ForeignCheckpoint, entry: ZooEntry | None, origin: str) -> dict:
    """The card's `notes` and `source` fields: the file, its format and SHA-256, the zoo entry and
    where the normalisation came from."""
    dropped = f"; left out {foreign.dropped} keys of the unused sub_block1" if foreign.dropped else ""
    return {
        "notes": f"Imported with soupviz import from {foreign.path.name} ({foreign.format}){dropped}.",
        "source": {
            "format": foreign.format,
            "file": foreign.path.name,
            "sha256": foreign.sha256,
            "zoo": f"RobustBench 1.1.1 CIFAR-10 {entry.key}: {entry.constructor}" if entry else "",
            "normalisation": origin,
        },
    }


def _normalisation(foreign: ForeignCheckpoint, entry: ZooEntry | None, given) -> tuple[tuple, str]:
    """(mean, std) and where they came from: the flags, the file, the zoo entry; else refused."""
    if given is not None:
        return given, "--mean/--std"
    if foreign.mean is not None:
        return (foreign.mean, foreign.std), f"the file {foreign.path.name}"
    if entry is None:
        raise CheckpointError(f"The checkpoint {shown_path(foreign.path)} {NO_NORMALISATION}.")
    if entry.normalisation is None:
        raise CheckpointError(
            f"RobustBench's {entry.key} takes its normalisation from its file, and {shown_path(foreign.path)} "
            "has none: "
            "give --mean and --std."
        )
    return entry.normalisation, f"RobustBench 1.1.1 entry {entry.key}"


def _run_check(model: torch.nn.Module, images: ImageSet | None, classes: int, path: Path) -> tuple[str, float | None]:
    with torch.no_grad():
        if images is None:
            x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
            labels = None
        else:
            x, labels = images.floats(), images.labels
        logits = model(x)
    if logits.shape != (len(x), classes) or not torch.isfinite(logits).all():
        raise CheckpointError(f"The checkpoint {shown_path(path)} gives non-finite or mis-shaped logits "
                              f"{tuple(logits.shape)}.")
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
    """The `files.files_stamp` of a family folder's checkpoints and cards (`FAMILY_SUFFIXES`): the
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
