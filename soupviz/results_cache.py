"""On-disk cache of evaluation records, one JSON file per (soup, metric, images, seed, code) key.

Keys include `code_fingerprint()`, a hash of the code that computes a record, so editing an
attack or a corruption misses the old entries instead of serving their numbers. Writes are
atomic (temporary file, then rename), so a killed run leaves either no entry or a whole one;
an unreadable entry is treated as missing and recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from soupviz.storage import atomic_write_json, cache_dir

FINGERPRINTED_SOURCES = (
    "attacks",
    "corruptions.py",
    "image_filters.py",
    "models.py",
    "soup.py",
    "evaluate.py",
    "metrics.py",
    "ensembles.py",
)
FINGERPRINTED_PACKAGES = ("torch", "pyautoattack")


@functools.cache
def code_fingerprint() -> str:
    """16 hex digits of SHA-256 over the soupviz sources that produce a record (`FINGERPRINTED_SOURCES`,
    folders read recursively, paths and bytes) and the versions of `FINGERPRINTED_PACKAGES`.
    Computed once per process: a source edited while a process runs is seen by the next one."""
    package = Path(__file__).parent
    files = []
    for name in FINGERPRINTED_SOURCES:
        path = package / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in FINGERPRINTED_PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{name}=={version}\0".encode())
    return digest.hexdigest()[:16]


def cache_key(**parts: Any) -> str:
    """SHA-256 of the JSON of `parts` (sorted keys); callers include the code fingerprint."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """Records stored as `<folder>/<key[:2]>/<key>.json`; default folder under the soupviz cache."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder else cache_dir() / "results"

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored dict for `key`, or None when absent or unreadable."""
        try:
            return json.loads(self.path(key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        atomic_write_json(value, self.path(key))


def packbits(mask: torch.Tensor) -> str:
    """A boolean vector as a hex string (8 images a byte), to store per-image results compactly."""
    bits = mask.to(torch.uint8).cpu()
    padded = torch.nn.functional.pad(bits, (0, (-len(bits)) % 8)).view(-1, 8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
    return bytes((padded * weights).sum(dim=1).to(torch.uint8).tolist()).hex()


def unpackbits(text: str, n: int) -> torch.Tensor:
    """Inverse of `packbits` for a vector of length `n`."""
    data = torch.tensor(list(bytes.fromhex(text)), dtype=torch.uint8)
    bits = (data[:, None] >> torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    return bits.flatten()[:n].bool()
