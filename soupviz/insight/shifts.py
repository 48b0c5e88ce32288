"""Distribution shifts for few-shot adaptation: labelled images under a corruption or from a folder,
split once into a fixed held-out set and a pool that selection draws of k per class come from,
every draw seeded per (seed, shift, draw) so that shifts and draws never share one.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from soupviz.corruptions.cifar_c import corrupt
from soupviz.data import CIFAR10_CLASSES, IMAGE_SUFFIXES, ImageSet, image_folder_stamp, load_image_folder
from soupviz.errors import DataError, SoupvizError
from soupviz.files import cache_dir

CORRUPTION_BATCH = 500  # corruptions depend on the batch: always corrupt in these fixed chunks
MAX_ZIP_BYTES = 512 * 2**20  # uncompressed size of an uploaded archive of labelled images
SEVERITY = 3  # the defaults of a corruption shift, for the CLI and the Adaptation page alike
PER_CLASS = 100
HELDOUT_PER_CLASS = 50
ShiftSpec = tuple  # ('corruption', name, severity), ('folder', path) or ('upload', file name, content digest)


def draw_seed(seed: int, shift: str, draw: int | str) -> int:
    """A seed for one random choice (`draw`: a draw number or a purpose) on one shift: fixed by
    (seed, shift, draw), unrelated across shifts and draws, so two shifts never share a draw."""
    digest = hashlib.sha256(f"{seed}|{shift}|{draw}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class ShiftData:
    """Shifted labelled images `x` (N, 3, H, W) in [0, 1], `y` (N,), split once into a fixed
    `heldout` set and a `pool` (indices) from which selection sets of k per class are drawn;
    `origin` (N,) are the images' indices in the set they came from (e.g. the test split)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    heldout: torch.Tensor
    pool: torch.Tensor
    classes: tuple[str, ...]
    seed: int
    origin: torch.Tensor | None = None

    @classmethod
    def from_images(
        cls, images: ImageSet, heldout_per_class: int = HELDOUT_PER_CLASS, seed: int = 0, name: str | None = None,
        corruption: str | None = None, *, severity: int = 3,
        model_classes: Sequence[str] = CIFAR10_CLASSES, origin: torch.Tensor | None = None,
    ) -> ShiftData:
        """A shift from labelled images (test images, or a user's `load_image_folder`),
        optionally corrupted first.

        Labels are mapped onto `model_classes` by name, so a folder holding only 'cat/' and
        'dog/' gets labels 3 and 5. Corruptions run in fixed chunks of 500 with `seed`, so
        the shifted images depend neither on k nor on the selection draw. Each class keeps
        `heldout_per_class` images (drawn with `draw_seed(seed, name, "held-out")`) for scoring;
        the rest form the pool.
        """
        if heldout_per_class < 1:
            raise SoupvizError(f"Each class needs at least one held-out image to score the choice on, not "
                               f"{heldout_per_class}; hold out 1 or more per class.")
        model_classes = list(model_classes)
        unknown = [c for c in images.classes if c not in model_classes]
        if unknown:
            raise SoupvizError(
                f"The classes {unknown} of {images.source} are not classes of the model; "
                f"name the class folders among {', '.join(model_classes)}."
            )
        mapping = torch.tensor([model_classes.index(c) for c in images.classes])
        y = mapping[images.labels]
        x = images.floats()
        if corruption is not None:
            chunks = x.split(CORRUPTION_BATCH)
            x = torch.cat([corrupt(chunk, corruption, severity, seed) for chunk in chunks])
            name = name or f"{corruption} {severity}"
        name = name or images.source
        generator = torch.Generator().manual_seed(draw_seed(seed, name, "held-out"))
        heldout, pool = [], []
        for c, class_name in enumerate(model_classes):
            members = (y == c).nonzero()[:, 0]
            members = members[torch.randperm(len(members), generator=generator)]
            if 0 < len(members) <= heldout_per_class:
                raise SoupvizError(
                    f"Class {class_name!r} has {len(members)} images, so holding out "
                    f"{heldout_per_class} per class leaves none to select with; lower the "
                    "held-out count or add images."
                )
            heldout.append(members[:heldout_per_class])
            pool.append(members[heldout_per_class:])
        origin = torch.arange(len(y)) if origin is None else torch.as_tensor(origin)
        return cls(name, x, y, torch.cat(heldout), torch.cat(pool), tuple(model_classes), seed, origin)

    def selection_indices(self, k: int, draw: int = 0) -> torch.Tensor:
        """Indices of k pool images per class (fewer where the pool has fewer) for selection draw
        `draw`, seeded by `draw_seed(seed, name, draw)`: draws and shifts are independent, and
        for one draw a larger k keeps the images of a smaller one."""
        if k < 1:
            raise SoupvizError(f"Selection needs at least one image per class, got k={k}.")
        generator = torch.Generator().manual_seed(draw_seed(self.seed, self.name, draw))
        pool = self.pool[torch.randperm(len(self.pool), generator=generator)]
        return torch.cat([pool[self.y[pool] == c][:k] for c in range(len(self.classes))])

    def pool_sizes(self) -> dict[str, int]:
        """Pool images per class, for the classes the shift has."""
        counts = torch.bincount(self.y[self.pool], minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts, strict=True) if n > 0}


