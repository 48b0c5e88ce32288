"""Page-side logic of the dashboard that needs no Streamlit: a family folder's cache stamp, building
a session's evaluator on shared parameters, the specs each page measures, soups for heatmap rows,
tables of accuracies with intervals, and mapping a clicked ternary point back to soup weights.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import torch

from soupviz.app_state import EvalSettings, presets, tidy
from soupviz.attacks import DEFAULT_BUDGETS, THREAT_LABELS, THREATS, format_budget
from soupviz.checkpoints import SoupFamily
from soupviz.comparison import paired_difference, verdict_label
from soupviz.data import ImageSet
from soupviz.errors import SoupvizError
from soupviz.evaluate import Evaluator
from soupviz.export import figure_info
from soupviz.figures import soup_label, weights_key
from soupviz.grids import simplex_grid
from soupviz.metrics import MetricSpec, Record, with_corruption_mean
from soupviz.models import create_model
from soupviz.serving import UPLOAD_SUFFIXES
from soupviz.soup import ParameterMatrix, Soup
from soupviz.store import ResultStore

UPPER_BOUND = " (upper bound on robust accuracy)"
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


def ingredient_titles(family: SoupFamily) -> list[str]:
    """What each ingredient's weight slider is called: its label, with the checkpoint name after it
    only when that says more than the label or the threat ('L∞ 8/255 · linf_seed1', but 'nominal'
    for the checkpoint 'nominal' and 'L∞ 8/255' for 'linf')."""
    titles = []
    for card in (ingredient.card for ingredient in family.ingredients):
        redundant = card.name.casefold() in (card.label.casefold(), card.threat.casefold())
        titles.append(card.label if redundant else f"{card.label} · {card.name}")
    return titles


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
        store=ResultStore() if cache else None, soup=soup,
    )
    if settings.batchnorm == "reestimate":
        if train is None:
            raise SoupvizError("Re-estimating BatchNorm statistics needs clean training images; load the train split.")
        batches = max(1, math.ceil(len(train) / 128))
        soup.reestimate_batchnorm(train.floats(params.device), batch_size=128, batches=batches)
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
            raise SoupvizError(
                f"The {THREAT_LABELS[threat]} budget {part!r} is not a number such as 8/255 or 0.5.") from error
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
    """The simplex grid (see `grids.simplex_grid`) as tidy weight lists."""
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


def ingredient_table(family: SoupFamily, records: Sequence[Record] = ()) -> tuple[list[dict], list[str]]:
    """Ingredients x metrics with 95% intervals, from `records` (one-hot soups, e.g. measured
    on demand) where given, else from the metrics the cards report.

    Returns:
        (rows, methods): one row per ingredient with its label, checkpoint name, parent and one
        cell per metric ('—' where missing; '≤' marks upper bounds); methods say how the numbers
        were measured, e.g. 'on 1000 images of ...: clean accuracy; APGD-CE-40 L∞ 8/255', one
        entry per image set. No metric cells when there is nothing to show.
    """
    k = len(family.names)
    if records:
        found = [{r.spec: r.__dict__ for r in records if weights_key(r.weights) == weights_key(one_hot)}
                 for one_hot in torch.eye(k, dtype=torch.float64).tolist()]
    else:
        found = [{m.get("spec", m["metric"]): m for m in i.card.metrics if "metric" in m} for i in family.ingredients]
    found = [with_corruption_mean(cells) for cells in found]
    first = {key: m for cells in reversed(found) for key, m in cells.items()}
    first = {key: first[key] for key in dict.fromkeys(key for cells in found for key in cells)}
    shared = Counter(m["metric"] for m in first.values())
    rows, methods = [], {}
    for ingredient, cells in zip(family.ingredients, found, strict=True):
        card = ingredient.card
        row = {"ingredient": card.label, "checkpoint": card.name, "parent": (card.parent or {}).get("name", "—")}
        for key, example in first.items():
            name = example["metric"]
            if shared[name] > 1:  # two attacks on one threat: name each column by its attack
                name = example.get("method", name).removesuffix(UPPER_BOUND)
            m = cells.get(key)
            complete = m is not None and {"accuracy", "ci_low", "ci_high"} <= m.keys()
            row[f"{name} ≤" if example.get("upper_bound") else name] = (
                f"{100 * m['accuracy']:.1f}% [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]" if complete else "—")
            if m and m.get("method"):
                seed = f" (seed {m['seed']})" if m.get("seed") is not None else ""
                images = m.get("images", "unknown images") + seed
                methods.setdefault(images, {})[m["method"].removesuffix(UPPER_BOUND)] = None
        rows.append(row)
    return rows, [f"on {images}: {'; '.join(used)}" for images, used in methods.items()]


def ingredient_caption(methods: Sequence[str], measured: bool, settings: EvalSettings) -> str:
    """The Home table's caption: where its numbers come from (`ingredient_table`'s methods), and,
    for numbers read from the cards, that they are not the sidebar's budget."""
    if not methods:
        return ""
    text = ("Measured here " if measured else "From the checkpoint cards: measured ") + ". Measured ".join(methods)
    if not measured:
        text += (f". The sidebar's budget ({settings.images} images, {settings.attack.upper()}-{settings.steps}) "
                 "applies only to what you measure here")
    return text + ". Brackets: 95% Wilson intervals; ≤: robust accuracy is an upper bound by the attack named."


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
    from soupviz.grids import interpolation_line

    points = round((1 + 2 * margin) / step) + 1
    return interpolation_line(k, i, j, points, margin)


