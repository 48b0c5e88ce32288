"""Trade-offs: the Pareto front, clean against robust accuracy over a grid of soups (with output-
space ensembles beside the weight-space soups), and robust accuracy against the attack budget."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from soupviz.errors import SoupvizError
from soupviz.evaluate.merges import MERGE_NAMES
from soupviz.evaluate.methods import attack_label
from soupviz.present.figure_export import OKABE_ITO, apply_style, attach_rows, rgba
from soupviz.present.labels import image_counts, metric_name, metric_title, soup_label
from soupviz.present.soup_figures import (
    BOTTOM_LEGEND,
    Metric,
    NamedSoups,
    family_of,
    hover_text,
    images_note,
    one_hot_index,
    percent,
    select,
)
from soupviz.results.records import Record
from soupviz.soups.weights import weights_key
from soupviz.threats import THREAT_LABELS, format_budget

BARS_ON_ALL_UP_TO = 60  # more soups than this: intervals on the Pareto front only, or the bars hide the points
GROUPS = {"soups": ("weight-space soups", "circle", 3, "solid"),
          "ensembles": ("output-space ensembles", "diamond", 4, "dash"),
          "ties": (f"{MERGE_NAMES['ties']}s", "triangle-down", 5, "dot"),
          "dare": (f"{MERGE_NAMES['dare']}s", "x", 2, "dashdot")}


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points (N, 2) that no other point dominates, maximising both coordinates.

    A point is dominated when another is at least as good in both coordinates and better in
    one; equal points are both kept. Indices come sorted by the first coordinate, so they
    trace the front from left to right.

    Example:
        >>> pareto_front([(0.9, 0.3), (0.8, 0.5), (0.7, 0.4), (0.9, 0.2)])
        [1, 0]
    """
    order = sorted(range(len(points)), key=lambda k: (-points[k][0], -points[k][1]))
    front, best = [], None  # best: the highest point seen so far, among those further right
    for k in order:
        if best is None or points[k][1] > best[1] or tuple(points[k]) == best:
            front.append(k)
            best = tuple(points[k])
    return sorted(front, key=lambda k: (points[k][0], -points[k][1]))


TEXT_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "top left",
                  "bottom right", "bottom left")
CHAR_PX, LINE_PX, GAP_PX = 7.5, 16.0, 8.0  # a 13 px label's character width and line height; marker gap
DOT_PX = 4.0  # half the size of an unlabelled soup's marker
# where a label that finds no free spot beside its point goes, joined to it by a line: rings of 45 to
# 105 px, below and to the right first (away from the upper-left Pareto front of accuracy plots)
LEADER_OFFSETS = tuple((round(r * math.cos(math.radians(a)), 1), round(r * math.sin(math.radians(a)), 1))
                       for r in (45, 65, 85, 105) for a in (45, 135, 90, 0, 180, 315, 225, 270))
LINE_STEP_PX = 2.0  # a polyline blocks labels as 2 px boxes at most this far apart


