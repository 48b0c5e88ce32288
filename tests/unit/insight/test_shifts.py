"""Specification of soupviz.insight.shifts: held-out and pool splits per class, selection draws
independent across draws and shifts, corruption in fixed chunks, and a user's folder classes mapped
onto the model's; the shifts the Adaptation page names (a corruption, a folder, an uploaded archive)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from soupviz.corruptions.cifar_c import corrupt
from soupviz.data import CIFAR10_CLASSES, ImageSet, load_image_folder
from soupviz.errors import SoupvizError
from soupviz.insight.shifts import ShiftData, corruption_shift, shift_from_spec, unpack_labelled_zip, upload_spec


@pytest.fixture
def images(synthetic_images) -> ImageSet:
    """The 40 synthetic images (4 per class) at 16x16, to keep corruptions cheap."""
    small = F.interpolate(synthetic_images.images.float(), size=16, mode="area").round()
    return ImageSet(small.to(torch.uint8), synthetic_images.labels, CIFAR10_CLASSES, "synthetic")


def test_shift_splits_are_disjoint_per_class_and_seeded(images):
    shift = ShiftData.from_images(images, heldout_per_class=2, seed=0)
    held, pool = set(shift.heldout.tolist()), set(shift.pool.tolist())
    assert not held & pool and held | pool == set(range(40))
    assert torch.equal(torch.bincount(shift.y[shift.heldout], minlength=10), torch.full((10,), 2))
    chosen = shift.selection_indices(1, draw=3)
    assert set(chosen.tolist()) <= pool and sorted(shift.y[chosen].tolist()) == list(range(10))
    assert torch.equal(chosen, shift.selection_indices(1, draw=3))
    assert len(shift.selection_indices(50, draw=0)) == 20  # fewer where the pool has fewer
    assert shift.pool_sizes() == dict.fromkeys(CIFAR10_CLASSES, 2)


def test_draws_and_shifts_select_independent_images(images):
    many = ImageSet(images.images.repeat(5, 1, 1, 1), images.labels.repeat(5), CIFAR10_CLASSES, "many")
    first = ShiftData.from_images(many, heldout_per_class=2, seed=0, name="first")
    draws = [set(first.selection_indices(2, draw=d).tolist()) for d in range(6)]
    assert all(a != b for i, a in enumerate(draws) for b in draws[i + 1:]), "every pair of draws differs"
    assert draws[0] < set(first.selection_indices(5, draw=0).tolist()), "a larger k keeps a draw's images"
    second = ShiftData.from_images(many, heldout_per_class=2, seed=0, name="second")
    assert not torch.equal(first.heldout, second.heldout)
    assert set(first.selection_indices(2, 0).tolist()) != set(second.selection_indices(2, 0).tolist())
    fog, noise = (corruption_shift(many, name, 3, 8, 2, seed=0) for name in ("fog", "gaussian_noise"))
    fog_images = set(fog.origin[fog.selection_indices(3, 0)].tolist())
    noise_images = set(noise.origin[noise.selection_indices(3, 0)].tolist())
    assert len(fog_images & noise_images) < len(fog_images) / 2, "two shifts draw their own test images"
    again = corruption_shift(many, "fog", 3, 8, 2, seed=0)
    assert torch.equal(again.x, fog.x) and torch.equal(again.selection_indices(3, 1), fog.selection_indices(3, 1))
    assert torch.equal(fog.x, corrupt(many.take(fog.origin).floats(), "fog", 3, seed=0))


def test_corrupted_shift_is_corrupted_in_fixed_chunks(images):
    shifted = ShiftData.from_images(
        images, heldout_per_class=2, corruption="gaussian_noise", severity=5
    )
    assert shifted.name == "gaussian_noise 5"
    assert torch.equal(shifted.x, corrupt(images.floats(), "gaussian_noise", 5, seed=0))


def test_user_folder_classes_are_mapped_to_the_model_classes(images):
    cats_and_dogs = images.take(
        torch.cat([(images.labels == 3).nonzero()[:, 0], (images.labels == 5).nonzero()[:, 0]])
    )
    folder = ImageSet(
        cats_and_dogs.images, (cats_and_dogs.labels == 5).long(), ("cat", "dog"), "my photos"
    )
    shifted = ShiftData.from_images(folder, heldout_per_class=1)
    assert sorted(set(shifted.y.tolist())) == [3, 5] and shifted.name == "my photos"
    assert len(shifted.selection_indices(2, 0)) == 4 and len(shifted.heldout) == 2
    with pytest.raises(SoupvizError, match="not classes of the model"):
        ShiftData.from_images(ImageSet(folder.images, folder.labels, ("cat", "unicorn"), "mine"), 1)
    with pytest.raises(SoupvizError, match="leaves none to select"):
        ShiftData.from_images(folder, heldout_per_class=4)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_archive_of_class_folders_unpacks_to_an_image_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))  # load_image_folder caches decoded images there
    data = _zip({"shift/cat/a.png": _png(), "shift/dog/b.png": _png(), "../evil.png": _png(), "shift/notes.txt": b"x"})
    folder = unpack_labelled_zip(data, "shift.zip", tmp_path / "uploads")
    assert sorted(p.name for p in folder.iterdir()) == ["cat", "dog"]
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()
    assert load_image_folder(folder).classes == ("cat", "dog")


@pytest.mark.parametrize(("data", "message"), [(b"plain bytes", "is not a .zip archive"),
                                              (_zip({"a.png": _png()}), "no images inside class folders")],
                         ids=["not-a-zip", "no-class-folders"])  # the zip's bytes hold the time: not an id
def test_unusable_archives_are_explained(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(SoupvizError, match=message):
        unpack_labelled_zip(data, "x.zip", tmp_path)


def _class_folders(n: int = 3) -> bytes:
    """An archive 'photos/cat/0.png', ... with `n` black images of each of cat and dog."""
    return _zip({f"photos/{name}/{i}.png": _png() for name in ("cat", "dog") for i in range(n)})


def test_a_corruption_spec_is_the_corruption_shift_of_the_split(images) -> None:
    shift = shift_from_spec(("corruption", "fog", 2), images, 3, 1, seed=4)
    expected = corruption_shift(images, "fog", 2, 3, 1, seed=4)
    assert shift.name == "fog 2" and torch.equal(shift.x, expected.x) and torch.equal(shift.heldout, expected.heldout)
    with pytest.raises(SoupvizError, match="set up the data"):
        shift_from_spec(("corruption", "fog", 2), None, 3, 1)


def test_folder_and_upload_specs_read_class_folders_named_after_the_folder_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    uploaded = shift_from_spec(("upload", "photos.zip"), None, 100, 1, upload=_class_folders())
    assert uploaded.name == "photos.zip" and sorted(set(uploaded.y.tolist())) == [3, 5]
    assert len(uploaded.heldout) == 2 and len(uploaded.pool) == 4
    assert any((tmp_path / "cache" / "uploads" / "shifts").iterdir())  # unpacked into the cache by default
    folder = unpack_labelled_zip(_class_folders(), "photos.zip", tmp_path / "mine")
    read = shift_from_spec(("folder", str(folder)), None, 100, 1)
    assert read.name == folder.name and torch.equal(read.y, uploaded.y)
    with pytest.raises(SoupvizError, match="photos.zip was not uploaded"):
        shift_from_spec(("upload", "photos.zip"), None, 100, 1)


def test_an_upload_spec_tells_archives_of_one_name_apart_by_their_bytes() -> None:
    first, second = _class_folders(), b"another archive"
    assert upload_spec("photos.zip", first) == upload_spec("photos.zip", first)
    assert upload_spec("photos.zip", first) != upload_spec("photos.zip", second)
    assert upload_spec("photos.zip", first)[:2] == ("upload", "photos.zip")
