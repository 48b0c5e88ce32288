"""Where soupviz keeps files outside the repository, and how it writes them atomically.

A write goes to a temporary file in the same folder and is renamed into place, so a killed
process never leaves a half-written cache entry or checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "SOUPVIZ_CACHE"


def cache_dir() -> Path:
    """The soupviz cache folder: $SOUPVIZ_CACHE, else ~/.cache/soupviz."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "soupviz"
    return Path(root).expanduser()


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    atomic_write_bytes((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode(), path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` to `path` atomically (tensors and plain containers only)."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)