def label_positions(
    points: Sequence[tuple[float, float]], texts: Sequence[str], all_points: Sequence[tuple[float, float]],
    size: tuple[int, int] = (450, 300), lines: Sequence[Sequence[tuple[float, float]]] = (),
    dots: Sequence[tuple[float, float]] = (), leaders: bool = False,
) -> list[str | tuple[float, float]]:
    """Plotly text positions for labelled points such that no two labels overlap, when possible.

    Each label tries `TEXT_POSITIONS` in order and takes the first whose box (estimated from its
    length at 13 px) overlaps neither a label placed before, nor a labelled marker, nor one of
    `lines` (polylines drawn on the plot, e.g. Pareto fronts) or `dots` (unlabelled markers); if
    none is free, with `leaders` the first free spot farther out (`LEADER_OFFSETS`), returned as
    the (dx, dy) pixel offset of a label joined to its point by a line (an arrow annotation's ax,
    ay), else the position overlapping least. Boxes are laid out in pixels of a plot area of `size` (width, height)
    whose axes span `all_points`, as Plotly's autorange roughly does.
    """
    xs, ys = [p[0] for p in all_points], [p[1] for p in all_points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0

    def pixels(x: float, y: float) -> tuple[float, float]:
        return (x - min(xs)) / span_x * size[0] * 0.9, (max(ys) - y) / span_y * size[1] * 0.9

    markers = [pixels(*p) for p in points]
    taken = [(x - GAP_PX, y - GAP_PX, x + GAP_PX, y + GAP_PX) for x, y in markers]
    taken += [(x - DOT_PX, y - DOT_PX, x + DOT_PX, y + DOT_PX) for x, y in (pixels(*p) for p in dots)]
    for line in lines:
        traced = [pixels(*p) for p in line]
        for (x0, y0), (x1, y1) in zip(traced, traced[1:], strict=False):
            pieces = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / LINE_STEP_PX))
            taken += [(x - 1, y - 1, x + 1, y + 1) for t in range(pieces + 1)
                      for x, y in [(x0 + (x1 - x0) * t / pieces, y0 + (y1 - y0) * t / pieces)]]
    chosen = []
    for (x, y), text in zip(markers, texts, strict=True):
        width = CHAR_PX * len(text)

        def box(position: str, x: float = x, y: float = y, width: float = width) -> tuple[float, ...]:
            vertical, horizontal = position.split()
            top = {"top": y - GAP_PX - LINE_PX, "bottom": y + GAP_PX, "middle": y - LINE_PX / 2}[vertical]
            left = {"center": x - width / 2, "right": x + GAP_PX, "left": x - GAP_PX - width}[horizontal]
            return left, top, left + width, top + LINE_PX

        def clash(position: str) -> float:
            return overlap(box(position), taken)

        best = next((p for p in TEXT_POSITIONS if clash(p) == 0), None)
        if best is None and leaders:
            def away(offset: tuple[float, float], x: float = x, y: float = y, width: float = width) -> tuple:
                cx, cy = x + offset[0], y + offset[1]
                return cx - width / 2, cy - LINE_PX / 2, cx + width / 2, cy + LINE_PX / 2

            free = next((o for o in LEADER_OFFSETS if overlap(away(o), taken) == 0), None)
            if free is not None:
                taken.append(away(free))
                chosen.append(free)
                continue
        best = best or min(TEXT_POSITIONS, key=clash)
        taken.append(box(best))
        chosen.append(best)
    return chosen


def overlap(a: tuple[float, ...], boxes: Sequence[tuple[float, ...]]) -> float:
    """The area box `a` (left, top, right, bottom) shares with `boxes`, in square pixels."""
    return sum(max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
               for b in boxes)


def paired(
    records: Sequence[Record], x_metric: Metric, y_metric: Metric
) -> list[tuple[Record, Record]]:
    """(x record, y record) for every soup with both metrics, in the order of the x records."""
    ys = {weights_key(r.weights): r for r in select(records, y_metric)}
    xs = select(records, x_metric)
    return [(x, ys[weights_key(x.weights)]) for x in xs if weights_key(x.weights) in ys]


