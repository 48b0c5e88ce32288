"""Page-side logic of the dashboard that needs no Streamlit: saving uploaded checkpoints, building
a session's evaluator on shared parameters, the specs each page measures, soups for heatmap rows,
tables of accuracies with intervals, and mapping a clicked ternary point back to soup weights.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import torch

from soupviz.app_state import EvalSettings, presets, tidy
from soupviz.attacks import DEFAULT_BUDGETS, THREAT_LABELS, THREATS, format_budget
from soupviz.checkpoints import SoupFamily
from soupviz.data import ImageSet
from soupviz.errors import CheckpointError, SoupvizError
from soupviz.evaluate import Evaluator
from soupviz.export import figure_info
from soupviz.figures import soup_label, weights_key
from soupviz.metrics import MetricSpec, Record
from soupviz.models import create_model
from soupviz.results_cache import ResultCache
from soupviz.soup import ParameterMatrix, Soup, simplex_grid

UPLOAD_SUFFIXES = (".safetensors", ".json")
ROW_GROUPS = ("ingredients", "presets", "current soup", "grid")


def folder_stamp(folder: str | Path) -> str:
    """Names, sizes and modification times of a family folder's files: a cache key that
    changes when a checkpoint is added, replaced or removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return ""
    files = sorted(p for p in folder.iterdir() if p.suffix in UPLOAD_SUFFIXES)
    text = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_uploads(files: Sequence[tuple[str, bytes]], root: str | Path) -> Path:
    """Write uploaded checkpoint files (name, content) into a folder named by their content.

    Returns:
        `root/<hash>/uploaded`, holding the files; pass it to `load_family`.

    Raises:
        CheckpointError: no files, or a file that is not .safetensors or .json.
    """
    if not files:
        raise CheckpointError("No files were uploaded: upload each checkpoint's .safetensors file and its .json card.")
    digest = hashlib.sha256()
    for name, content in sorted(files):
        if Path(name).suffix not in UPLOAD_SUFFIXES or Path(name).name != name:
            raise CheckpointError(f"The uploaded file {name!r} is not a .safetensors checkpoint or a .json card.")
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    folder = Path(root) / digest.hexdigest()[:16] / "uploaded"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files:
        (folder / name).write_bytes(content)
    return folder


def build_evaluator(
    family: SoupFamily, params: ParameterMatrix, images: ImageSet, settings: EvalSettings,
    train: ImageSet | None = None, cache: bool = True,
) -> Evaluator:
    """An evaluator with its own `Soup` over a shared, read-only parameter matrix.

    Each browser session needs its own soup (`set_weights` writes into the soup's vector), but
    the K x P matrix is the big object and is only read, so sessions share it.

    Args:
        params: the family's matrix, on the device to evaluate on.
        images: the fixed test subset.
        train: clean training images, needed when `settings.batchnorm == 'reestimate'`.
    """
    card = family.ingredients[0].card
    soup = Soup(create_model(card.arch, card.num_classes, card.mean, card.std), params)
    evaluator = Evaluator(
        family, images, device=params.device, seed=settings.seed, batch_size=settings.batch_size,
        cache=ResultCache() if cache else None, soup=soup,
    )
    if settings.batchnorm == "reestimate":
        if train is None:
            raise SoupvizError("Re-estimating BatchNorm statistics needs clean training images; load the train split.")
        soup.reestimate_batchnorm(train.floats(params.device), batch_size=128, batches=max(1, math.ceil(len(train) / 128)))
    elif settings.batchnorm != "mix":
        raise SoupvizError(f"BatchNorm mode must be 'mix' or 'reestimate', not {settings.batchnorm!r}.")
    return evaluator


def robust_specs(settings: EvalSettings, threats: Sequence[str] = THREATS) -> list[MetricSpec]:
    """Robust accuracy per threat at the paper's budgets, with the settings' attack and steps."""
    return [MetricSpec("attack", threat=t, attack=settings.attack, steps=settings.steps) for t in threats]


def corruption_specs(settings: EvalSettings) -> list[MetricSpec]:
    """Accuracy under each chosen corruption at the settings' severity."""
    return [MetricSpec("corruption", corruption=c, severity=settings.severity) for c in settings.corruptions]


def metric_choices(settings: EvalSettings) -> dict[str, MetricSpec]:
    """Metrics a plot can show, by display name: clean, each threat, each chosen corruption."""
    specs = [MetricSpec("clean"), *robust_specs(settings), *corruption_specs(settings)]
    return {spec.column: spec for spec in specs}


def parse_budgets(text: str, threat: str) -> list[float]:
    """Budgets (pixel scale) from text such as '2/255, 4/255, 8/255' or '0.25 0.5'.

    Raises:
        SoupvizError: a value that is not a positive number or fraction.
    """
    values = []
    for part in text.replace(",", " ").split():
        try:
            numerator, _, denominator = part.partition("/")
            value = float(numerator) / float(denominator or 1)
        except (ValueError, ZeroDivisionError) as error:
            raise SoupvizError(f"The {THREAT_LABELS[threat]} budget {part!r} is not a number such as 8/255 or 0.5.") from error
        if not value > 0:
            raise SoupvizError(f"The {THREAT_LABELS[threat]} budget {part!r} must be positive.")
        values.append(value)
    return sorted(set(values))


def budgets_text(threat: str, budgets: Sequence[float]) -> str:
    """The inverse of `parse_budgets`: '2/255, 4/255' for L∞ multiples of 1/255."""
    return ", ".join(format_budget(threat, eps) for eps in budgets)


