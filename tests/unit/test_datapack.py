"""The data pack: the image files' bytes in parts that travel separately, written back bit for bit,
with the decoded pixels checked against the manifest and a missing or changed part refused."""

from __future__ import annotations

import shutil

import pytest
import torch

from soupviz.data import load_split
from soupviz.datapack import MANIFEST, pixel_checksums, read_manifest, unpack, verify_decoded, write_pack
from soupviz.errors import DataError


def test_a_pack_in_several_parts_unpacks_to_the_same_files_and_pixels(data_folder, tmp_path):
    manifest = write_pack(data_folder, tmp_path / "pack", part_bytes=8_000)
    assert len(manifest["parts"]) > 2
    assert sum(p["files"] for p in manifest["parts"]) == 40
    assert manifest["splits"]["train"]["images"] == 20 and manifest["splits"]["test"]["images"] == 20
    elsewhere = tmp_path / "sent-first"
    elsewhere.mkdir()
    shutil.move(tmp_path / "pack" / "part-00.npz", elsewhere / "part-00.npz")  # a part sent in an earlier run
    dest = unpack(tmp_path / "pack" / MANIFEST, tmp_path / "unpacked", search=(elsewhere,))
    for path in sorted(data_folder.rglob("*.png")):
        assert (dest / path.relative_to(data_folder)).read_bytes() == path.read_bytes()
    assert verify_decoded(dest, tmp_path / "pack" / MANIFEST) == {
        split: {"images": 20, "identical": True, "differing_images": 0} for split in ("train", "test")}
    original, copy = load_split(data_folder, "test"), load_split(dest, "test")
    assert torch.equal(original.images, copy.images) and torch.equal(original.labels, copy.labels)


def test_a_decoder_that_changes_pixels_is_counted_image_by_image(data_folder, tmp_path):
    write_pack(data_folder, tmp_path / "pack")
    manifest = read_manifest(tmp_path / "pack" / MANIFEST)
    images = load_split(data_folder, "test").images.clone()
    images[3, 0, 0, 0] ^= 1
    changed = pixel_checksums(images)
    expected = manifest["splits"]["test"]
    assert changed["pixels_sha256"] != expected["pixels_sha256"]
    differ = [changed["crc32"][i:i + 8] != expected["crc32"][i:i + 8] for i in range(0, 160, 8)]
    assert differ == [i == 3 for i in range(20)]


def test_a_missing_or_changed_part_is_refused_by_name(data_folder, tmp_path):
    write_pack(data_folder, tmp_path / "pack", part_bytes=8_000)
    part = tmp_path / "pack" / "part-01.npz"
    payload = part.read_bytes()
    part.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))
    with pytest.raises(DataError, match="part-01.npz does not match its SHA-256"):
        unpack(tmp_path / "pack" / MANIFEST, tmp_path / "out")
    part.unlink()
    with pytest.raises(DataError, match="part-01.npz is in none of"):
        unpack(tmp_path / "pack" / MANIFEST, tmp_path / "out")
