"""Adaptation runs kept in a family's folder, so the Few-shot adaptation page opens on a finished
figure instead of a button: `soupviz adapt --keep` writes the run as JSON into the family's
`precomputed/` folder, under a key of everything that decides it except where the files live
(the checkpoints' content hashes, the test split's content, the BatchNorm rule, the shift and the
selection settings), and the page reads it back only when all of those match its own inputs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from soupviz.checkpoints.families import SoupFamily
from soupviz.files import atomic_write_json
from soupviz.insight.adapt import Outcome
from soupviz.insight.few_shot import AdaptationRun, AdaptConfig
from soupviz.insight.weight_search import Selection
from soupviz.results.store import family_fingerprint
from soupviz.serve.insight_runs import request_key

PRECOMPUTED = "precomputed"
KEPT_FORMAT = "soupviz-adaptation/1"


@dataclasses.dataclass(frozen=True)
class KeptRun:
    """A kept run with the command that made it and when."""

    run: AdaptationRun
    command: str
    created: float


def portable_key(family: SoupFamily, split_id: str, batchnorm: str, spec: Sequence, heldout: int, *, per_class: int,
                 seed: int, config: AdaptConfig) -> str:
    """The key of an adaptation's inputs that holds on any machine: the same on the page and the CLI
    for the same checkpoints, data (`ImageSet.digest`), BatchNorm sentence, shift and settings."""
    spec = tuple(int(part) if isinstance(part, int) else str(part) for part in spec)
    return request_key("adapt", family_fingerprint(family.hashes), split_id, batchnorm, spec, int(heldout),
                       int(per_class), int(seed), config)


def run_to_json(run: AdaptationRun) -> dict:
    """`run` as JSON-ready data (tensors as nested lists with their dtype, so float64 comes back exactly)."""

    def plain(value: object) -> object:
        if isinstance(value, torch.Tensor):
            return {"tensor": value.tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
        if dataclasses.is_dataclass(value):
            return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    return plain(run)


def run_from_json(data: dict) -> AdaptationRun:
    """The inverse of `run_to_json`."""

    def tensor(value: dict) -> torch.Tensor:
        return torch.tensor(value["tensor"], dtype=getattr(torch, value["dtype"]))

    def selection(item: dict) -> Selection:
        return Selection(**{key: tensor(value) if isinstance(value, dict) else value for key, value in item.items()})

    config = data["config"] | {"ks": tuple(data["config"]["ks"])}
    return AdaptationRun(
        shift=data["shift"], seed=data["seed"], config=AdaptConfig(**config), batchnorm=data["batchnorm"],
        selections=[selection(item) for item in data["selections"]],
        outcomes=[Outcome(**item) for item in data["outcomes"]],
        curve=data["curve"], summary=data["summary"], notes=data["notes"],
    )


def kept_path(folder: Path, key: str) -> Path:
    """Where the run of `key` is kept in a family folder."""
    return Path(folder) / PRECOMPUTED / f"adapt-{key}.json"


def keep_run(folder: Path, key: str, run: AdaptationRun, command: str) -> Path:
    """Write `run` into the family folder under `key`, with the command that made it."""
    path = kept_path(folder, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"format": KEPT_FORMAT, "key": key, "command": command, "created": time.time(),
                       "run": run_to_json(run)}, path)
    return path


def kept_run(folder: Path | None, key: str) -> KeptRun | None:
    """The run kept under `key` in the family folder, or None (no folder, none kept, or unreadable)."""
    if folder is None:
        return None
    path = kept_path(folder, key)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != KEPT_FORMAT or data.get("key") != key:
            return None
        return KeptRun(run_from_json(data["run"]), data["command"], float(data["created"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
