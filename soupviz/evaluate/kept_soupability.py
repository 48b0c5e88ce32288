"""Soupability reports kept in a family's folder, so the Home page opens on the barrier matrix and
the path to the unrelated network without measuring: `soupviz check FAMILY --against OUTSIDER
--keep` writes the report as JSON into the family's `precomputed/` folder, under a key of what
decides it (the checkpoints' and the outsider's content hashes, the number of test images, their
seed, the points per path and the BatchNorm rule), and a page reads it back only when all match.

The test images are named by count and seed, not by content: reading their content would mean
decoding the test split, which is what a cold start avoids. The report says where it was measured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from soupviz.checkpoints.families import Ingredient, SoupFamily
from soupviz.evaluate.soupability import PairBarrier, Soupability
from soupviz.files import atomic_write_json
from soupviz.results.store import family_fingerprint

KEPT_FORMAT = "soupviz-soupability/1"
PRECOMPUTED = "precomputed"  # the family's folder of kept results (as `serve.kept_runs` keeps runs)


@dataclasses.dataclass(frozen=True)
class KeptSoupability:
    """A kept report with the command that made it, what it was measured on, and when."""

    report: Soupability
    command: str
    measured_on: str
    created: float


def soupability_key(family: SoupFamily, outsider: Ingredient | None, images: int, seed: int, points: int,
                    *, batchnorm: str) -> str:
    """The key of a soupability report's inputs: the same on the page and the CLI for the same
    checkpoints (and outside network), image count and seed, points per path and BatchNorm sentence."""
    hashes = [*family.hashes, *([outsider.card.content_hash or ""] if outsider is not None else [])]
    parts = ("soupability", family_fingerprint(hashes), int(images), int(seed), int(points), batchnorm)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def kept_path(folder: Path, key: str) -> Path:
    """Where the report of `key` is kept in a family folder."""
    return Path(folder) / PRECOMPUTED / f"soupability-{key}.json"


def keep_soupability(folder: Path, key: str, report: Soupability, command: str, measured_on: str) -> Path:
    """Write `report` into the family folder under `key`, with the command that made it and a
    description of its images (e.g. '64 CIFAR-10 test images, seed 0')."""
    path = kept_path(folder, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"format": KEPT_FORMAT, "key": key, "command": command, "measured_on": measured_on,
                       "created": time.time(), "report": dataclasses.asdict(report)}, path)
    return path


def kept_soupability(folder: Path | None, key: str) -> KeptSoupability | None:
    """The report kept under `key` in the family folder, or None (no folder, none kept, unreadable)."""
    if folder is None:
        return None
    try:
        data = json.loads(kept_path(folder, key).read_text())
        if data.get("format") != KEPT_FORMAT or data.get("key") != key:
            return None
        fields = dict(data["report"])
        fields["pairs"] = [PairBarrier(**pair) for pair in fields["pairs"]]
        return KeptSoupability(Soupability(**fields), data["command"], data["measured_on"], float(data["created"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def renamed(report: Soupability, titles: dict[str, str]) -> Soupability:
    """`report` with its models called by `titles` (name -> what a person reads, e.g. 'linf' ->
    'L∞ 8/255'; names not in `titles` stay), so its matrix, sentences and figures show them."""
    def title(name: str | None) -> str | None:
        return titles.get(name, name) if name is not None else None

    pairs = [dataclasses.replace(p, a=title(p.a), b=title(p.b), base=title(p.base)) for p in report.pairs]
    return dataclasses.replace(report, names=[title(n) for n in report.names], pairs=pairs,
                               outsider=title(report.outsider))


def family_only(report: Soupability) -> Soupability:
    """The pairs of the family's own ingredients of a report measured against an outsider (the
    Home page's matrix); `report` itself when it has no outsider."""
    if report.outsider is None:
        return report
    names = [name for name in report.names if name != report.outsider]
    return dataclasses.replace(report, names=names, pairs=report.within, outsider=None)