def tradeoff_figure(
    records: Sequence[Record], y_metric: Metric, x_metric: Metric = "clean",
    current: Sequence[float] | None = None, ensembles: Sequence[Record] | None = None,
    labels: Sequence[str] | None = None, paper: bool = False,
    baselines: Sequence[Record] | None = None, baseline_labels: dict[str, str] | None = None,
    merges: dict[str, Sequence[Record]] | None = None,
) -> go.Figure:
    """Scatter of `x_metric` against `y_metric` (%, clean against robust by default).

    Error bars are 95% Wilson intervals (on a group of more than `BARS_ON_ALL_UP_TO` soups, only
    on its Pareto front, said in a note; the CSV keeps every interval); each group's Pareto
    front (maximising both) is a line; ingredients (one-hot soups) are labelled squares and `current` (K,) is a star.
    `ensembles` (records from `soupviz.evaluate.ensembles` on the same images) form their own group
    and front, to compare weight-space soups with output-space ensembles. `baselines`
    (records from `soupviz.evaluate.baselines`, e.g. an SAT model) are labelled triangles, named by
    `baseline_labels` (record family -> label) or their checkpoint name; they join no front.
    `merges` (method -> records, `soupviz.evaluate.merge_curves.merge_curves`: TIES or DARE at the
    soups' coordinates, same images and attack) form a group and front each, beside the linear soup's.
    """
    groups = {"soups": paired(records, x_metric, y_metric)}
    if ensembles:
        groups["ensembles"] = paired(ensembles, x_metric, y_metric)
    for method, merged in (merges or {}).items():
        if merged and (pairs := paired(merged, x_metric, y_metric)):
            groups[method] = pairs
    if not groups["soups"]:
        names = [getattr(m, "key", m) for m in (x_metric, y_metric)]
        raise SoupvizError(f"No soup has both {names[0]!r} and {names[1]!r}; evaluate both.")
    first_x, first_y = groups["soups"][0]
    labels = list(labels or first_x.ingredients)
    fig, rows, fronts = go.Figure(), [], {}
    for group, pairs in groups.items():
        name, symbol, colour, dash = GROUPS[group]
        colour = OKABE_ITO[colour]
        front = pareto_front([(a.accuracy, b.accuracy) for a, b in pairs])
        barred = set(range(len(pairs))) if len(pairs) <= BARS_ON_ALL_UP_TO else set(front)
        fig.add_trace(go.Scatter(
            x=[percent(a.accuracy) for a, _ in pairs], y=[percent(b.accuracy) for _, b in pairs],
            mode="markers", name=name, hovertemplate="%{hovertext}<extra></extra>",
            marker={"color": colour, "size": 8, "symbol": symbol, "opacity": 0.8},
            error_x=_bars([a for a, _ in pairs], colour, barred),
            error_y=_bars([b for _, b in pairs], colour, barred),
            hovertext=[f"{hover_text(a, labels)}<br>{hover_text(b)}"
                       for a, b in pairs],
        ))
        fig.add_trace(go.Scatter(
            x=[percent(pairs[k][0].accuracy) for k in front], hoverinfo="skip", mode="lines",
            y=[percent(pairs[k][1].accuracy) for k in front], name=f"Pareto front ({group})",
            line={"color": colour, "dash": dash, "width": 2},
        ))
        rows += [_row(group, a, b, k in front, labels) for k, (a, b) in enumerate(pairs)]
        fronts[group] = [(percent(pairs[k][0].accuracy), percent(pairs[k][1].accuracy)) for k in front]
    ingredients = [(a, b) for a, b in groups["soups"] if one_hot_index(a.weights) is not None]
    extra = baseline_pairs(baselines or [], x_metric, y_metric)
    names = [labels[one_hot_index(a.weights)] for a, _ in ingredients]
    names += [(baseline_labels or {}).get(a.family, a.ingredients[0]) for a, _ in extra]
    spots = [(percent(a.accuracy), percent(b.accuracy)) for a, b in ingredients + extra]
    everything = [(percent(a.accuracy), percent(b.accuracy)) for pairs in groups.values() for a, b in pairs]
    positions = (label_positions(spots, names, everything + spots, lines=fronts.values(), dots=everything,
                                 leaders=True) if spots else [])
    leader = [not isinstance(p, str) for p in positions]  # drawn as annotations joined to their points
    for (x, y), name, position in zip(spots, names, positions, strict=True):
        if not isinstance(position, str):
            fig.add_annotation(x=x, y=y, text=name, ax=position[0], ay=position[1], showarrow=True, arrowhead=0,
                               arrowwidth=1, standoff=6)
    if ingredients:
        fig.add_trace(go.Scatter(
            x=[percent(a.accuracy) for a, _ in ingredients], mode="markers+text", hoverinfo="skip",
            y=[percent(b.accuracy) for _, b in ingredients], name="ingredients",
            text=[n if not lead else "" for n, lead in zip(names, leader[: len(ingredients)], strict=False)],
            textposition=[p if isinstance(p, str) else "top center" for p in positions[: len(ingredients)]],
            marker={"symbol": "square", "size": 11, "color": "#000000"},
        ))
    for (a, b), label, position in zip(extra, names[len(ingredients) :], positions[len(ingredients) :], strict=True):
        beside = isinstance(position, str)
        fig.add_trace(go.Scatter(
            x=[percent(a.accuracy)], y=[percent(b.accuracy)], mode="markers+text", name=f"baseline: {label}",
            text=[label if beside else ""], textposition=position if beside else "top center",
            hovertemplate="%{hovertext}<extra></extra>",
            hovertext=[f"{label}<br>{hover_text(a)}<br>{hover_text(b)}"],
            marker={"symbol": "triangle-up", "size": 13, "color": OKABE_ITO[4], "line": {"width": 1}},
            error_x=_bars([a], OKABE_ITO[4]), error_y=_bars([b], OKABE_ITO[4]),
        ))
        rows.append(_row("baselines", a, b, False, [label]))
    match = [(a, b) for a, b in groups["soups"] if current is not None
             and weights_key(a.weights) == weights_key(current)]
    if match:
        fig.add_trace(go.Scatter(
            x=[percent(match[0][0].accuracy)], y=[percent(match[0][1].accuracy)], mode="markers",
            name="current soup", hoverinfo="skip",
            marker={"symbol": "star", "size": 18, "color": OKABE_ITO[0], "line": {"width": 1}},
        ))
    what = "clean and robust accuracy" if first_x.kind == "clean" else "two metrics"
    x_title = metric_title(first_x, [a for a, _ in groups["soups"]])
    if max(len(pairs) for pairs in groups.values()) > BARS_ON_ALL_UP_TO:
        x_title += ("<br><span style='font-size:11px'>95% intervals on the Pareto fronts only, for legibility; "
                    "every interval is in the CSV</span>")
    # the title starts over the plot area, clear of the (long, two-line) y-axis title beside it
    fig.update_layout(xaxis_title=x_title, yaxis_title=metric_title(first_y, [b for _, b in groups["soups"]]),
                      title={"text": f"Trade-off between {what}", "xref": "paper", "x": 0, "xanchor": "left"})
    attach_rows(fig, "tradeoff", rows, family_of(records),
                f"{metric_name(first_x)} vs {metric_name(first_y)}", current)
    return apply_style(fig, paper)


