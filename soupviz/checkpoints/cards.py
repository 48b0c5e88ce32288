"""Model cards: the JSON beside each checkpoint (`<name>.json` beside `<name>.safetensors`) that
says what it is (architecture, data, threat model and budget, recipe, the parent it was fine-tuned
from, measured metrics, where an imported file came from) and carries the content hash of its
weights. A bad card is one `CheckpointError` sentence naming the file; cards are written atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from soupviz.errors import CheckpointError
from soupviz.files import atomic_write_json, shown_path
from soupviz.models.registry import CIFAR10_MEAN, CIFAR10_STD, available_models
from soupviz.threats import THREATS, threat_label

JOINT_LABELS = {"sat": "SAT"}  # threats of jointly trained models, as cards name them
CARD_VERSION = 1


@dataclass
class Card:
    """What a checkpoint is; stored as `<name>.json` beside `<name>.safetensors`.

    `threat` is the threat model the ingredient was trained against ('linf', 'l2', 'l1',
    'none' for nominal training, or a name such as 'sat' for a joint model); `eps` its
    budget in pixel scale. `parent` is the name and content hash of the checkpoint it was
    fine-tuned from (None for a base trained from scratch). `metrics` holds records
    (`soupviz.results.records`), measured after training. `source` says where an imported checkpoint
    came from (format, file name, SHA-256 of the file; see `soupviz.checkpoints.importing`).
    """

    name: str
    arch: str
    threat: str
    eps: float | None = None
    num_classes: int = 10
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    dataset: str = "CIFAR-10"
    data_source: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    parent: dict[str, str] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    command: str = ""
    wall_time_s: float | None = None
    notes: str = ""
    source: dict[str, str] | None = None
    content_hash: str = ""
    card_version: int = CARD_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> Card:
        known = {f.name for f in fields(cls)}
        missing = [key for key in ("name", "arch", "threat") if key not in data]
        if missing:
            raise CheckpointError(f"The card {shown_path(path)} lacks the field(s) {', '.join(missing)}.")
        card = cls(**{key: value for key, value in data.items() if key in known})
        card.mean, card.std = tuple(card.mean), tuple(card.std)
        return card

    @property
    def label(self) -> str:
        """Short display name: 'nominal', 'L∞ 8/255', 'L2 0.5', 'SAT', ... or the card's name."""
        if self.threat == "none":
            return "nominal"
        if self.threat in JOINT_LABELS:
            return JOINT_LABELS[self.threat]
        if self.threat in THREATS and self.eps is not None:
            return threat_label(self.threat, self.eps)
        return self.name


def card_path(checkpoint: Path) -> Path:
    """Where the card of the checkpoint file `checkpoint` lives: beside it, as `<name>.json`."""
    return checkpoint.with_suffix(".json")


def read_card(path: Path) -> Card:
    """Parse a JSON card with a clear error for a missing or malformed file."""
    if not path.exists():
        raise CheckpointError(f"The card {shown_path(path)} is missing: every checkpoint needs its JSON card "
                              "beside it.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"The card {shown_path(path)} is not valid JSON ({error}).") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"The card {shown_path(path)} must hold a JSON object.")
    card = Card.from_json(data, path)
    if card.arch not in available_models():
        raise CheckpointError(
            f"The card {shown_path(path)} names the unknown architecture {card.arch!r}; known: "
            f"{', '.join(available_models())}."
        )
    return card


def write_card(card: Card, path: Path) -> None:
    """Write `card` to `path` atomically (a reader sees the old card or the new one, never half)."""
    atomic_write_json(card.to_json(), path)


def record_metrics(card: Card, path: Path, records: list[dict[str, Any]]) -> None:
    """Store measured metric records (dicts without per-image masks) in `card` and its file `path`,
    replacing earlier records of the same metric; the checkpoint's weights stay untouched."""
    fresh = {record["spec"]: record for record in records}
    kept = [m for m in card.metrics if m.get("spec") not in fresh]
    card.metrics = kept + list(fresh.values())
    write_card(card, path)
