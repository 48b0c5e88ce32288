"""Reading foreign checkpoint formats: RobustBench zoo state dicts, MadryLab `robustness`
checkpoints, plain state dicts (DataParallel or `torch.compile` prefixes included) and card-less
safetensors. Files are read without unpickling code; the format is detected, wrappers and key
prefixes are removed, a stored input normalisation is found, and the registered architecture whose
keys and shapes the weights fit is matched.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes

from soupviz.checkpoints.state_layout import LayoutDifference, layout_difference
from soupviz.checkpoints.torch_files import check_file, read_torch_file
from soupviz.errors import CheckpointError
from soupviz.files import shown_path
from soupviz.models.registry import available_models, create_model

FORMATS = ("auto", "robustbench", "robustness", "plain")
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network")
_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")
_NORM_KEYS = (
    ("mean", "std"),
    ("mu", "sigma"),
    ("normalize.mean", "normalize.std"),
    ("norm.mean", "norm.std"),
    ("normalizer.new_mean", "normalizer.new_std"),
)
# RobustBench's WideResNet(sub_block1=True) holds a second first block that its forward never calls.
_UNUSED = "sub_block1."


@dataclass
class ForeignCheckpoint:
    """A foreign file's weights under registered key names, with what the file says about itself.

    `mean`/`std` are the input normalisation stored in the file (None when it has none);
    `sha256` hashes the file's bytes; `dropped` counts keys of modules the original class holds but
    never runs (RobustBench's `sub_block1`), left out of `state_dict`.
    """

    path: Path
    format: str
    state_dict: dict[str, torch.Tensor]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    sha256: str
    dropped: int = 0


def read_foreign(path: str | Path, fmt: str = "auto", wrapper: str | None = None) -> ForeignCheckpoint:
    """Read a foreign checkpoint and map its keys, without unpickling code.

    Args:
        fmt: 'robustbench' (a state dict, maybe under 'state_dict', maybe with 'module.'),
            'robustness' (a dict whose 'model' holds 'module.model.*', 'module.attacker.model.*'
            and 'module.normalizer.new_mean/new_std'), 'plain' (any state dict; the wrappers
            'state_dict', 'model_state_dict', 'model', 'net' and the prefixes 'module.',
            '_orig_mod.', 'model.', 'net.' are removed) or 'auto' (detected).
        wrapper: a key to read the weights from first (RobustBench's 'last' of files holding 'last'
            and 'best').
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise CheckpointError(f"Unknown checkpoint format {fmt!r}: use one of {', '.join(FORMATS)}.")
    blob = _load(path)
    if wrapper is not None:
        if not isinstance(blob, dict) or not isinstance(blob.get(wrapper), dict):
            raise CheckpointError(f"The checkpoint {shown_path(path)} has no {wrapper!r} state dict, as its zoo "
                                  "entry expects.")
        blob = blob[wrapper]
    while isinstance(blob, dict) and len(inner := [blob[k] for k in _WRAPPERS if isinstance(blob.get(k), dict)]) == 1:
        blob = inner[0]
    if isinstance(blob, dict) and len(several := [k for k, v in blob.items() if isinstance(v, dict)]) > 1:
        raise CheckpointError(
            f"The checkpoint {shown_path(path)} holds several state dicts "
            f"({', '.join(map(repr, several[:3]))}): name its "
            "RobustBench entry with --zoo, or save the one you mean on its own."
        )
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise CheckpointError(f"The checkpoint {shown_path(path)} does not hold a state dict of tensors.")
    detected = "robustness" if _is_robustness(blob) else "robustbench" if _matching(_strip(blob)[0]) else "plain"
    fmt = detected if fmt == "auto" else fmt
    if fmt == "robustness":
        prefix = "module." if any(key.startswith("module.model.") for key in blob) else ""
        model = {key.removeprefix(prefix + "model."): v for key, v in blob.items() if key.startswith(prefix + "model.")}
        if not model:
            raise CheckpointError(f"The checkpoint {shown_path(path)} has no '{prefix}model.' keys: it is not a "
                                  "robustness file.")
        norm = tuple(blob.get(f"{prefix}normalizer.new_{stat}") for stat in ("mean", "std"))
        state, mean, std = model, *(_floats(t) if t is not None else None for t in norm)
    else:
        state, (mean, std) = _strip(blob)
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"The checkpoint {shown_path(path)} has NaN or Inf values in {key!r}.")
    state = {key: t.float() if t.is_floating_point() else t for key, t in state.items()}
    unused = [key for key in state if key.startswith(_UNUSED)] if any(k.startswith("block1.") for k in state) else []
    state = {key: t for key, t in state.items() if key not in unused}
    return ForeignCheckpoint(path, fmt, state, mean, std, _file_hash(path), len(unused))