def baseline_pairs(
    records: Sequence[Record], x_metric: Metric, y_metric: Metric
) -> list[tuple[Record, Record]]:
    """(x record, y record) for every baseline with both metrics. Each baseline is a family of
    its own with the single weight 1, so records pair by family, not by weights."""
    try:
        xs, ys = select(records, x_metric), {r.family: r for r in select(records, y_metric)}
    except SoupvizError:  # no baseline has one of the metrics
        return []
    return [(x, ys[x.family]) for x in xs if x.family in ys]


def _bars(records: Sequence[Record], colour: str, shown: set[int] | None = None) -> dict:
    """Asymmetric, translucent error bars (%) from each record's 95% interval, on the records
    whose index is in `shown` (default all)."""
    def on(k: int) -> bool:
        return shown is None or k in shown

    return {
        "type": "data", "symmetric": False, "thickness": 1, "width": 0, "color": rgba(colour, 0.35),
        "array": [percent(r.ci_high - r.accuracy) if on(k) else 0.0 for k, r in enumerate(records)],
        "arrayminus": [percent(r.accuracy - r.ci_low) if on(k) else 0.0 for k, r in enumerate(records)],
    }


def _row(group: str, x: Record, y: Record, on_front: bool, labels: Sequence[str]) -> dict:
    """One CSV row of the trade-off: the soup, both metrics with intervals, Pareto membership (the
    BatchNorm rule from whichever is a measurement: a corruption mean is a summary)."""
    return {
        "group": group, "soup": soup_label(x.weights, labels), "weights": x.row()["weights"],
        "x_metric": x.metric, "x_accuracy": x.accuracy, "x_ci_low": x.ci_low,
        "x_ci_high": x.ci_high, "x_method": x.method, "y_metric": y.metric,
        "y_accuracy": y.accuracy, "y_ci_low": y.ci_low, "y_ci_high": y.ci_high,
        "y_method": y.method, "pareto": on_front, "n": x.n, "images": x.images, "seed": x.seed,
        "batchnorm": getattr(x, "batchnorm", getattr(y, "batchnorm", "")), "family": x.family,
    }