def corruption_shift(
    split: ImageSet, corruption: str, severity: int, per_class: int, heldout_per_class: int, *, seed: int = 0
) -> ShiftData:
    """`per_class` images of each class of `split`, drawn with `draw_seed(seed, shift, 'images')`
    (so each shift has its own images), corrupted; `heldout_per_class` of them held out."""
    if per_class < 1:
        raise SoupvizError(f"A corruption shift draws at least one test image per class, not {per_class}.")
    name = f"{corruption} {severity}"
    generator = torch.Generator().manual_seed(draw_seed(seed, name, "images"))
    order = torch.randperm(len(split), generator=generator)
    chosen = torch.cat([order[split.labels[order] == c][:per_class] for c in range(len(split.classes))])
    return ShiftData.from_images(
        split.take(chosen), heldout_per_class, seed, name, corruption, severity=severity, origin=chosen
    )


def folder_shift(folder: str | Path, heldout_per_class: int, seed: int = 0, name: str | None = None) -> ShiftData:
    """A shift from a folder of labelled images (class folders cat/, dog/, ...)."""
    return ShiftData.from_images(load_image_folder(folder), heldout_per_class, seed, name or Path(folder).name)


def upload_spec(name: str, data: bytes) -> ShiftSpec:
    """The spec of an uploaded archive: its file name and a digest of its bytes, so results kept
    under the spec are never reused for a different archive uploaded under the same name."""
    return ("upload", name, hashlib.sha256(data).hexdigest()[:20])


def shift_identity(spec: ShiftSpec) -> tuple:
    """`spec` as a cache key: a folder shift with its images' `image_folder_stamp` appended, so a
    result kept for a folder is not shown once its images are edited (a missing folder keeps its
    spec: building the shift says what is wrong)."""
    if spec[0] != "folder":
        return tuple(spec)
    try:
        return (*spec, image_folder_stamp(spec[1]))
    except DataError:
        return tuple(spec)


def shift_from_spec(
    spec: ShiftSpec, split: ImageSet | None, per_class: int, heldout_per_class: int, seed: int = 0,
    *, upload: bytes | None = None, uploads: str | Path | None = None,
) -> ShiftData:
    """The shift `spec` names, as the Adaptation page offers them: ('corruption', name, severity)
    corrupts `per_class` images of each class of the test `split` (`corruption_shift`); ('folder',
    path) reads a folder of class folders; ('upload', file name, …) (`upload_spec`) unpacks the archive's bytes
    `upload` into `uploads` (default the cache's uploads/shifts) by `unpack_labelled_zip`. A
    folder or archive shift is named after the folder's or file's name; `heldout_per_class` images
    of each class are held out.

    Raises:
        SoupvizError: no test split for a corruption, no archive for an upload, or what reading the
            images raises.
    """
    kind, where = spec[0], spec[1]
    if kind == "corruption":
        if split is None:
            raise SoupvizError("A corruption shift corrupts the test images: set up the data first.")
        return corruption_shift(split, where, spec[2], per_class, heldout_per_class, seed=seed)
    if kind == "folder":
        folder = Path(where)
    elif kind == "upload":
        if upload is None:
            raise SoupvizError(f"The archive {where} was not uploaded; upload a .zip of class folders.")
        folder = unpack_labelled_zip(upload, where, uploads or cache_dir() / "uploads" / "shifts")
    else:
        raise ValueError(f"unknown shift source {kind!r}")
    return folder_shift(folder, heldout_per_class, seed, name=Path(where).name)


def unpack_labelled_zip(data: bytes, name: str, root: str | Path) -> Path:
    """Extract an uploaded .zip of class folders ('cat/1.png', or inside one top folder) into a
    folder of `root` named by its content; return the folder holding the class folders.

    Raises:
        SoupvizError: not a zip archive, too large, or without images in class folders.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise SoupvizError(f"The file {name} is not a .zip archive; upload a .zip whose folders are "
                           "named by class (cat/, dog/, ...) and hold the images.") from error
    members = [m for m in archive.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES
               and not m.filename.startswith(("/", "\\")) and ".." not in Path(m.filename).parts
               and "__MACOSX" not in Path(m.filename).parts]
    if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
        raise SoupvizError(f"The archive {name} unpacks to over {MAX_ZIP_BYTES // 2**20} MiB; upload fewer images.")
    if not any(len(Path(m.filename).parts) >= 2 for m in members):
        raise SoupvizError(f"The archive {name} has no images inside class folders; put each image in a "
                           "folder named by its class (cat/, dog/, ...).")
    folder = Path(root) / hashlib.sha256(data).hexdigest()[:16]
    for member in members:
        target = folder.joinpath(*Path(member.filename).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(member))
    top = folder
    while True:
        children = [p for p in top.iterdir() if p.is_dir()]
        has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for c in children for p in c.iterdir())
        if has_images or len(children) != 1:
            return top
        top = children[0]