def default_budgets() -> dict[str, list[float]]:
    """The heatmap's default columns: a few budgets around the paper's per threat."""
    return {"linf": [2 / 255, 4 / 255, DEFAULT_BUDGETS["linf"], 16 / 255], "l2": [0.25, DEFAULT_BUDGETS["l2"], 1.0],
            "l1": [6.0, DEFAULT_BUDGETS["l1"], 24.0]}


def records_from_upload(data: bytes, names: Sequence[str]) -> list[Record]:
    """Records from an uploaded `soupviz sweep` JSON export, checked to be of this family, or
    this family's records from an uploaded results store (.sqlite).

    Raises:
        SoupvizError: not a results file, or results for other ingredients.
    """
    import tempfile

    from soupviz.store import read_records

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results"
        path.write_bytes(data)
        records, meta = read_records(path)
    if "store" in meta:
        records = [r for r in records if list(r.ingredients) == list(names)]
        if not records:
            raise SoupvizError(f"The results store holds no records of this family's {', '.join(names)}; "
                               "load the family it was swept on.")
    other = next((r for r in records if list(r.ingredients) != list(names)), None)
    if other is not None:
        raise SoupvizError(f"The results file is for the ingredients {', '.join(other.ingredients)}, "
                           f"not this family's {', '.join(names)}; load the family it was swept on.")
    return records


def record_metrics(records: Sequence[Record]) -> dict[str, str]:
    """Display name -> spec key of the metrics in `records`, e.g. 'L∞ 8/255 (APGD-CE-40)'."""
    from soupviz.figures import attack_name

    return {f"{r.metric} ({attack_name(r)})" if r.upper_bound else r.metric: r.spec for r in records}


def soup_vs_ensemble(
    soups: Sequence[Record], ensembles: Sequence[Record], labels: Sequence[str],
) -> list[dict]:
    """Per soup and metric, the weight-space soup against the output-space ensemble with the
    same weights on the same images: both accuracies with intervals, the difference in points
    with its paired 95% interval and McNemar's p (`comparison.paired_difference`), and a winner
    only where the interval excludes 0 and p < 0.05 (`PairedDifference.verdict`). Show
    `comparison.SAMPLING_NOTE` beside it: the intervals say nothing of attack looseness."""
    index = {(weights_key(r.weights), r.spec): r for r in ensembles}
    rows = []
    for soup in soups:
        ensemble = index.get((weights_key(soup.weights), soup.spec))
        if ensemble is None:
            continue
        paired = paired_difference(soup, ensemble)
        rows.append({
            "soup": soup_label(soup.weights, labels), "metric": f"{soup.metric} ≤" if soup.upper_bound else soup.metric,
            "weight-space soup": format_record(soup), "output-space ensemble": format_record(ensemble),
            "soup − ensemble (points)": round(100 * paired.difference, 1),
            "paired 95% CI": f"[{100 * paired.ci_low:.1f}, {100 * paired.ci_high:.1f}]",
            "McNemar p": f"{paired.p_value:.2g}",
            "verdict": verdict_label(paired.verdict, "soup", "ensemble"),
        })
    return rows