def budget_curves(
    records: Sequence[Record], soups: NamedSoups | None = None,
    labels: Sequence[str] | None = None, paper: bool = False,
) -> go.Figure:
    """Robust accuracy (%, upper bounds) against the budget ε: one panel per threat, one line
    with a 95% band per soup and attack. A soup's clean accuracy, if present, is its ε = 0.
    L∞ budgets are read in units of 1/255.

    Args:
        soups: (name, weights) to draw; default every soup with an attack record.
    """
    attacked = [r for r in records if r.kind == "attack"]
    if not attacked:
        raise SoupvizError("No robust-accuracy results to plot against the budget; "
                           "evaluate some threats first.")
    labels = list(labels or attacked[0].ingredients)
    if soups is None:
        keys = dict.fromkeys(weights_key(r.weights) for r in attacked)
        soups = [(soup_label(w, labels), w) for w in keys]
    threats = list(dict.fromkeys(r.measure.threat for r in attacked))
    fig = make_subplots(rows=1, cols=len(threats), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[THREAT_LABELS.get(t, t) for t in threats])
    clean = {weights_key(r.weights): r for r in records if r.kind == "clean"}
    rows, colours = [], {}
    for col, threat in enumerate(threats, start=1):
        unit = 255 if threat == "linf" else 1
        lines: dict[tuple, list[Record]] = {}  # (soup, attack settings) -> records
        for r in attacked:
            if r.measure.threat == threat:
                setting = (r.measure.attack, r.measure.steps, r.measure.restarts, r.measure.targets)
                lines.setdefault((weights_key(r.weights), setting), []).append(r)
        for name, weights in soups:
            for (key, setting), series in lines.items():
                if key != weights_key(weights):
                    continue
                points = ([clean[key]] if key in clean else []) + sorted(series, key=lambda r: r.measure.eps)
                eps = [0.0 if p.kind == "clean" else p.measure.eps for p in points]
                x = [e * unit for e in eps]
                colour = OKABE_ITO[len(colours) % len(OKABE_ITO)]
                colour = colours.setdefault((name, setting), colour)
                legend = f"{name} ({attack_label(series[0].measure)}, {image_counts(points)})"
                for bound, fill in (("ci_high", None), ("ci_low", "tonexty")):
                    fig.add_trace(go.Scatter(
                        x=x, y=[percent(getattr(p, bound)) for p in points], mode="lines",
                        line={"width": 0}, fill=fill, fillcolor=rgba(colour, 0.18),
                        showlegend=False, hoverinfo="skip", legendgroup=legend), row=1, col=col)
                fig.add_trace(go.Scatter(
                    x=x, y=[percent(p.accuracy) for p in points], mode="lines+markers", name=legend,
                    legendgroup=legend, showlegend=col == 1, line={"color": colour},
                    hovertext=[f"ε = {_budget_text(threat, e)}<br>{hover_text(p, labels)}"
                               for e, p in zip(eps, points, strict=True)],
                    hovertemplate="%{hovertext}<extra></extra>"), row=1, col=col)
                rows += [{"soup": name, "threat": threat, "eps": e, **p.row()}
                         for e, p in zip(eps, points, strict=True)]
        ticks = sorted({0.0} | {r.measure.eps for r in attacked if r.measure.threat == threat})
        title = f"ε ({THREAT_LABELS.get(threat, threat)}{', ×1/255' * (unit == 255)})"
        fig.update_xaxes(tickvals=[b * unit for b in ticks], tickangle=0, title_text=title,
                         ticktext=[f"{b * unit:.4g}" for b in ticks], row=1, col=col)
    fig.update_yaxes(title_text="Robust accuracy (%), upper bound", row=1, col=1)
    fig.update_layout(title={"text": "Accuracy against the attack budget (ε = 0: clean accuracy)"
                             f"<br><sup>{images_note(records)}</sup>"},
                      legend=BOTTOM_LEGEND)
    names = " ".join(THREAT_LABELS.get(t, t) for t in threats)
    attach_rows(fig, "budget", rows, family_of(records), names)
    return apply_style(fig, paper)


def _budget_text(threat: str, eps: float) -> str:
    return format_budget(threat, eps) if eps else "0"
