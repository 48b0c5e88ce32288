"""Importing checkpoints from elsewhere: RobustBench zoo state dicts, MadryLab `robustness`
checkpoints, plain state dicts (DataParallel or `torch.compile` prefixes included) and carded-less
safetensors. Files are read without unpickling code; keys and input normalisation are mapped onto
a registered architecture, the model is run once, and our safetensors and card are written.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes

from soupviz.cards import Card
from soupviz.checkpoints import SoupFamily, check_state_dict, load_family, save_checkpoint
from soupviz.data import ImageSet
from soupviz.errors import CheckpointError
from soupviz.models import CIFAR10_MEAN, CIFAR10_STD, available_models, create_model
from soupviz.storage import cache_dir
from soupviz.threats import DEFAULT_BUDGETS, THREATS

FORMATS = ("auto", "robustbench", "robustness", "plain")
FOREIGN_SUFFIXES = (".pt", ".pth", ".ckpt")
IMPORT_THREATS = ("unknown", "none", *THREATS)
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
# RobustBench's DeepMind-layout models normalise inside the network with CIFAR-10 statistics that
# are not in their state dict; its other CIFAR-10 models take raw pixels in [0, 1].
ZOO_NORMALISATION = {arch: (CIFAR10_MEAN, CIFAR10_STD) for arch in ("dm_wide_resnet28_10", "wide_resnet70_16")}
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network")
_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")
_NORM_KEYS = (
    ("mean", "std"),
    ("mu", "sigma"),
    ("normalize.mean", "normalize.std"),
    ("norm.mean", "norm.std"),
    ("normalizer.new_mean", "normalizer.new_std"),
)
# numpy scalars (an epoch's accuracy saved beside the weights) are data, not code.
_NUMPY_GLOBALS = [
    np.dtype,
    np._core.multiarray.scalar,
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    *(getattr(np.dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType")),
]


@dataclass
class ForeignCheckpoint:
    """A foreign file's weights under registered key names, with what the file says about itself.

    `mean`/`std` are the input normalisation stored in the file (None when it has none);
    `sha256` hashes the file's bytes.
    """

    path: Path
    format: str
    state_dict: dict[str, torch.Tensor]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    sha256: str


def read_foreign(path: str | Path, fmt: str = "auto") -> ForeignCheckpoint:
    """Read a foreign checkpoint and map its keys, without unpickling code.

    Args:
        fmt: 'robustbench' (a state dict, maybe under 'state_dict', maybe with 'module.'),
            'robustness' (a dict whose 'model' holds 'module.model.*', 'module.attacker.model.*'
            and 'module.normalizer.new_mean/new_std'), 'plain' (any state dict; the wrappers
            'state_dict', 'model_state_dict', 'model', 'net' and the prefixes 'module.',
            '_orig_mod.', 'model.', 'net.' are removed) or 'auto' (detected).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise CheckpointError(f"Unknown checkpoint format {fmt!r}: use one of {', '.join(FORMATS)}.")
    if not path.is_file():
        raise CheckpointError(f"The checkpoint {path} does not exist.")
    blob = _load(path)
    while isinstance(blob, dict) and len(inner := [blob[k] for k in _WRAPPERS if isinstance(blob.get(k), dict)]) == 1:
        blob = inner[0]
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise CheckpointError(f"The checkpoint {path} does not hold a state dict of tensors.")
    detected = "robustness" if _is_robustness(blob) else "robustbench" if _matching(_strip(blob)[0]) else "plain"
    fmt = detected if fmt == "auto" else fmt
    if fmt == "robustness":
        prefix = "module." if any(key.startswith("module.model.") for key in blob) else ""
        model = {key.removeprefix(prefix + "model."): v for key, v in blob.items() if key.startswith(prefix + "model.")}
        if not model:
            raise CheckpointError(f"The checkpoint {path} has no '{prefix}model.' keys: it is not a robustness file.")
        norm = tuple(blob.get(f"{prefix}normalizer.new_{stat}") for stat in ("mean", "std"))
        state, mean, std = model, *(_floats(t) if t is not None else None for t in norm)
    else:
        state, (mean, std) = _strip(blob)
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"The checkpoint {path} has NaN or Inf values in {key!r}.")
    state = {key: t.float() if t.is_floating_point() else t for key, t in state.items()}
    return ForeignCheckpoint(path, fmt, state, mean, std, _file_hash(path))


