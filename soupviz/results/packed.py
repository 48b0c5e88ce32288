"""A family's shipped store, xz-packed in its folder (32 MB of SQLite is 1.7 MB of xz), unpacked
once per content into the cache folder. Needs no torch, so a fresh server can unpack it on a
second core while its first page still imports the heavy libraries (`unpack_in_background`).
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import threading
from pathlib import Path

from soupviz.files import atomic_write_bytes, cache_dir

SHIPPED_STORE = "results.sqlite"
PACKED_STORE = "results.sqlite.xz"
_UNPACKING = threading.Lock()  # one unpacking at a time in a process: a second caller waits, then finds the file


@functools.lru_cache(maxsize=8)
def unpacked_store(packed: str, size: int, modified: int) -> Path:
    """The xz-packed store `packed` unpacked into the cache folder, once per content (a file
    named by its digest, written atomically, so concurrent sessions and servers share it)."""
    data = Path(packed).read_bytes()
    target = cache_dir() / "shipped" / f"results-{hashlib.sha256(data).hexdigest()[:16]}.sqlite"
    with _UNPACKING:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(lzma.decompress(data), target)
    return target


def packed_store(folder: Path) -> Path | None:
    """The packed store a family folder ships where it has no unpacked `results.sqlite`, else None."""
    packed = Path(folder) / PACKED_STORE
    return packed if packed.is_file() and not (Path(folder) / SHIPPED_STORE).is_file() else None


def unpack_in_background(folder: Path | None) -> None:
    """Start unpacking the store `folder` ships (`unpacked_store`) on a daemon thread and return
    at once: xz decompression releases the GIL, so it runs beside the imports of a server's first
    page, and the page's own `unpacked_store` call waits for it instead of unpacking again."""
    packed = packed_store(folder) if folder is not None and Path(folder).is_dir() else None
    if packed is not None:
        stat = packed.stat()
        threading.Thread(target=unpacked_store, args=(str(packed), stat.st_size, stat.st_mtime_ns),
                         name="soupviz-unpack-store", daemon=True).start()
