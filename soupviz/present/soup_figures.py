"""Plotly figures of soups in weight space: ternary maps and interpolation paths, and what every
figure shares: choosing a metric's records and hovers (texts from `soupviz.present.labels`).

Builders take evaluation `Record`s and only arrange them; heatmaps live in `heatmap_figures.py`,
trade-off and budget plots in `tradeoff_figures.py` and `budget_figures.py`. Each figure keeps the
exact rows it shows in `layout.meta` (`export.figure_csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from soupviz.errors import SoupvizError
from soupviz.present.figure_export import OKABE_ITO, apply_style, attach_rows, rgba
from soupviz.present.labels import (
    TOLERANCE,
    interval_text,
    method_text,
    metric_name,
    metric_title,
    series_name,
    shown_metric,
    soup_label,
)
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record
from soupviz.soups.weights import tidy, weights_key

TERNARY_HEIGHT = 600  # CSS pixels
BOTTOM_LEGEND = {"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0, "xanchor": "left"}
Metric = str | MetricSpec
NamedSoups = Sequence[tuple[str, Sequence[float]]]


def select(records: Sequence[Record], metric: Metric) -> list[Record]:
    """The records of one metric, given as a `MetricSpec`, its key ('linf:0.0313725:apgd-ce:20:1')
    or its column ('L∞ 8/255'). Raises a `SoupvizError` when none match."""
    metric = metric.key if isinstance(metric, MetricSpec) else metric
    chosen = [r for r in records if metric in (r.spec, r.metric)]
    if not chosen:
        known = ", ".join(sorted({r.metric for r in records})) or "none"
        raise SoupvizError(f"No results for the metric {metric!r}; evaluate it first "
                           f"(have: {known}).")
    return chosen


def images_note(records: Sequence) -> str:
    """How many test images the numbers rest on, for a figure's own text (a printed figure has no
    hover): '500 test images per soup', or '200 to 500 …' where they differ."""
    counts = sorted({r.n for r in records if getattr(r, "n", None)})
    if not counts:
        return ""
    return f"{counts[0] if len(counts) == 1 else f'{counts[0]} to {counts[-1]}'} test images per soup"


def one_hot_index(weights: Sequence[float]) -> int | None:
    """The ingredient a one-hot weight vector selects, else None."""
    hot = [i for i, w in enumerate(weights) if abs(w) > TOLERANCE]
    return hot[0] if len(hot) == 1 and abs(weights[hot[0]] - 1) < TOLERANCE else None


def family_of(records: Sequence[Record]) -> str:
    return next((r.family for r in records if r.family), "")


def percent(value: float) -> float:
    return 100.0 * value


def hover_text(record: Record, labels: Sequence[str] | None = None) -> str:
    """Hover lines: the soup named with `labels` (left out without them), the metric with its
    accuracy and 95% Wilson interval, and the method (a transfer's source by its label)."""
    soup = f"{soup_label(record.weights, labels)}<br>" if labels is not None else ""
    return (f"{soup}{shown_metric(record, labels)}: {interval_text(record)} (95% CI, n={record.n})"
            f"<br>{method_text(record, labels)}")


@dataclass(frozen=True)
class TernaryData:
    """What a ternary figure shows, decided from records before any drawing.

    `shown` are the convex soups of the three `corners` (ingredient indices), in record order;
    `rows` every record of the metric, flagged `on_ternary` with `skipped_because`; `star` whether
    the `current` soup is drawn (it lies on the simplex), with `current_record` its evaluation if
    any; `notes` the lines under the plot (what was skipped, where the current soup is).
    """

    shown: list[Record]
    rows: list[dict]
    corners: tuple[int, int, int]
    labels: list[str]
    current: Sequence[float] | None
    star: bool
    current_record: Record | None
    notes: list[str]
    first: Record  # the metric's first record: names it in the title and colour bar
    title: str
    family: str


def ternary_data(
    records: Sequence[Record], metric: Metric, corners: tuple[int, int, int],
    current: Sequence[float] | None = None, labels: Sequence[str] | None = None,
) -> TernaryData:
    """What `ternary_figure` draws (see there for the arguments). Raises a `SoupvizError` when
    the metric has no records or `corners` are not three different ingredients."""
    chosen = select(records, metric)
    labels = list(labels or chosen[0].ingredients)
    if len(set(corners)) != 3 or not all(0 <= c < len(labels) for c in corners):
        raise SoupvizError(f"A ternary plot needs three different ingredients among "
                           f"0..{len(labels) - 1}, got {corners}.")
    reasons = [_off_simplex(record.weights, corners) for record in chosen]
    rows = [{**record.row(), "on_ternary": not reason, "skipped_because": reason}
            for record, reason in zip(chosen, reasons, strict=True)]
    notes = _skipped_note(reasons)
    star = current is not None and not _off_simplex(current, corners)
    if current is not None:
        off = f"The current soup ({soup_label(current, labels)}) is off this simplex."
        notes.append("★ current soup" if star else off)
    key = None if current is None else weights_key(current)
    return TernaryData(
        shown=[record for record, reason in zip(chosen, reasons, strict=True) if not reason], rows=rows,
        corners=corners, labels=labels, current=current, star=star,
        current_record=next((r for r in chosen if star and weights_key(r.weights) == key), None), notes=notes,
        first=chosen[0], title=metric_title(chosen[0], chosen), family=family_of(chosen),
    )


def ternary_figure(
    records: Sequence[Record], metric: Metric, corners: tuple[int, int, int],
    current: Sequence[float] | None = None, labels: Sequence[str] | None = None,
    paper: bool = False,
) -> go.Figure:
    """Soups of three ingredients on a ternary plot coloured by `metric` (in percent).

    Only convex soups of the three `corners` (ingredient indices) lie on a ternary plot: soups
    with a weight outside [0, 1] (extrapolation) or on another ingredient are skipped, counted
    in a note under the plot and flagged in the rows (`on_ternary`, `skipped_because`).
    `current` (K,) is marked with a star when it lies on the simplex, else named in the note.
    """
    return draw_ternary(ternary_data(records, metric, corners, current, labels), paper)


def draw_ternary(data: TernaryData, paper: bool = False) -> go.Figure:
    """The ternary plot of `data` at a fixed height: its soups coloured by accuracy (each point's
    weights in `customdata`, for clicks), the current soup's star, the notes underneath; rows
    attached, in paper or screen style."""
    shown, labels = data.shown, data.labels
    a, b, c = ([r.weights[corner] for r in shown] for corner in data.corners)
    fig = go.Figure(go.Scatterternary(
        a=a, b=b, c=c, mode="markers", name="soups", cliponaxis=False,
        marker={"color": [percent(r.accuracy) for r in shown], "coloraxis": "coloraxis",
                "size": 13, "line": {"width": 0.5, "color": "white"}},
        hovertext=[hover_text(r, labels) for r in shown],
        hovertemplate="%{hovertext}<extra></extra>",
        customdata=[[float(w) for w in r.weights] for r in shown],  # each point's soup, for clicks
    ))
    if data.star:
        fig.add_trace(_current_star(data))
    notes = "<br>".join(data.notes)
    fig.update_layout(  # a fixed height the triangle fills: its width follows, whatever the page width
        height=TERNARY_HEIGHT, margin={"l": 60, "r": 20, "t": 60, "b": 16 + 15 * len(notes.split("<br>"))},
        ternary={"sum": 1, **_ternary_axes(data), "domain": {"x": [0, 0.86], "y": [0.06, 0.93]}},
        coloraxis={"colorbar": {"title": {"text": f"{data.first.metric} (%)"}, "len": 0.75, "thickness": 16}},
        title={"text": data.title}, showlegend=False,
    )
    if notes:
        fig.add_annotation(text=notes, showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0, yanchor="top", font={"size": 11})
    attach_rows(fig, "ternary", data.rows, data.family, metric_name(data.first), data.current)
    return apply_style(fig, paper)


def _skipped_note(reasons: Sequence[str]) -> list[str]:
    """The note on soups left off a ternary plot (by `_off_simplex` reason), or none."""
    extrapolated, elsewhere = reasons.count("extrapolation"), reasons.count("other ingredients")
    if not (extrapolated or elsewhere):
        return []
    parts = [f"{extrapolated} extrapolated soups (weights outside [0, 1])"]
    parts += [f"{elsewhere} soups with weight on other ingredients"]
    parts = [part for part in parts if not part.startswith("0 ")]
    return [f"Not shown: {' and '.join(parts)}:<br>a ternary plot holds only convex soups of its three corners."]


def _current_star(data: TernaryData) -> go.Scatterternary:
    """The current soup as a star, its hover the evaluation or '(not evaluated)'."""
    current, corners, labels = data.current, data.corners, data.labels
    text = hover_text(data.current_record, labels) if data.current_record else \
        f"{soup_label(current, labels)} (not evaluated)"
    return go.Scatterternary(
        a=[current[corners[0]]], b=[current[corners[1]]], c=[current[corners[2]]],
        mode="markers", name="current soup", hovertext=[text], cliponaxis=False,
        marker={"symbol": "star", "size": 20, "color": "#D55E00", "line": {"width": 1}},
        hovertemplate="%{hovertext}<extra>current soup</extra>",
    )


def _ternary_axes(data: TernaryData) -> dict:
    """The three axes, named by their corners in bold; inner ticks only: 0 and 1 sit on the corners,
    where they collided with the corner names."""
    axis = {"min": 0, "linewidth": 1, "ticks": "outside", "tickvals": [0.2, 0.4, 0.6, 0.8], "tickfont": {"size": 11}}
    return {f"{k}axis": {**axis, "title": {"text": f"<b>{data.labels[corner]}</b>", "font": {"size": 14}}}
            for k, corner in zip("abc", data.corners, strict=True)}


def ternary_points(fig: go.Figure) -> list[list[float]]:
    """Weights of the points of a `ternary_figure`'s first trace (carried as its `customdata`), in
    trace order, so a clicked point index maps back to its soup (`present.simplex_figures.picked_weights`)."""
    points = fig.data[0].customdata if fig.data else None
    return [tidy([float(w) for w in weights]) for weights in (points if points is not None else [])]


def _off_simplex(weights: Sequence[float], corners: Sequence[int]) -> str:
    """'' if `weights` is a convex soup of `corners`, else why it cannot be on their ternary."""
    if any(abs(w) > TOLERANCE for i, w in enumerate(weights) if i not in corners):
        return "other ingredients"
    if any(weights[c] < -TOLERANCE or weights[c] > 1 + TOLERANCE for c in corners):
        return "extrapolation"
    return ""


def interpolation_figure(
    records: Sequence[Record], i: int, j: int, metrics: Sequence[Metric] | None = None,
    current: Sequence[float] | None = None, labels: Sequence[str] | None = None,
    paper: bool = False,
) -> go.Figure:
    """Accuracy (%) along the path α·θ_i + (1 − α)·θ_j with 95% bands, one line per metric.

    α = 0 is ingredient j and α = 1 ingredient i (as in `soups.weights.interpolation_line`), both
    marked; α outside [0, 1] is extrapolation, shaded. Records with weight on any other
    ingredient are ignored; `current` (K,) is a dashed line when it lies on the path.
    """
    on_line = [r for r in records if _off_simplex(r.weights, (i, j)) != "other ingredients"]
    if not on_line:
        raise SoupvizError("No results lie on this interpolation path; evaluate the line first.")
    keys = [select(on_line, m)[0].spec for m in metrics] if metrics else \
        list(dict.fromkeys(r.spec for r in on_line))
    labels = list(labels or on_line[0].ingredients)
    fig, rows, alphas = go.Figure(), [], []
    for index, key in enumerate(keys):
        series = sorted(select(on_line, key), key=lambda r: r.weights[i])
        colour, x = OKABE_ITO[index % len(OKABE_ITO)], [r.weights[i] for r in series]
        alphas += x
        band = {"mode": "lines", "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip",
                "legendgroup": key}
        fig.add_trace(go.Scatter(x=x, y=[percent(r.ci_high) for r in series], **band))
        fig.add_trace(go.Scatter(x=x, y=[percent(r.ci_low) for r in series], fill="tonexty",
                                 fillcolor=rgba(colour, 0.2), **band))
        fig.add_trace(go.Scatter(
            x=x, y=[percent(r.accuracy) for r in series], mode="lines+markers", legendgroup=key,
            name=series_name(series[0]), line={"color": colour},
            hovertext=[f"α = {r.weights[i]:.3g}<br>{hover_text(r, labels)}" for r in series],
            hovertemplate="%{hovertext}<extra></extra>",
        ))
        rows += [{"alpha": r.weights[i], **r.row()} for r in series]
    for x0, x1 in ((min(alphas), 0.0), (1.0, max(alphas))):
        if x1 - x0 > TOLERANCE:
            fig.add_vrect(x0=x0, x1=x1, fillcolor="grey", opacity=0.12, line_width=0,
                          annotation_text="extrapolation", annotation_position="top left")
    for alpha, name in ((0.0, labels[j]), (1.0, labels[i])):
        fig.add_vline(x=alpha, line_dash="dot", line_color="grey", line_width=1.5,
                      annotation_text=name, annotation_position="bottom right")
    if current is not None and _off_simplex(current, (i, j)) != "other ingredients":
        fig.add_vline(x=current[i], line_dash="dash", line_color="#D55E00", line_width=1.5,
                      annotation_text="current soup")
    fig.update_layout(
        xaxis_title=f"α: weight on {labels[i]} (1 − α on {labels[j]})", yaxis_title="Accuracy (%)",
        title={"text": f"Interpolation {labels[j]} → {labels[i]}<br><sup>{images_note(on_line)}</sup>"},
        legend=BOTTOM_LEGEND,
    )
    names = " ".join(metric_name(select(on_line, key)[0]) for key in keys)
    attach_rows(fig, "interpolation", rows, family_of(on_line),
                f"{labels[j]} to {labels[i]} {names}", current)
    return apply_style(fig, paper)