def _load(path: Path) -> object:
    if path.suffix == ".safetensors":
        try:
            return load_safetensors_bytes(path.read_bytes())
        except (SafetensorError, ValueError, OSError) as error:
            raise CheckpointError(f"The checkpoint {path} is truncated or corrupted ({error}).") from error
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # not even its opcodes can be read: a cut or damaged file
            unsafe = []
        if unsafe:
            raise CheckpointError(
                f"The checkpoint {path} pickles Python objects beyond tensors ({', '.join(unsafe[:3])}), which "
                "soupviz never runs: re-save it with torch.save(model.state_dict(), path) where you trust it."
            ) from error
        raise CheckpointError(f"The checkpoint {path} is truncated or corrupted: it cannot be unpickled.") from error
    except Exception as error:  # zip, storage and EOF errors of a cut file come in many types
        first = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0]
        raise CheckpointError(f"The checkpoint {path} is truncated or not a PyTorch file ({first}).") from error


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


def _fill_counters(state: dict[str, torch.Tensor], layout: dict) -> dict[str, torch.Tensor]:
    """Older checkpoints lack BatchNorm's `num_batches_tracked`: add zeros (never used in eval)."""
    missing = {
        k: torch.zeros((), dtype=torch.long)
        for k in layout
        if k.endswith("num_batches_tracked")
        and k not in state
        and k.replace("num_batches_tracked", "running_mean") in state
    }
    return {**state, **missing}


def _mismatch(state: dict[str, torch.Tensor], arch: str) -> tuple[list[str], list[str], list[str]]:
    layout = _layout(arch, _classes(state, arch))
    state = _fill_counters(state, layout)
    missing = [k for k in layout if k not in state]
    unexpected = [k for k in state if k not in layout]
    shapes = [k for k in layout if k in state and tuple(state[k].shape) != layout[k]]
    return missing, unexpected, shapes


def _matching(state: dict[str, torch.Tensor]) -> list[str]:
    return [arch for arch in available_models() if not any(_mismatch(state, arch))]


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
    scored = sorted((sum(map(len, _mismatch(state, name))), name) for name in candidates)
    score, best = scored[0]
    if score == 0:
        return best, _classes(state, best)
    missing, unexpected, shapes = _mismatch(state, best)
    detail = (
        f"missing {missing[:3]}"
        if missing
        else f"unexpected {unexpected[:3]}"
        if unexpected
        else f"other shapes for {shapes[:3]}"
    )
    where = f"does not fit {best}" if arch else f"matches no registered architecture (closest: {best})"
    raise CheckpointError(f"The checkpoint {foreign.path} {where}: {detail} keys.")


@dataclass
class ImportResult:
    """What `import_checkpoint` wrote and what running the model showed."""

    path: Path
    card: Card
    check: str
    accuracy: float | None = None

    def summary(self) -> str:
        card = self.card
        return (
            f"{self.path}: {card.arch} from a {card.source['format']} file, normalisation mean "
            f"{_short(card.mean)} std {_short(card.std)}; {self.check}"
        )