def budget_specs(budgets: dict[str, Sequence[float]], settings: EvalSettings) -> list[MetricSpec]:
    """Robust-accuracy specs for every threat x budget, in threat then budget order."""
    return [
        MetricSpec("attack", threat=threat, eps=eps, attack=settings.attack, steps=settings.steps)
        for threat in THREATS for eps in budgets.get(threat, [])
    ]


def row_soups(
    groups: Sequence[str], family: SoupFamily, current: Sequence[float] | None, grid_step: float = 0.5,
) -> list[tuple[str, list[float]]]:
    """Named soups for heatmap rows from groups among `ROW_GROUPS`, without repeats (the first
    name of a soup wins: an ingredient stays named after itself even inside a grid)."""
    k = len(family.names)
    threats = [ingredient.card.threat for ingredient in family.ingredients]
    chosen: list[tuple[str, list[float]]] = []
    named = presets(threats, family.labels)
    for group in groups:
        if group == "ingredients":
            chosen += named[:k]
        elif group == "presets":
            chosen += named[k:]
        elif group == "current soup" and current is not None:
            chosen.append((f"current: {soup_label(current, family.labels)}", list(current)))
        elif group == "grid":
            chosen += [(soup_label(w, family.labels), w) for w in grid_weights(k, grid_step)]
    seen, unique = set(), []
    for name, weights in chosen:
        if weights_key(weights) not in seen:
            seen.add(weights_key(weights))
            unique.append((name, weights))
    return unique


def grid_weights(k: int, step: float, subset: Sequence[int] | None = None) -> list[list[float]]:
    """The simplex grid (see `soup.simplex_grid`) as tidy weight lists."""
    return [tidy(row.tolist()) for row in simplex_grid(k, step, subset=subset)]


def format_record(record: Record) -> str:
    """'53.2% [48.1, 58.2]': accuracy with its 95% Wilson interval, in percent."""
    return f"{100 * record.accuracy:.1f}% [{100 * record.ci_low:.1f}, {100 * record.ci_high:.1f}]"


def records_table(records: Sequence[Record], soups: Sequence[tuple[str, Sequence[float]]]) -> list[dict]:
    """One row per soup, one column per metric ('≤' marks upper bounds), cells with intervals."""
    index = {(weights_key(r.weights), r.metric): r for r in records}
    columns = list(dict.fromkeys((r.metric, r.upper_bound) for r in records))
    rows = []
    for name, weights in soups:
        row = {"soup": name}
        for metric, bound in columns:
            record = index.get((weights_key(weights), metric))
            row[f"{metric} ≤" if bound else metric] = format_record(record) if record else "—"
        rows.append(row)
    return rows


def card_table(family: SoupFamily) -> tuple[list[dict], list[str]]:
    """Ingredients x the metrics their cards report, and the methods behind those numbers.

    Returns:
        (rows, methods): one row per ingredient with its name, threat, parent and one cell per
        reported metric ('—' where a card lacks it); methods are the distinct measurement labels
        with their images. Rows carry no metric cells when no card reports any.
    """
    columns = list(dict.fromkeys(m["metric"] for i in family.ingredients for m in i.card.metrics if "metric" in m))
    rows, methods = [], []
    for ingredient in family.ingredients:
        card = ingredient.card
        row = {"ingredient": card.label, "checkpoint": card.name, "parent": (card.parent or {}).get("name", "—")}
        found = {m["metric"]: m for m in card.metrics if "metric" in m}
        for column in columns:
            m = found.get(column)
            row[column] = (f"{100 * m['accuracy']:.1f}% [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]"
                           if m and {"accuracy", "ci_low", "ci_high"} <= m.keys() else "—")
            if m and m.get("method"):
                methods.append(f"{m['method']} on {m.get('images', '?')}")
        rows.append(row)
    return rows, list(dict.fromkeys(methods))


def ternary_points(fig: go.Figure) -> list[list[float]]:
    """Weights of the points of a `figures.ternary_figure`'s first trace, in trace order, so a
    clicked point index maps back to its soup."""
    rows = figure_info(fig).get("rows", [])
    return [tidy([float(w) for w in row["weights"].split()]) for row in rows if row.get("on_ternary")]


def picked_weights(selection: object, points: Sequence[Sequence[float]]) -> list[float] | None:
    """The soup of the first clicked grid point in a Plotly selection state, else None."""
    chosen = (getattr(selection, "points", None) or (selection or {}).get("points") or []) if selection else []
    for point in chosen:
        index = point.get("point_index", point.get("point_number"))
        if point.get("curve_number", 0) == 0 and index is not None and 0 <= int(index) < len(points):
            return list(points[int(index)])
    return None


def line_weights(k: int, i: int, j: int, margin: float, step: float = 0.1) -> torch.Tensor:
    """Soups on the path from ingredient j (α = 0) to i (α = 1), α every `step`, extended by
    `margin` on both sides when extrapolating."""
    from soupviz.soup import interpolation_line

    points = round((1 + 2 * margin) / step) + 1
    return interpolation_line(k, i, j, points, margin)


def default_budgets() -> dict[str, list[float]]:
    """The heatmap's default columns: a few budgets around the paper's per threat."""
    return {"linf": [2 / 255, 4 / 255, 8 / 255, 16 / 255], "l2": [0.25, 0.5, 1.0], "l1": [6.0, DEFAULT_BUDGETS["l1"], 24.0]}
