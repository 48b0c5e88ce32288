"""What a dashboard server may read and keep when it is shared: the optional allow-list of family
folders ($SOUPVIZ_ROOTS), and uploaded checkpoints, stored under the cache with a size cap and
removed when they are rejected, replaced by the same session, or left unused for a day. A family
folder's cache key is `checkpoints.importing.folder_stamp`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from soupviz.checkpoints.importing import FAMILY_SUFFIXES, open_family
from soupviz.errors import CheckpointError
from soupviz.files import atomic_write_bytes, cache_dir, paths_shown_within

ROOTS_ENV = "SOUPVIZ_ROOTS"
UPLOAD_SUFFIXES = FAMILY_SUFFIXES  # what `checkpoints.importing.open_family` reads
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
MAX_UPLOAD_BYTES = 2 * 2**30  # one upload's files together; a WRN-28-10 checkpoint is about 150 MB
MAX_UPLOAD_AGE_S = 24 * 3600  # an upload not used for this long is removed by the next one


def allowed_roots() -> list[Path] | None:
    """The folders $SOUPVIZ_ROOTS (os.pathsep-separated) allows family folders under, resolved;
    None when it is unset, so any folder may be opened (a laptop)."""
    text = os.environ.get(ROOTS_ENV, "")
    roots = [Path(part).expanduser().resolve() for part in text.split(os.pathsep) if part.strip()]
    return roots or None


def typed_family_folder(text: str) -> Path:
    """The family folder a user typed, checked against `allowed_roots` (symlinks resolved, so a
    link cannot lead outside).

    Raises:
        CheckpointError: the folder lies outside every allowed root.
    """
    folder = Path(text.strip()).expanduser()
    roots = allowed_roots()
    if roots is not None:
        resolved = folder.resolve()
        if not any(resolved == root or root in resolved.parents for root in roots):
            raise CheckpointError(
                f"This server opens family folders only under {', '.join(map(str, roots))}, "
                f"and {text.strip()} is not among them."
            )
    return folder


def uploads_dir() -> Path:
    """Where uploaded checkpoints are kept: `<cache>/uploads`."""
    return cache_dir() / "uploads"


def upload_folder(files: Sequence[tuple[str, bytes]], root: str | Path | None = None) -> Path:
    """The folder an upload of (name, content) pairs is stored in, named by its content; checks the
    names and the size cap without writing anything.

    Returns:
        `root/<hash>/uploaded` (root: `uploads_dir()`).

    Raises:
        CheckpointError: no files, a file that is not .safetensors or .json, no checkpoint among
            them, or more than `MAX_UPLOAD_BYTES` in all.
    """
    if not files:
        raise CheckpointError("No files were uploaded: upload each checkpoint's .safetensors file and its .json card.")
    digest = hashlib.sha256()
    for name, content in sorted(files):
        if Path(name).suffix not in UPLOAD_SUFFIXES or Path(name).name != name:
            raise CheckpointError(
                f"The uploaded file {name!r} is not a .safetensors, .pt, .pth or .ckpt checkpoint or a .json card."
            )
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    if not any(name.endswith(CHECKPOINT_SUFFIXES) for name, _ in files):
        raise CheckpointError(
            f"The upload ({', '.join(name for name, _ in files)}) holds no checkpoint; upload each "
            ".safetensors checkpoint with its .json card, or .pt/.pth/.ckpt files to import."
        )
    total = sum(len(content) for _, content in files)
    if total > MAX_UPLOAD_BYTES:
        raise CheckpointError(
            f"The upload is {total / 2**30:.1f} GiB, over this server's "
            f"{MAX_UPLOAD_BYTES / 2**30:.0f} GiB limit; upload fewer checkpoints."
        )
    return Path(root or uploads_dir()) / digest.hexdigest()[:16] / "uploaded"


def save_uploads(
    files: Sequence[tuple[str, bytes]],
    root: str | Path | None = None,
    replaces: str | Path | None = None,
    check: Callable[[Path], object] = open_family,
) -> Path:
    """Store uploaded checkpoint files (name, content) and check that they load as a family.

    A rejected upload is removed again, and its error names the user's files rather than where
    the server keeps them (the check runs inside `files.paths_shown_within`). An accepted one
    removes `replaces` (the session's previous upload) and any upload unused for `MAX_UPLOAD_AGE_S`.

    Args:
        root: the uploads folder; default `uploads_dir()`.
        replaces: the folder this session's previous upload was stored in, if any.
        check: loads the stored folder, raising `CheckpointError` when it is no family (the
            dashboard passes its cached loader, so the family is read once).

    Returns:
        The folder holding the files (see `upload_folder`).

    Raises:
        CheckpointError: one sentence naming the uploaded file and what is wrong with it.
    """
    folder = upload_folder(files, root)
    fresh = not folder.is_dir()
    for name, content in files:
        if fresh or not (folder / name).is_file():
            atomic_write_bytes(content, folder / name)
    try:
        with paths_shown_within(folder, "the upload"):
            check(folder)
    except CheckpointError:
        if fresh:
            remove_upload(folder)
        raise
    os.utime(folder.parent)  # last used now: keeps it from `prune_uploads`
    if replaces is not None and Path(replaces) != folder:
        remove_upload(replaces)
    prune_uploads(folder.parent.parent, keep=folder)
    return folder


def remove_upload(folder: str | Path) -> None:
    """Delete an upload folder made by `save_uploads` (its `<hash>` parent); nothing else."""
    folder = Path(folder)
    if folder.name == "uploaded" and folder.parent.is_dir():
        shutil.rmtree(folder.parent, ignore_errors=True)


def prune_uploads(
    root: str | Path | None = None, keep: Path | None = None, max_age_s: float = MAX_UPLOAD_AGE_S
) -> None:
    """Remove uploads under `root` not used for `max_age_s` seconds, except `keep`."""
    root = Path(root or uploads_dir())
    if not root.is_dir():
        return
    now = time.time()
    for entry in root.iterdir():
        if (entry / "uploaded").is_dir() and (keep is None or entry != keep.parent):
            if now - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry, ignore_errors=True)

