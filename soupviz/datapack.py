"""A compact, faithful pack of an ImageFolder dataset, for a machine that cannot read the folder.

The pack holds the image files' own bytes (CIFAR-10's JPEGs: 55 MB for train and test, where the
decoded pixels are 184 MB and xz keeps 77% of them: the test split's 30.7 MB became 23.7 MB, its
JPEGs are 9.2 MB), concatenated into parts
of at most `part_bytes`, so parts can travel separately; `manifest.json` lists each part's SHA-256
and the checksums of the pixels `data.load_image_folder` decodes here. The receiver writes the
same files back (`unpack`) and checks that its decoder gives the same pixels (`verify_decoded`).
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soupviz.data import IMAGE_SUFFIXES, load_image_folder
from soupviz.errors import DataError
from soupviz.files import atomic_write_bytes, atomic_write_json

MANIFEST = "manifest.json"
PACK_FORMAT = 1


def image_files(root: Path, split: str) -> list[Path]:
    """The image files of `root/split` in the order `load_image_folder` reads them."""
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"The data folder {root} has no '{split}/' subfolder to pack.")
    return [path for name in sorted(p.name for p in folder.iterdir() if p.is_dir())
            for path in sorted((folder / name).iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]


def pixel_checksums(images: torch.Tensor) -> dict[str, Any]:
    """SHA-256 of a uint8 (N, 3, H, W) tensor's bytes and each image's CRC-32 (8 hex digits each)."""
    array = np.ascontiguousarray(images.numpy())
    crcs = "".join(f"{zlib.crc32(image.tobytes()):08x}" for image in array)
    return {"images": len(array), "pixels_sha256": hashlib.sha256(array.tobytes()).hexdigest(), "crc32": crcs}


def write_pack(root: str | Path, out: str | Path, part_bytes: int = 34_000_000,
               splits: tuple[str, ...] = ("train", "test")) -> dict[str, Any]:
    """Pack the `splits` of the ImageFolder `root` into `out/part-NN.npz` and `out/manifest.json`.

    Each part is an uncompressed npz (JPEG bytes do not compress) of `paths` (newline-separated,
    relative to `root`), `offsets` (N + 1) and `blob` (the files' bytes end to end), at most
    `part_bytes` of file bytes. Returns the manifest.
    """
    root, out = Path(root).expanduser(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, Any]] = []
    batch: list[tuple[str, bytes]] = []
    size = 0

    def flush() -> None:
        if batch:
            parts.append(_write_part(out / f"part-{len(parts):02d}.npz", batch))
            batch.clear()

    checks = {}
    for split in splits:
        for path in image_files(root, split):
            data = path.read_bytes()
            if batch and size + len(data) > part_bytes:
                flush()
                size = 0
            batch.append((path.relative_to(root).as_posix(), data))
            size += len(data)
        checks[split] = pixel_checksums(load_image_folder(root / split).images)
    flush()
    manifest = {"format": PACK_FORMAT, "source": str(root), "parts": parts, "splits": checks}
    atomic_write_json(manifest, out / MANIFEST)
    return manifest


def _write_part(path: Path, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    sizes = np.array([0] + [len(data) for _, data in files], dtype=np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, paths=np.frombuffer("\n".join(name for name, _ in files).encode(), dtype=np.uint8),
             offsets=np.cumsum(sizes), blob=np.frombuffer(b"".join(data for _, data in files), dtype=np.uint8))
    payload = buffer.getvalue()
    atomic_write_bytes(payload, path)
    return {"file": path.name, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
            "files": len(files)}


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest at `path`, with one `DataError` sentence if it is missing or unreadable."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"The pack manifest {path} cannot be read ({error}): make the pack again.") from error
    if manifest.get("format") != PACK_FORMAT:
        raise DataError(f"The pack manifest {path} is of format {manifest.get('format')!r}, not {PACK_FORMAT}.")
    return manifest


def unpack(manifest_path: str | Path, dest: str | Path, search: tuple[str | Path, ...] = ()) -> Path:
    """Write every file of the pack back under `dest` (an ImageFolder root) and return `dest`.

    Parts are looked for beside the manifest, then in each folder of `search`; each must match its
    SHA-256. A missing or changed part is one `DataError` naming it.
    """
    manifest_path, dest = Path(manifest_path), Path(dest)
    manifest = read_manifest(manifest_path)
    folders = [manifest_path.parent, *map(Path, search)]
    for part in manifest["parts"]:
        found = next((f / part["file"] for f in folders if (f / part["file"]).is_file()), None)
        if found is None:
            raise DataError(f"The pack part {part['file']} is in none of {', '.join(map(str, folders))}: "
                            "send it (see bench/gpu_job.py) before unpacking.")
        payload = found.read_bytes()
        if hashlib.sha256(payload).hexdigest() != part["sha256"]:
            raise DataError(f"The pack part {found} does not match its SHA-256 in the manifest: send it again.")
        with np.load(io.BytesIO(payload)) as arrays:
            names = arrays["paths"].tobytes().decode().split("\n")
            offsets, blob = arrays["offsets"], arrays["blob"]
        for index, name in enumerate(names):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob[offsets[index]:offsets[index + 1]].tobytes())
    return dest


def verify_decoded(root: str | Path, manifest_path: str | Path) -> dict[str, dict[str, Any]]:
    """Decode each split of `root` with `load_image_folder` and compare with the manifest's pixels.

    Returns:
        Per split: `images`, `identical` (the whole tensor's SHA-256 matches) and
        `differing_images` (how many images' CRC-32 differ: what a different JPEG decoder changed).
    """
    manifest = read_manifest(manifest_path)
    report = {}
    for split, expected in manifest["splits"].items():
        found = pixel_checksums(load_image_folder(Path(root) / split).images)
        crcs = [found["crc32"][i:i + 8] != expected["crc32"][i:i + 8] for i in range(0, len(expected["crc32"]), 8)]
        report[split] = {"images": found["images"], "identical": found["pixels_sha256"] == expected["pixels_sha256"],
                         "differing_images": int(sum(crcs)) if found["images"] == expected["images"] else None}
    return report
