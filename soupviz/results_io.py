"""Reading and writing evaluation records as JSON (what the dashboard loads) or CSV.

JSON files hold each record's spec as data (`Record.to_dict`); files written before that, which
kept only the spec's key, still load (`Record.from_dict`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from soupviz.errors import SoupvizError
from soupviz.metrics import Record
from soupviz.storage import atomic_write_bytes, atomic_write_json

RESULTS_FORMAT = "soupviz-results/2"  # /2: each record's spec as data
READABLE_FORMATS = ("soupviz-results/1", RESULTS_FORMAT)


def write_records(records: list[Record], path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write records to `path`: CSV for '.csv' (one row per record), else JSON with `meta`."""
    path = Path(path)
    if path.suffix == ".csv":
        atomic_write_bytes(records_to_csv(records).encode(), path)
    else:
        atomic_write_json(
            {"format": RESULTS_FORMAT, "meta": meta or {}, "records": [r.to_dict() for r in records]}, path
        )
    return path


def records_to_csv(records: list[Record]) -> str:
    """Records as CSV text with a header row; the last column, `mask`, holds the per-image
    results (hex, 8 images a byte, in the order of the evaluated subset; `unpackbits` reads
    it), so paired comparisons can be re-checked from the file."""
    rows = [{**record.row(), "mask": record.mask} for record in records]
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def read_records(path: str | Path) -> tuple[list[Record], dict[str, Any]]:
    """Records and metadata from a JSON results file written by `write_records`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SoupvizError(f"The results file {path} cannot be read ({error}).") from error
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        raise SoupvizError(f"The file {path} is not a soupviz results file (expected format {RESULTS_FORMAT}).")
    try:
        return [Record.from_dict(item) for item in data["records"]], data.get("meta", {})
    except (SoupvizError, TypeError, KeyError) as error:
        raise SoupvizError(f"The results file {path} has malformed records ({error}).") from error
