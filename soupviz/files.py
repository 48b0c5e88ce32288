"""Where soupviz keeps files outside the repository, how it writes them atomically, the stamp
that keys a cache entry on the files it was made from, and how an error message names a path
(`shown_path`: an upload's files by the names the user gave them).

A write goes to a temporary file in the same folder and is renamed into place, so a killed
process never leaves a half-written cache entry or checkpoint; files are written readable by
everyone (0644, less the umask), as any other tool writes them, so colleagues can read exports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

CACHE_ENV = "SOUPVIZ_CACHE"
_SHOWN_WITHIN: ContextVar[tuple[Path, str] | None] = ContextVar("shown_within", default=None)


def cache_dir() -> Path:
    """The soupviz cache folder: $SOUPVIZ_CACHE, else ~/.cache/soupviz."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "soupviz"
    return Path(root).expanduser()


def files_stamp(files: Iterable[str | os.PathLike]) -> str:
    """16 hex digits over each file's path, size and modification time (ns): a cache key that
    changes when a file is added, removed, replaced or rewritten in place (any write moves its
    modification time), at the cost of one `stat` per file, cheap enough for every open."""
    digest = hashlib.sha256()
    for path in files:
        stat = os.stat(path)
        digest.update(f"{os.fspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def paths_shown_within(folder: str | os.PathLike, name: str) -> Iterator[None]:
    """While inside, `shown_path` names a file under `folder` by its path inside it and `folder`
    itself as `name`, so errors raised there name what the user gave ('nominal.json', 'the upload')
    rather than where a server keeps it. Per thread (a context variable)."""
    token = _SHOWN_WITHIN.set((Path(folder), name))
    try:
        yield
    finally:
        _SHOWN_WITHIN.reset(token)


def shown_path(path: str | os.PathLike) -> str:
    """`path` as an error message names it: as it is, or relative to `paths_shown_within`'s folder."""
    path, within = Path(path), _SHOWN_WITHIN.get()
    if within is None or not path.is_relative_to(within[0]):
        return str(path)
    return within[1] if path == within[0] else path.relative_to(within[0]).as_posix()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one, with the
    permissions a plain write would give it (0644 under the usual umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
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

    import torch  # here: the ground floor's other helpers load without torch (a server's first page)

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)
