"""Plotly figures of soups in weight space: ternary maps, interpolation paths and accuracy heatmaps,
and what every figure shares: choosing a metric's records and hovers (texts from `soupviz.present.labels`).

Builders take evaluation `Record`s and only arrange them; trade-off and budget plots live in
`tradeoff.py`. Each figure keeps the exact rows it shows in `layout.meta` (`export.figure_csv`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from soupviz.errors import SoupvizError
from soupviz.evaluate.methods import attack_label
from soupviz.present.figure_export import OKABE_ITO, apply_style, attach_rows, rgba
from soupviz.present.labels import (
    BOUND,
    TOLERANCE,
    bounded,
    columns_footnote,
    interval_text,
    method_text,
    metric_name,
    metric_title,
    series_name,
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
    """Hover lines: the soup named with `labels` (left out without them), the accuracy with its
    95% Wilson interval, and the method."""
    soup = f"{soup_label(record.weights, labels)}<br>" if labels is not None else ""
    return f"{soup}{record.metric}: {interval_text(record)} (95% CI, n={record.n})<br>{method_text(record)}"


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
    chosen = select(records, metric)
    labels = list(labels or chosen[0].ingredients)
    if len(set(corners)) != 3 or not all(0 <= c < len(labels) for c in corners):
        raise SoupvizError(f"A ternary plot needs three different ingredients among "
                           f"0..{len(labels) - 1}, got {corners}.")
    shown, rows, skipped = [], [], {"extrapolation": 0, "other ingredients": 0}
    for record in chosen:
        reason = _off_simplex(record.weights, corners)
        if reason:
            skipped[reason] += 1
        else:
            shown.append(record)
        rows.append({**record.row(), "on_ternary": not reason, "skipped_because": reason})
    a, b, c = ([r.weights[corner] for r in shown] for corner in corners)
    fig = go.Figure(go.Scatterternary(
        a=a, b=b, c=c, mode="markers", name="soups", cliponaxis=False,
        marker={"color": [percent(r.accuracy) for r in shown], "coloraxis": "coloraxis",
                "size": 13, "line": {"width": 0.5, "color": "white"}},
        hovertext=[hover_text(r, labels) for r in shown],
        hovertemplate="%{hovertext}<extra></extra>",
        customdata=[[float(w) for w in r.weights] for r in shown],  # each point's soup, for clicks
    ))
    notes = []
    if skipped["extrapolation"] or skipped["other ingredients"]:
        parts = [f"{skipped['extrapolation']} extrapolated soups (weights outside [0, 1])"]
        parts += [f"{skipped['other ingredients']} soups with weight on other ingredients"]
        parts = [part for part in parts if not part.startswith("0 ")]
        notes.append(f"Not shown: {' and '.join(parts)}:<br>"
                     "a ternary plot holds only convex soups of its three corners.")
    if current is not None and _off_simplex(current, corners):
        notes.append(f"The current soup ({soup_label(current, labels)}) is off this simplex.")
    elif current is not None:
        match = next((r for r in chosen if weights_key(r.weights) == weights_key(current)), None)
        text = hover_text(match, labels) if match else \
            f"{soup_label(current, labels)} (not evaluated)"
        fig.add_trace(go.Scatterternary(
            a=[current[corners[0]]], b=[current[corners[1]]], c=[current[corners[2]]],
            mode="markers", name="current soup", hovertext=[text], cliponaxis=False,
            marker={"symbol": "star", "size": 20, "color": "#D55E00", "line": {"width": 1}},
            hovertemplate="%{hovertext}<extra>current soup</extra>",
        ))
        notes.append("★ current soup")
    # Inner ticks only: 0 and 1 sit on the corners, where they collided with the corner names.
    axis = {"min": 0, "linewidth": 1, "ticks": "outside", "tickvals": [0.2, 0.4, 0.6, 0.8], "tickfont": {"size": 11}}
    axes = {f"{k}axis": {**axis, "title": {"text": f"<b>{labels[corner]}</b>", "font": {"size": 14}}}
            for k, corner in zip("abc", corners, strict=True)}
    fig.update_layout(  # a fixed height the triangle fills: its width follows, whatever the page width
        height=TERNARY_HEIGHT, margin={"l": 60, "r": 20, "t": 60, "b": 16 + 15 * len("<br>".join(notes).split("<br>"))},
        ternary={"sum": 1, **axes, "domain": {"x": [0, 0.86], "y": [0.06, 0.93]}},
        coloraxis={"colorbar": {"title": {"text": f"{chosen[0].metric} (%)"}, "len": 0.75, "thickness": 16}},
        title={"text": metric_title(chosen[0], chosen)}, showlegend=False,
    )
    if notes:
        fig.add_annotation(text="<br>".join(notes), showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0, yanchor="top", font={"size": 11})
    attach_rows(fig, "ternary", rows, family_of(chosen), metric_name(chosen[0]), current)
    return apply_style(fig, paper)


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
    if not records:
        raise SoupvizError("No results to show in a heatmap; evaluate some soups first.")
    labels = list(labels or records[0].ingredients)
    if soups is None:
        keys = dict.fromkeys(weights_key(r.weights) for r in records)
        soups = [(soup_label(w, labels), w) for w in keys]
    columns = [select(records, m)[0] for m in (metrics or dict.fromkeys(r.spec for r in records))]
    names = []
    for column in columns:
        twins = sum(other.metric == column.metric for other in columns)
        name = column.metric if twins == 1 else f"{column.metric} ({attack_label(column.measure)})"
        names.append(bounded(name, column.upper_bound))
    index = {(weights_key(r.weights), r.spec): r for r in records}
    index.update(((r.family, r.spec), r) for r in baselines)
    named = {r.family: f"{(baseline_labels or {}).get(r.family, r.ingredients[0])} (baseline)" for r in baselines}
    z, text, hover, rows = [], [], [], []
    rows_in_order = [(name, weights_key(weights), labels) for name, weights in soups] + \
        [(name, family, None) for family, name in named.items()]
    row_keys = [row_key for _, row_key, _ in rows_in_order]
    for name, row_key, mixed in rows_in_order:
        cells = [index.get((row_key, column.spec)) for column in columns]
        z.append([percent(r.accuracy) if r else math.nan for r in cells])
        text.append([f"{percent(r.accuracy):.1f}" if r else "" for r in cells])
        hover.append([f"{name}<br>{hover_text(r, mixed)}" if r else f"{name}: not evaluated"
                      for r in cells])
        rows += [{"soup": name, **r.row()} for r in cells if r]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=[name for name, _ in soups] + list(named.values()), text=text, texttemplate="%{text}",
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", coloraxis="coloraxis",
        xgap=1, ygap=1,
    ))
    fig.update_layout(
        yaxis={"autorange": "reversed", "type": "category"}, xaxis={"type": "category"},
        coloraxis={"colorbar": {"title": {"text": "accuracy (%)"}}},
        title={"text": f"Accuracy (%) per soup and metric<br><sup>{images_note(records)}</sup>"},
    )
    shown = [(name.removesuffix(BOUND), [index[row_key, column.spec] for row_key in row_keys
                                         if (row_key, column.spec) in index])
             for name, column in zip(names, columns, strict=True)]
    fig.update_layout(xaxis_title={"text": columns_footnote(shown), "font": {"size": 11}})
    attach_rows(fig, "heatmap", rows, family_of(records), " ".join(map(metric_name, columns)))
    return apply_style(fig, paper)
