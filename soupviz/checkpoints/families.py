"""Checkpoints on disk: safetensors weights with a JSON card beside them (`soupviz.checkpoints.cards`),
families, and a family's baselines (models trained outside its soup, in its `baselines/` subfolder).

A family is a folder of ingredients fine-tuned from one base. Loading never unpickles code:
safetensors, or plain `.pt`/`.pth` state dicts through `torch.load(weights_only=True)`; every
bad input raises one `CheckpointError` sentence that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from soupviz.checkpoints.cards import Card, card_path, read_card, write_card
from soupviz.checkpoints.state_layout import layout_difference
from soupviz.checkpoints.torch_files import check_file
from soupviz.errors import CheckpointError
from soupviz.files import atomic_write_bytes, shown_path
from soupviz.models.registry import create_model
from soupviz.threats import NOMINAL, THREATS

INGREDIENT_ORDER = (NOMINAL, *THREATS)


@dataclass
class Ingredient:
    """One loaded checkpoint: its card and its state dict (CPU tensors)."""

    card: Card
    state_dict: dict[str, torch.Tensor]
    path: Path

    @property
    def name(self) -> str:
        return self.card.name

    def build_model(self, device: torch.device | str = "cpu") -> nn.Module:
        """A fresh module of the card's architecture holding these weights, in eval mode."""
        model = create_model(self.card.arch, self.card.num_classes, self.card.mean, self.card.std)
        check_state_dict(model, self.state_dict, self.path)
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()


def content_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted keys, dtypes, shapes and bytes of a state dict."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(state_dict: dict[str, torch.Tensor], card: Card, folder: str | Path) -> Path:
    """Write `<folder>/<card.name>.safetensors` and its card atomically; fill `card.content_hash`.

    Returns:
        The path of the safetensors file.
    """
    folder = Path(folder)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    card.content_hash = content_hash(tensors)
    path = folder / f"{card.name}.safetensors"
    atomic_write_bytes(save_safetensors_bytes(tensors, metadata={"content_hash": card.content_hash}), path)
    write_card(card, card_path(path))
    return path


def load_checkpoint(path: str | Path) -> Ingredient:
    """Load a checkpoint and its card, checking the file, the hash and the weights' values."""
    path = Path(path)
    check_file(path)
    state_dict = read_weights(path)  # first: a file that is no checkpoint at all is the clearer error
    card = read_card(card_path(path))
    if card.content_hash and content_hash(state_dict) != card.content_hash:
        raise CheckpointError(
            f"The checkpoint {shown_path(path)} does not match the content hash in its card: the file was "
            "changed or corrupted."
        )
    ingredient = Ingredient(card, state_dict, path)
    check_state_dict(create_model(card.arch, card.num_classes), state_dict, path)
    return ingredient


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from safetensors, or a plain state dict from .pt/.pth without unpickling code."""
    if path.suffix == ".safetensors":
        data = path.read_bytes()
        if not _looks_like_safetensors(data):
            raise CheckpointError(f"The file {shown_path(path)} is not a safetensors file; give a checkpoint saved "
                                  "with safetensors.")
        try:
            state_dict = load_safetensors_bytes(data)
        except (SafetensorError, ValueError, OSError) as error:
            raise CheckpointError(f"The safetensors file {shown_path(path)} is truncated or corrupted; copy it "
                                  "again.") from error
    elif path.suffix in (".pt", ".pth"):
        state_dict = _read_torch_state_dict(path)
    else:
        raise CheckpointError(f"The checkpoint {shown_path(path)} is neither .safetensors nor .pt/.pth.")
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"The checkpoint {shown_path(path)} has NaN or Inf values in {key!r}.")
    return state_dict


def _looks_like_safetensors(data: bytes) -> bool:
    """Whether `data` starts like a safetensors file: an 8-byte little-endian header length, then
    that many bytes (or what is left of them, for a truncated file) of a JSON object."""
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + size]
    if size < 2 or not header.startswith(b"{"):
        return False
    if len(header) < size:  # cut inside the header: a truncated safetensors file
        return True
    try:
        return isinstance(json.loads(header), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _read_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A .pt/.pth state dict read by the one reader of torch files and its rules (`foreign_formats`)."""
    from soupviz.checkpoints.foreign_formats import read_foreign

    return read_foreign(path, "plain").state_dict


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Raise a CheckpointError naming the first missing, unexpected or mis-shaped key (with both shapes)."""
    difference = layout_difference(model.state_dict(), state_dict)
    if difference:
        raise CheckpointError(f"The checkpoint {shown_path(path)} does not fit its architecture: "
                              f"{difference.detail()}.")


@dataclass
class SoupFamily:
    """Ingredients fine-tuned from one base, sharing architecture and parameter layout."""

    name: str
    ingredients: list[Ingredient]
    folder: Path | None = None

    @property
    def names(self) -> list[str]:
        return [ingredient.name for ingredient in self.ingredients]

    @property
    def labels(self) -> list[str]:
        return [ingredient.card.label for ingredient in self.ingredients]

    @property
    def arch(self) -> str:
        return self.ingredients[0].card.arch

    @property
    def hashes(self) -> list[str]:
        return [ingredient.card.content_hash or content_hash(ingredient.state_dict) for ingredient in self.ingredients]

    def template(self) -> nn.Module:
        """A fresh module of the family's architecture with its one input normalisation: the
        template every soup of the family runs through.

        Raises:
            CheckpointError: the ingredients normalise their inputs differently.
        """
        check_one_normalisation(self.ingredients, self.name)
        card = self.ingredients[0].card
        return create_model(card.arch, card.num_classes, card.mean, card.std)


def check_one_normalisation(ingredients: list[Ingredient], name: str) -> None:
    """Raise a CheckpointError naming each group of ingredients and its (mean, std) when they
    differ: a soup runs every ingredient's weights behind one normalisation."""
    groups: dict[tuple, list[str]] = {}
    for ingredient in ingredients:
        card = ingredient.card
        stats = tuple(tuple(round(float(v), 6) for v in values) for values in (card.mean, card.std))
        groups.setdefault(stats, []).append(ingredient.name)
    if len(groups) > 1:
        described = "; ".join(
            f"{', '.join(names)} mean {_triple(mean)} std {_triple(std)}" for (mean, std), names in groups.items()
        )
        raise CheckpointError(
            f"The family {name!r} mixes input normalisations ({described}): a soup runs all its ingredients "
            "behind one, so import them with the same --mean/--std or keep them in separate families."
        )


