"""Reading `.pt`/`.pth`/`.ckpt` files: the one place soupviz calls `torch.load`, always with
`weights_only=True` (a file that pickles code is refused, never run). Every failure is one sentence
in the user's terms: a folder, an empty file, a raw Python pickle, a pre-1.6 (legacy) torch file, a
cut zip archive, a file that pickles code; torch's own text and warnings are not shown.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
from pathlib import Path

import numpy as np
import torch

from soupviz.errors import CheckpointError
from soupviz.files import shown_path

# numpy scalars (an epoch's accuracy saved beside the weights) are data, not code.
_NUMPY_GLOBALS = [
    np.dtype,
    np._core.multiarray.scalar,
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    *(getattr(np.dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType")),
]
_ZIP = b"PK\x03\x04"
_LEGACY = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # torch's legacy magic number, as its pickle stores it
_SAFE_PREFIXES = ("torch.", "collections.OrderedDict", "numpy.", "builtins.set", "_codecs.encode")
RESAVE = "re-save it with torch.save(model.state_dict(), path) where you trust it"


def file_kind(path: Path) -> str:
    """'zip' (torch.save since 1.6), 'legacy' (torch.save before 1.6), 'pickle' (pickle.dump),
    'empty' or 'other', from the file's first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(32)
    if not head:
        return "empty"
    if head.startswith(_ZIP):
        return "zip"
    pickled = len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5
    if pickled and _LEGACY in head:
        return "legacy"
    return "pickle" if pickled else "other"


def check_file(path: Path, what: str = "checkpoint") -> None:
    """Raise a CheckpointError when `path` is missing or a folder."""
    if path.is_dir():
        raise CheckpointError(f"The {what} {shown_path(path)} is a folder, not a file: give the file itself.")
    if not path.is_file():
        raise CheckpointError(f"The {what} {shown_path(path)} does not exist.")


def read_torch_file(path: str | Path) -> object:
    """What `torch.save` wrote to `path`, loaded with `weights_only=True` on the CPU.

    Raises:
        CheckpointError: one sentence naming the file and what is wrong with it.
    """
    path = Path(path)
    check_file(path)
    kind = file_kind(path)
    if kind == "empty":
        raise CheckpointError(f"The checkpoint {shown_path(path)} is empty (0 bytes): copy it again.")
    if kind == "pickle":
        unsafe = _unsafe_globals(path, kind)
        code = f" naming Python objects beyond tensors ({', '.join(unsafe[:3])})" if unsafe else ""
        raise CheckpointError(
            f"The checkpoint {shown_path(path)} is a raw Python pickle (pickle.dump){code}, not a torch.save "
            "file; soupviz "
            f"does not unpickle such files: {RESAVE}."
        )
    if kind == "other":
        raise CheckpointError(
            f"The file {shown_path(path)} is not a PyTorch checkpoint (neither torch.save's zip format nor its "
            "legacy format)."
        )
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_NUMPY_GLOBALS):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if kind == "legacy" and _protocol(path) != 2:
            raise CheckpointError(
                f"The checkpoint {shown_path(path)} is in torch's legacy (pre-1.6) format with pickle protocol "
                f"{_protocol(path)}, "
                f"which torch's safe loader cannot read: {RESAVE} (torch.save's default zip format)."
            ) from None
        unsafe = _unsafe_globals(path, kind)
        if unsafe:
            raise CheckpointError(
                f"The checkpoint {shown_path(path)} pickles Python objects beyond tensors "
                f"({', '.join(unsafe[:3])}), which "
                f"soupviz never runs: {RESAVE}."
            ) from None
        if kind == "legacy":
            raise CheckpointError(
                f"The checkpoint {shown_path(path)} is in torch's legacy (pre-1.6) format and is truncated or damaged: "
                "copy it again."
            ) from None
        if isinstance(error, pickle.UnpicklingError):
            raise CheckpointError(
                f"The checkpoint {shown_path(path)} holds objects soupviz does not read (only tensors, numbers, "
                "strings and "
                f"dicts or lists of them): {RESAVE}."
            ) from None
        raise CheckpointError(
            f"The checkpoint {shown_path(path)} is truncated or damaged (its zip archive cannot be read): copy "
            "it again."
        ) from None


def _protocol(path: Path) -> int:
    with open(path, "rb") as handle:
        return handle.read(2)[1]


def _pickle_globals(stream: io.BytesIO) -> list[str]:
    """'module.name' of each global one pickle in `stream` names (GLOBAL, or STACK_GLOBAL with the
    two strings before it, followed through the memo)."""
    found: list[str] = []
    recent: list[str | None] = []
    memo: dict[int, str | None] = {}
    for opcode, arg, _position in pickletools.genops(stream):
        name = opcode.name
        if name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = recent[-1] if recent else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(arg))
        elif name == "GLOBAL":
            found.append(str(arg).replace(" ", "."))
            recent.append(None)
        elif name == "STACK_GLOBAL":
            if len(recent) >= 2 and isinstance(recent[-2], str) and isinstance(recent[-1], str):
                found.append(f"{recent[-2]}.{recent[-1]}")
            recent.append(None)
        else:
            recent.append(arg if isinstance(arg, str) else None)
    return found


def _unsafe_globals(path: Path, kind: str) -> list[str]:
    """Python callables the file's pickle names beyond torch's, numpy's and OrderedDict ([] if
    none, or if the pickle cannot even be scanned)."""
    if kind == "zip":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # a cut archive: nothing to scan
            return []
    found: list[str] = []
    with open(path, "rb") as handle:
        stream = io.BytesIO(handle.read())
    try:
        for _ in range(4):  # magic number, protocol, system info, the object itself
            found += _pickle_globals(stream)
    except Exception:  # cut or damaged: scan what was read
        pass
    return [name for name in dict.fromkeys(found) if not name.startswith(_SAFE_PREFIXES)]