def _short(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def import_checkpoint(
    source: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    arch: str | None = None,
    fmt: str = "auto",
    threat: str = "unknown",
    eps: float | None = None,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    check_images: ImageSet | None = None,
) -> ImportResult:
    """Import a foreign checkpoint into `out` as `<name>.safetensors` with its card.

    The normalisation is, in order: `normalisation` (mean, std) if given, the one stored in the
    file, the zoo's convention for the architecture (`ZOO_NORMALISATION`), else none (inputs
    used as pixels in [0, 1], as RobustBench's WideResNet-28-10/34-10 and PreActResNet-18 expect).
    The model is then run on `check_images` (its clean accuracy is reported: near 10% on
    CIFAR-10 usually means a wrong normalisation) or on 8 seeded random images, and must give
    finite logits of the right shape.

    Args:
        threat, eps: what the model was trained against, as the user states it ('unknown' if
            not given); `eps` defaults to the threat's usual budget (pixel scale).

    Returns:
        The written path, its card (with `source`: format, file name and SHA-256) and the check.
    """
    foreign = read_foreign(source, fmt)
    arch, num_classes = match_architecture(foreign, arch)
    if threat not in IMPORT_THREATS:
        raise CheckpointError(f"Unknown threat {threat!r}: use one of {', '.join(IMPORT_THREATS)}.")
    if eps is None and threat in DEFAULT_BUDGETS:
        eps = DEFAULT_BUDGETS[threat]
    if normalisation is None:
        stored = (foreign.mean, foreign.std) if foreign.mean is not None else None
        normalisation = stored or ZOO_NORMALISATION.get(arch, IDENTITY)
    mean, std = (tuple(float(v) for v in values) for values in normalisation)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise CheckpointError(f"The normalisation of {foreign.path} needs 3 means and 3 positive stds: {mean}, {std}.")
    model = create_model(arch, num_classes, mean, std)
    state = _fill_counters(foreign.state_dict, _layout(arch, num_classes))
    check_state_dict(model, state, foreign.path)
    model.load_state_dict(state)
    check, accuracy = _run_check(model.eval(), check_images, num_classes, foreign.path)
    card = Card(
        name=name or re.sub(r"[^\w.-]+", "_", foreign.path.stem),
        arch=arch,
        threat=threat,
        eps=eps,
        num_classes=num_classes,
        mean=mean,
        std=std,
        data_source="",
        notes=f"Imported with soupviz import from {foreign.path.name} ({foreign.format}).",
        source={"format": foreign.format, "file": foreign.path.name, "sha256": foreign.sha256},
    )
    return ImportResult(save_checkpoint(state, card, out), card, check, accuracy)


def _run_check(model: torch.nn.Module, images: ImageSet | None, classes: int, path: Path) -> tuple[str, float | None]:
    with torch.no_grad():
        if images is None:
            x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
            labels = None
        else:
            x, labels = images.floats(), images.labels
        logits = model(x)
    if logits.shape != (len(x), classes) or not torch.isfinite(logits).all():
        raise CheckpointError(f"The checkpoint {path} gives non-finite or mis-shaped logits {tuple(logits.shape)}.")
    if labels is None:
        return "ran on 8 random images: finite logits.", None
    accuracy = float((logits.argmax(1) == labels.to(logits.device)).float().mean())
    hint = " (near chance: check the normalisation with --mean/--std)" if accuracy < 2 / classes else ""
    return f"{accuracy:.1%} clean accuracy on {len(x)} test images{hint}.", accuracy


def foreign_files(folder: str | Path) -> list[Path]:
    """Files of `folder` that need importing: .pt/.pth/.ckpt, and .safetensors without a card."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return [
        p
        for p in files
        if p.suffix in FOREIGN_SUFFIXES or (p.suffix == ".safetensors" and not p.with_suffix(".json").exists())
    ]


def open_family(folder: str | Path, cache: str | Path | None = None) -> SoupFamily:
    """The family in `folder`, importing its foreign files first (see `foreign_files`).

    A folder of carded safetensors loads as it is. Otherwise its foreign files are imported
    (architecture and format detected, normalisation as `import_checkpoint` chooses, threat
    'unknown') and its carded checkpoints copied into `cache/<stamp>/<folder name>`, made once
    per set of file names, sizes and times. The family keeps the folder's name.

    Args:
        cache: where imported families live (default: `<soupviz cache>/imported`).
    """
    folder = Path(folder)
    foreign = foreign_files(folder)
    if not foreign:
        return load_family(folder)
    stamp = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            stamp.update(f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}|".encode())
    target = Path(cache or cache_dir() / "imported") / stamp.hexdigest()[:16] / folder.name
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        for path in foreign:
            import_checkpoint(path, target)
        for path in folder.glob("*.safetensors"):
            if path not in foreign:
                shutil.copy2(path, target / path.name)
                shutil.copy2(path.with_suffix(".json"), target / path.with_suffix(".json").name)
        (target / ".complete").write_text("")
    return load_family(target)