def _triple(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def family_from_ingredients(ingredients: list[Ingredient], name: str, folder: Path | None = None) -> SoupFamily:
    """Check that ingredients can be souped together and order them nominal, L∞, L2, L1, others."""
    if not ingredients:
        raise CheckpointError(f"The family {name!r} has no checkpoints.")
    first = ingredients[0]
    for other in ingredients[1:]:
        if other.card.arch != first.card.arch:
            raise CheckpointError(
                f"{shown_path(other.path)} is a {other.card.arch} but {shown_path(first.path)} is a {first.card.arch}: "
                "a family needs one architecture."
            )
        difference = layout_difference(first.state_dict, other.state_dict)
        if difference:
            raise CheckpointError(
                f"{shown_path(other.path)} does not have the keys and shapes of {shown_path(first.path)} "
                f"({difference.detail()}): "
                "it is not of this family."
            )
    names = [ingredient.name for ingredient in ingredients]
    check_one_normalisation(ingredients, name)
    if len(set(names)) != len(names):
        raise CheckpointError(f"The family {name!r} has two checkpoints with the same name.")

    def order(ingredient: Ingredient) -> tuple[int, str]:
        threat = ingredient.card.threat
        return (
            INGREDIENT_ORDER.index(threat) if threat in INGREDIENT_ORDER else len(INGREDIENT_ORDER),
            ingredient.name,
        )

    return SoupFamily(name, sorted(ingredients, key=order), folder)


def load_family(folder: str | Path, include: list[str] | None = None) -> SoupFamily:
    """Load every checkpoint in `folder` (or only those named in `include`) as a family."""
    folder = Path(folder)
    if folder.is_file():
        raise CheckpointError(
            f"{shown_path(folder)} is a file, not a folder: give the family folder that holds it, "
            f"{shown_path(folder.parent)}."
        )
    if not folder.is_dir():
        raise CheckpointError(f"The family folder {shown_path(folder)} does not exist.")
    paths = sorted(folder.glob("*.safetensors"))
    if include is not None:
        wanted = set(include)
        paths = [path for path in paths if path.stem in wanted]
        absent = wanted - {path.stem for path in paths}
        if absent:
            raise CheckpointError(f"The family folder {shown_path(folder)} has no checkpoint named "
                                  f"{sorted(absent)[0]!r}.")
    if not paths:
        raise CheckpointError(f"The family folder {shown_path(folder)} holds no .safetensors checkpoints.")
    return family_from_ingredients([load_checkpoint(path) for path in paths], folder.name, folder)


BASELINES = "baselines"  # the subfolder of a family holding models trained outside its soup


def baselines_folder(family: SoupFamily) -> Path | None:
    """Where `family`'s baselines live, or None for a family with no folder (e.g. built in memory)."""
    return None if family.folder is None else Path(family.folder) / BASELINES


def load_baselines(family: SoupFamily) -> list[Ingredient]:
    """Every checkpoint in the family's `baselines/` subfolder; empty when it has none."""
    folder = baselines_folder(family)
    if folder is None or not folder.is_dir():
        return []
    return [load_checkpoint(path) for path in sorted(folder.glob("*.safetensors"))]


def baseline_family_name(family: SoupFamily, baseline: Ingredient) -> str:
    """The family name a baseline's records carry: 'cifar10-x/baselines/sat'."""
    return f"{family.name}/{BASELINES}/{baseline.name}"


def baseline_labels(family: SoupFamily, baselines: Sequence[Ingredient]) -> dict[str, str]:
    """Record family -> display label ('SAT', from the card) of each baseline, for figures."""
    return {baseline_family_name(family, b): b.card.label for b in baselines}
