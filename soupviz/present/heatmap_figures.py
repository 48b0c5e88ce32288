"""Accuracy heatmaps: soups (and baselines) as rows, metrics as columns, each cell a record's
accuracy with its interval in the hover and each column's attack and image count in a footnote.
`heatmap_data` decides what is shown, from records; `draw_heatmap` draws it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from soupviz.errors import SoupvizError
from soupviz.evaluate.methods import attack_label
from soupviz.present.figure_export import apply_style, attach_rows
from soupviz.present.labels import BOUND, bounded, columns_footnote, metric_name, shown_metric, soup_label, wrapped
from soupviz.present.soup_figures import Metric, NamedSoups, family_of, hover_text, images_note, percent, select
from soupviz.results.records import Record
from soupviz.soups.weights import weights_key

FOOTNOTE_PX = 11  # the footnote's font size
FOOTNOTE_CHARS = 105  # a footnote line's length that fits the figure's default 700 px width
TITLE_PX = 110  # the title, its subtitle and the margin above the plot


@dataclass(frozen=True)
class HeatmapRow:
    """One row of the heatmap: its name, the record of each column (None where not evaluated), and
    the ingredient names its hovers name the soup with (None for a baseline, named by its row)."""

    name: str
    cells: list[Record | None]
    labels: list[str] | None


@dataclass(frozen=True)
class HeatmapData:
    """What a heatmap shows, decided from records before any drawing: `columns` (names, '≤' on upper
    bounds), the `table` of soups then baselines, the footnote naming each column's attack and
    image count, the title, the CSV `rows`, and the family and metric names stored with them."""

    columns: list[str]
    table: list[HeatmapRow]
    footnote: str
    title: str
    rows: list[dict]
    family: str
    metric: str


def heatmap_data(
    records: Sequence[Record], soups: NamedSoups | None = None,
    metrics: Sequence[Metric] | None = None, labels: Sequence[str] | None = None,
    baselines: Sequence[Record] = (), baseline_labels: Mapping[str, str] | None = None,
) -> HeatmapData:
    """What `accuracy_heatmap` draws (see there for the arguments). Raises a `SoupvizError`
    without records or when a metric asked for has none."""
    if not records:
        raise SoupvizError("No results to show in a heatmap; evaluate some soups first.")
    labels = list(labels or records[0].ingredients)
    if soups is None:
        keys = dict.fromkeys(weights_key(r.weights) for r in records)
        soups = [(soup_label(w, labels), w) for w in keys]
    columns = [select(records, m)[0] for m in (metrics or dict.fromkeys(r.spec for r in records))]
    names = _column_names(columns, labels)
    index = {(weights_key(r.weights), r.spec): r for r in records}
    index.update(((r.family, r.spec), r) for r in baselines)
    named = {r.family: f"{(baseline_labels or {}).get(r.family, r.ingredients[0])} (baseline)" for r in baselines}
    keyed = [(name, weights_key(weights), labels) for name, weights in soups] + \
        [(name, family, None) for family, name in named.items()]
    table = [HeatmapRow(name, [index.get((key, column.spec)) for column in columns], mixed)
             for name, key, mixed in keyed]
    shown = [(name.removesuffix(BOUND), [row.cells[k] for row in table if row.cells[k]])
             for k, name in enumerate(names)]
    return HeatmapData(
        columns=names, table=table, footnote=columns_footnote(shown),
        title=f"Accuracy (%) per soup and metric<br><sup>{images_note(records)}</sup>",
        rows=[{"soup": row.name, **r.row()} for row in table for r in row.cells if r],
        family=family_of(records), metric=" ".join(map(metric_name, columns)),
    )


def accuracy_heatmap(
    records: Sequence[Record], soups: NamedSoups | None = None,
    metrics: Sequence[Metric] | None = None, labels: Sequence[str] | None = None,
    paper: bool = False, baselines: Sequence[Record] = (), baseline_labels: Mapping[str, str] | None = None,
) -> go.Figure:
    """Accuracy (%) of soups (rows) under metrics (columns), e.g. threat × budget.

    Args:
        soups: (row name, weights) in display order, e.g. ingredients, presets, the current
            soup; default every soup in `records`, named by its weights.
        metrics: specs, keys or columns in display order; default every metric in `records`.
        labels: ingredient display names; default the records' ingredient names.
        baselines: records of models outside the soup (`soupviz.evaluate.baselines`), one row per
            record family after the soups, named by `baseline_labels` (family -> label) or their
            checkpoint name.

    Cells show the accuracy, hovers the 95% interval and the method; robust columns end in
    '≤' (upper bounds, attack named under the axis). Missing (soup, metric) pairs are blank.
    """
    return draw_heatmap(heatmap_data(records, soups, metrics, labels, baselines, baseline_labels), paper)


def draw_heatmap(data: HeatmapData, paper: bool = False) -> go.Figure:
    """The heatmap of `data`: cells labelled with the accuracy to one decimal, blank where not
    evaluated, the footnote under the x axis; rows attached, in paper or screen style."""
    table = data.table
    fig = go.Figure(go.Heatmap(
        z=[[percent(r.accuracy) if r else math.nan for r in row.cells] for row in table],
        x=data.columns, y=[row.name for row in table], texttemplate="%{text}",
        text=[[f"{percent(r.accuracy):.1f}" if r else "" for r in row.cells] for row in table],
        hovertext=[[f"{row.name}<br>{hover_text(r, row.labels)}" if r else f"{row.name}: not evaluated"
                    for r in row.cells] for row in table],
        hovertemplate="%{hovertext}<extra></extra>", coloraxis="coloraxis", xgap=1, ygap=1,
    ))
    footnote = wrapped(data.footnote, FOOTNOTE_CHARS)
    fig.update_layout(
        yaxis={"autorange": "reversed", "type": "category", "dtick": 1}, xaxis={"type": "category"},
        coloraxis={"colorbar": {"title": {"text": "accuracy (%)"}}}, title={"text": data.title},
        height=heatmap_height(len(table), data.columns, footnote.count("<br>") + 1, paper),
    )
    fig.update_layout(xaxis_title={"text": footnote, "font": {"size": FOOTNOTE_PX}})
    attach_rows(fig, "heatmap", data.rows, data.family, data.metric)
    return apply_style(fig, paper)


def heatmap_height(rows: int, columns: Sequence[str], footnote_lines: int, paper: bool) -> int:
    """A height in CSS pixels that gives each row room for its label, whatever the column names
    (drawn turned under the axis) and footnote take below it: with Plotly's fixed default of 500
    px, a dozen long transfer columns squeezed eight rows until every other label was dropped."""
    font = 16 if paper else 13
    names = max((len(name) for name in columns), default=0) * 0.6 * font
    return round(TITLE_PX + rows * 2.2 * font + names + footnote_lines * 1.4 * FOOTNOTE_PX + 40)


def _column_names(columns: Sequence[Record], labels: Sequence[str] | None) -> list[str]:
    """Each column's name ('≤' on an upper bound; a transfer's source by its label), with its attack
    where two columns share a metric."""
    names = []
    for column in columns:
        twins = sum(other.metric == column.metric for other in columns)
        shown = shown_metric(column, labels)
        name = shown if twins == 1 else f"{shown} ({attack_label(column.measure)})"
        names.append(bounded(name, column.upper_bound))
    return names