def _load(path: Path) -> object:
    if path.suffix == ".safetensors":
        check_file(path)
        try:
            return load_safetensors_bytes(path.read_bytes())
        except (SafetensorError, ValueError, OSError):
            raise CheckpointError(f"The safetensors file {shown_path(path)} is truncated or damaged: copy it "
                                  "again.") from None
    return read_torch_file(path)


def _is_robustness(blob: dict[str, torch.Tensor]) -> bool:
    return any(re.match(r"(module\.)?(attacker\.model|normalizer)\.", key) for key in blob)


def _strip(blob: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], tuple]:
    """Keys without shared prefixes, and the (mean, std) found among them (None, None if absent)."""
    state, mean, std = dict(blob), None, None
    changed = True
    while changed:
        changed = False
        for names in _NORM_KEYS:
            if all(name in state and state[name].numel() == 3 for name in names):
                mean, std = (_floats(state.pop(name)) for name in names)
                changed = True
        for prefix in _PREFIXES:
            if state and all(key.startswith(prefix) for key in state):
                state = {key.removeprefix(prefix): value for key, value in state.items()}
                changed = True
    return state, (mean, std)


def _floats(tensor: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in tensor.reshape(-1))


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _layout(arch: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a registered architecture, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = create_model(arch, num_classes)
    return {key: tuple(t.shape) for key, t in model.state_dict().items()}


def _classes(state: dict[str, torch.Tensor], arch: str) -> int:
    head = [key for key, shape in _layout(arch, 10).items() if len(shape) == 2][-1]
    return int(state[head].shape[0]) if head in state and state[head].dim() == 2 else 10


def fill_counters(state: dict[str, torch.Tensor], arch: str, num_classes: int) -> dict[str, torch.Tensor]:
    """`state` with the BatchNorm `num_batches_tracked` counters of `arch` that older checkpoints
    lack, as zeros (never used in eval)."""
    layout = _layout(arch, num_classes)
    missing = {
        k: torch.zeros((), dtype=torch.long)
        for k in layout
        if k.endswith("num_batches_tracked")
        and k not in state
        and k.replace("num_batches_tracked", "running_mean") in state
    }
    return {**state, **missing}


def _mismatch(state: dict[str, torch.Tensor], arch: str) -> LayoutDifference:
    classes = _classes(state, arch)
    return layout_difference(_layout(arch, classes), fill_counters(state, arch, classes))


def _matching(state: dict[str, torch.Tensor]) -> list[str]:
    return [arch for arch in available_models() if not _mismatch(state, arch)]


def match_architecture(foreign: ForeignCheckpoint, arch: str | None = None) -> tuple[str, int]:
    """The registered architecture (and class count) whose keys and shapes the weights fit.

    Raises:
        CheckpointError: `arch` does not fit, or (with no `arch`) no registered one does; the
            sentence names the closest architecture and its first missing or unexpected keys.
    """
    state = foreign.state_dict
    candidates = [arch] if arch else available_models()
    if arch and arch not in available_models():
        raise CheckpointError(f"Unknown architecture {arch!r}: choose one of {', '.join(available_models())}.")
    scored = sorted((_mismatch(state, name).size, name) for name in candidates)
    score, best = scored[0]
    if score == 0:
        return best, _classes(state, best)
    where = f"does not fit {best}" if arch else f"matches no registered architecture (closest: {best})"
    raise CheckpointError(f"The checkpoint {shown_path(foreign.path)} {where}: {_mismatch(state, best).detail()}.")
