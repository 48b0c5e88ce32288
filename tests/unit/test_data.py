"""Data sources, seeded subsets, the decoded-image cache and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from soupviz.data import (
    ImageSet,
    augment,
    image_folder_stamp,
    load_image_folder,
    load_split,
    resolve_source,
    subset_indices,
)
from soupviz.errors import DataError


def _write_folder(root: Path, per_class: int = 3, size: int = 32) -> Path:
    for label, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            array = np.full((size, size, 3), 40 * label + i, dtype=np.uint8)
            Image.fromarray(array).save(root / name / f"{i}.png")
    return root


def test_image_folder_loads_labels_in_sorted_class_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    images = load_image_folder(_write_folder(tmp_path / "split"))
    assert images.classes == ("cat", "dog") and images.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert images.images.dtype == torch.uint8 and images.images.shape == (6, 3, 32, 32)
    assert images.images[4, 0, 0, 0] == 41
    floats = images.floats()
    assert floats.min() >= 0 and floats.max() <= 1


def test_second_load_reads_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    folder = _write_folder(tmp_path / "split")
    first = load_image_folder(folder)
    assert len(list((tmp_path / "cache" / "data").iterdir())) == 1
    second = load_image_folder(folder)
    assert torch.equal(first.images, second.images)


def test_a_folder_rewritten_in_place_is_decoded_afresh(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    folder = _write_folder(tmp_path / "split")
    stamp, first = image_folder_stamp(folder), load_image_folder(folder)
    for path in sorted(folder.rglob("*.png")):  # the same names, count and class folders, other pixels
        Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path)
    assert image_folder_stamp(folder) != stamp
    again = load_image_folder(folder)
    assert int(first.images.sum()) > 0 and int(again.images.sum()) == 0


def test_other_sizes_are_resized(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    images = load_image_folder(_write_folder(tmp_path / "split", size=48))
    assert images.images.shape[-2:] == (32, 32)


def test_subsets_are_seeded_and_nested() -> None:
    assert torch.equal(subset_indices(100, 10, 3), subset_indices(100, 10, 3))
    assert torch.equal(subset_indices(100, 20, 3)[:10], subset_indices(100, 10, 3))
    assert not torch.equal(subset_indices(100, 10, 3), subset_indices(100, 10, 4))


def test_per_class_takes_k_of_each(synthetic_images) -> None:
    chosen = synthetic_images.per_class(2, seed=1)
    assert sorted(chosen.labels.tolist()) == sorted(list(range(10)) * 2)


def test_source_setting_and_clear_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOUPVIZ_DATA", str(tmp_path))
    assert resolve_source(None) == str(tmp_path)
    assert resolve_source("torchvision:/x") == "torchvision:/x"
    with pytest.raises(DataError, match="no 'test/' subfolder"):
        load_split(None, "test")
    with pytest.raises(DataError, match="Unknown split"):
        load_split(None, "valid")
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing")


def test_offline_torchvision_download_fails_with_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match="could not download"):
        load_split(f"torchvision:{tmp_path}", "test")


def test_augment_keeps_shape_and_values_and_is_seeded() -> None:
    x = torch.rand(4, 3, 8, 8)
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert set(a.unique().tolist()) <= set(x.unique().tolist()) | {0.0}


def test_the_digest_follows_the_content_not_the_source() -> None:
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    one = ImageSet(images, labels, ("a", "b", "c", "d"), "folder one")
    assert one.digest() == ImageSet(images.clone(), labels.clone(), one.classes, "elsewhere").digest()
    assert len(one.digest()) == 20
    assert one.digest() != ImageSet(images.flip(0), labels, one.classes, one.source).digest()
    assert one.digest() != ImageSet(images, labels.flip(0), one.classes, one.source).digest()
