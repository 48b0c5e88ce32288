"""Datasets: CIFAR-10 from torchvision's download or from any ImageFolder directory.

Images are kept as uint8 tensors (N, 3, H, W) and reach models as floats in [0, 1]; decoded
splits are cached outside the repository so a second start is fast. Evaluation always runs on
fixed, seeded subsets so two soups are compared on the same images.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from soupviz.errors import DataError
from soupviz.files import atomic_torch_save, cache_dir, files_stamp

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
DATA_ENV = "SOUPVIZ_DATA"
TORCHVISION = "torchvision"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The folders tried when no source is set, in order (the README's Data section documents them):
# a shared data folder beside the project, then one inside it.
LOCAL_CANDIDATES = (
    _PROJECT_ROOT.parent / "shared" / "data" / "cifar10",
    _PROJECT_ROOT / "data" / "cifar10",
)


@dataclass(frozen=True)
class ImageSet:
    """Labelled images: `images` uint8 (N, 3, H, W), `labels` int64 (N,), and provenance."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def digest(self) -> str:
        """20 hex digits of SHA-256 over the images' and labels' bytes: which data a result was
        computed on, the same whatever folder or download the images came from."""
        return hashlib.sha256(self.images.numpy().tobytes() + self.labels.numpy().tobytes()).hexdigest()[:20]

    def floats(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The images as float32 in [0, 1] on `device`."""
        return self.images.to(device).float().div_(255.0)

    def take(self, indices: torch.Tensor) -> ImageSet:
        """The images at `indices`, in that order."""
        return ImageSet(self.images[indices], self.labels[indices], self.classes, self.source)

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """A fixed subset of `n` images drawn without replacement with `seed`.

        The same (n, seed) always gives the same images, and a smaller n is a prefix of a
        larger one, so budgets can grow without changing the first images.
        """
        return self.take(subset_indices(len(self), n, seed))

    def per_class(self, k: int, seed: int = 0) -> ImageSet:
        """`k` images of each class (fewer where a class has fewer), drawn with `seed`."""
        order = subset_indices(len(self), len(self), seed)
        labels = self.labels[order]
        chosen = [order[labels == c][:k] for c in range(len(self.classes))]
        return self.take(torch.cat(chosen))


def subset_indices(total: int, n: int, seed: int) -> torch.Tensor:
    """Indices of a seeded random subset of size min(n, total) of range(total)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=generator)[: min(n, total)]


def resolve_source(source: str | os.PathLike | None = None) -> str:
    """Decide where CIFAR-10 comes from.

    Args:
        source: "torchvision" (optionally "torchvision:<download folder>"), a path to an
            ImageFolder root with `train/` and `test/`, or None to use the `SOUPVIZ_DATA`
            environment variable, then a local copy next to the project if one exists.

    Returns:
        The source string that `load_split` takes.
    """
    if source is None or str(source) == "":
        source = os.environ.get(DATA_ENV, "")
    source = str(source)
    if source:
        return source
    for candidate in LOCAL_CANDIDATES:
        if (candidate / "test").is_dir():
            return str(candidate)
    if (torchvision_root() / "cifar-10-batches-py").is_dir():
        return TORCHVISION
    raise DataError(
        "No CIFAR-10 data was found: set SOUPVIZ_DATA (or pass --data) to an ImageFolder "
        "directory with train/ and test/, or to 'torchvision' to download it with torchvision."
    )


def torchvision_root(source: str = TORCHVISION) -> Path:
    """The folder torchvision downloads CIFAR-10 into for a 'torchvision[:folder]' source."""
    _, _, folder = source.partition(":")
    return Path(folder) if folder else cache_dir() / "torchvision"


def load_split(source: str | os.PathLike | None, split: str) -> ImageSet:
    """Load the 'train' or 'test' split of CIFAR-10 from `source` (see `resolve_source`).

    Decoded tensors are cached under the soupviz cache folder, keyed by the image files' paths,
    sizes and modification times (`load_image_folder`), so a second call reads one file instead of
    decoding images, and an edited folder is decoded afresh.
    """
    if split not in ("train", "test"):
        raise DataError(f"Unknown split {split!r}: use 'train' or 'test'.")
    source = resolve_source(source)
    if source.split(":", 1)[0] == TORCHVISION:
        return _load_torchvision(source, split)
    root = Path(source).expanduser()
    if not (root / split).is_dir():
        raise DataError(f"The data folder {root} has no '{split}/' subfolder of class folders.")
    return load_image_folder(root / split)


def load_image_folder(folder: str | os.PathLike, size: int = 32) -> ImageSet:
    """Load an ImageFolder directory (one subfolder per class) as an ImageSet.

    Images are converted to RGB and resized to `size` x `size` where they differ; classes
    are the subfolder names in sorted order (CIFAR-10's label order for its folder layout). The
    decoded images are cached under `image_folder_stamp`: a file added, removed or rewritten in
    place is decoded afresh.
    """
    folder = Path(folder).expanduser()
    classes, files = _image_files(folder)
    key = hashlib.sha256(f"{folder.resolve()}|{_stamp(files)}|{size}".encode()).hexdigest()[:16]
    cached = cache_dir() / "data" / f"{folder.name}-{key}.pt"
    if cached.exists():
        blob = torch.load(cached, weights_only=True)
        return ImageSet(blob["images"].contiguous(), blob["labels"], classes, str(folder))
    images = torch.from_numpy(np.stack([_read_image(path, size) for path, _ in files])).contiguous()
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    atomic_torch_save({"images": images, "labels": labels}, cached)
    return ImageSet(images, labels, classes, str(folder))


def image_folder_stamp(folder: str | os.PathLike) -> str:
    """The `files.files_stamp` of an ImageFolder directory's images: what a result computed from
    them is keyed on (it changes when an image is added, removed or rewritten in place).

    Raises:
        DataError: the folder is missing, or holds no images in class subfolders.
    """
    return _stamp(_image_files(Path(folder).expanduser())[1])


def _stamp(files: list[tuple[Path, int]]) -> str:
    return files_stamp(path for path, _ in files) + f"-{len(files)}"


def _image_files(folder: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """The class names of an ImageFolder directory and its (image file, label) pairs, in order."""
    if not folder.is_dir():
        raise DataError(f"The image folder {folder} does not exist.")
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    if not classes:
        raise DataError(f"The image folder {folder} has no class subfolders.")
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((folder / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DataError(f"The image folder {folder} has class folders but no images in them.")
    return classes, files


def _read_image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except OSError as error:
        raise DataError(f"The image {path} cannot be read ({error}).") from error


def _load_torchvision(source: str, split: str) -> ImageSet:
    from torchvision.datasets import CIFAR10

    root = torchvision_root(source)
    try:
        dataset = CIFAR10(str(root), train=split == "train", download=True)
    except Exception as error:  # network or archive problems surface as many types
        raise DataError(
            f"torchvision could not download CIFAR-10 into {root} ({error}); without internet, "
            "point SOUPVIZ_DATA at a local ImageFolder copy instead."
        ) from error
    images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
    labels = torch.tensor(dataset.targets, dtype=torch.int64)
    return ImageSet(images, labels, tuple(dataset.classes), f"torchvision CIFAR-10 ({root})")


def augment(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, on a float batch (N, C, H, W)."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(height)[None, :]).to(images.device)
    cols = (dx[:, None] + torch.arange(width)[None, :]).to(images.device)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    out = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)
