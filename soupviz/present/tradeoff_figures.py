"""The trade-off between two metrics over a grid of soups (clean against robust accuracy by default):
each group's Pareto front, output-space ensembles beside the weight-space soups, ingredients and
baselines labelled. `tradeoff_data` decides what is shown, from records; `draw_tradeoff` draws it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from soupviz.errors import SoupvizError
from soupviz.evaluate.merges import MERGE_NAMES
from soupviz.present.figure_export import OKABE_ITO, apply_style, attach_rows, rgba
from soupviz.present.label_placement import label_positions
from soupviz.present.labels import metric_name, metric_title, soup_label
from soupviz.present.soup_figures import Metric, family_of, hover_text, one_hot_index, percent, select
from soupviz.results.records import Record
from soupviz.soups.weights import weights_key

BARS_ON_ALL_UP_TO = 60  # more soups than this: intervals on the Pareto front only, or the bars hide the points
GROUPS = {"soups": ("weight-space soups", "circle", 3, "solid"),
          "ensembles": ("output-space ensembles", "diamond", 4, "dash"),
          "ties": (f"{MERGE_NAMES['ties']}s", "triangle-down", 5, "dot"),
          "dare": (f"{MERGE_NAMES['dare']}s", "x", 2, "dashdot")}
FRONTS_ONLY_NOTE = ("<br><span style='font-size:11px'>95% intervals on the Pareto fronts only, for legibility; "
                    "every interval is in the CSV</span>")
Pair = tuple[Record, Record]  # (x record, y record) of one soup


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


def paired(
    records: Sequence[Record], x_metric: Metric, y_metric: Metric
) -> list[tuple[Record, Record]]:
    """(x record, y record) for every soup with both metrics, in the order of the x records."""
    ys = {weights_key(r.weights): r for r in select(records, y_metric)}
    xs = select(records, x_metric)
    return [(x, ys[weights_key(x.weights)]) for x in xs if weights_key(x.weights) in ys]


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


@dataclass(frozen=True)
class TradeoffGroup:
    """One group of soups on the trade-off: `key` ('soups' or 'ensembles', see `GROUPS`), its record
    pairs, its Pareto front (indices into `pairs`, left to right) and the points whose 95%
    intervals are drawn (all, or only the front of a group over `BARS_ON_ALL_UP_TO`)."""

    key: str
    pairs: list[Pair]
    front: list[int]
    barred: set[int]

    def front_points(self) -> list[tuple[float, float]]:
        """The front as (x, y) in percent, left to right."""
        return [(percent(self.pairs[k][0].accuracy), percent(self.pairs[k][1].accuracy)) for k in self.front]


@dataclass(frozen=True)
class NamedPoint:
    """A point drawn with its name beside it: an ingredient (a one-hot soup) or a baseline."""

    name: str
    x: Record
    y: Record
    baseline: bool


@dataclass(frozen=True)
class TradeoffData:
    """What a trade-off figure shows, decided from records before any drawing.

    `named` holds the ingredients first, then the baselines; `current` the records of the current
    soup where it was evaluated, `weights` the current soup as given (stored with the rows);
    `rows` are the figure's CSV rows; `metric` names both metrics for the export file name.
    """

    groups: list[TradeoffGroup]
    named: list[NamedPoint]
    current: Pair | None
    labels: list[str]
    x_title: str
    y_title: str
    title: str
    rows: list[dict]
    family: str
    metric: str
    weights: Sequence[float] | None


def tradeoff_data(
    records: Sequence[Record], y_metric: Metric, x_metric: Metric = "clean",
    current: Sequence[float] | None = None, ensembles: Sequence[Record] | None = None,
    labels: Sequence[str] | None = None, baselines: Sequence[Record] | None = None,
    baseline_labels: Mapping[str, str] | None = None, *,
    merges: Mapping[str, Sequence[Record]] | None = None,
) -> TradeoffData:
    """What `tradeoff_figure` draws (see there for the arguments). Raises a `SoupvizError` when a
    metric has no records or no soup has both."""
    pairs = {"soups": paired(records, x_metric, y_metric)}
    if ensembles:
        pairs["ensembles"] = paired(ensembles, x_metric, y_metric)
    for method, merged in (merges or {}).items():
        if merged and (found := paired(merged, x_metric, y_metric)):
            pairs[method] = found
    if not pairs["soups"]:
        names = [getattr(m, "key", m) for m in (x_metric, y_metric)]
        raise SoupvizError(f"No soup has both {names[0]!r} and {names[1]!r}; evaluate both.")
    soups = pairs["soups"]
    labels = list(labels or soups[0][0].ingredients)
    groups = [_group(key, found) for key, found in pairs.items()]
    named = [NamedPoint(labels[one_hot_index(a.weights)], a, b, False) for a, b in soups
             if one_hot_index(a.weights) is not None]
    named += [NamedPoint((baseline_labels or {}).get(a.family, a.ingredients[0]), a, b, True)
              for a, b in baseline_pairs(baselines or [], x_metric, y_metric)]
    rows = [_row(group.key, a, b, k in group.front, labels) for group in groups for k, (a, b) in enumerate(group.pairs)]
    rows += [_row("baselines", point.x, point.y, False, [point.name]) for point in named if point.baseline]
    key = None if current is None else weights_key(current)
    first_x, first_y = soups[0]
    x_title = metric_title(first_x, [a for a, _ in soups])
    if any(len(group.pairs) > BARS_ON_ALL_UP_TO for group in groups):
        x_title += FRONTS_ONLY_NOTE
    what = "clean and robust accuracy" if first_x.kind == "clean" else "two metrics"
    return TradeoffData(
        groups=groups, named=named, current=next((p for p in soups if weights_key(p[0].weights) == key), None),
        labels=labels, x_title=x_title, y_title=metric_title(first_y, [b for _, b in soups]),
        title=f"Trade-off between {what}", rows=rows, family=family_of(records),
        metric=f"{metric_name(first_x)} vs {metric_name(first_y)}", weights=current,
    )


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
    data = tradeoff_data(records, y_metric, x_metric, current, ensembles, labels, baselines, baseline_labels,
                          merges=merges)
    return draw_tradeoff(data, paper)


def draw_tradeoff(data: TradeoffData, paper: bool = False) -> go.Figure:
    """The trade-off figure of `data`: per group its points and front, the named points with their
    labels placed apart, the current soup as a star; rows attached, in paper or screen style."""
    fig = go.Figure()
    for group in data.groups:
        _draw_group(fig, group, data.labels)
    _draw_named(fig, data)
    if data.current:
        a, b = data.current
        fig.add_trace(go.Scatter(
            x=[percent(a.accuracy)], y=[percent(b.accuracy)], mode="markers",
            name="current soup", hoverinfo="skip",
            marker={"symbol": "star", "size": 18, "color": OKABE_ITO[0], "line": {"width": 1}},
        ))
    # the title starts over the plot area, clear of the (long, two-line) y-axis title beside it
    fig.update_layout(xaxis_title=data.x_title, yaxis_title=data.y_title,
                      title={"text": data.title, "xref": "paper", "x": 0, "xanchor": "left"})
    attach_rows(fig, "tradeoff", data.rows, data.family, data.metric, data.weights)
    return apply_style(fig, paper)


def _group(key: str, pairs: list[Pair]) -> TradeoffGroup:
    front = pareto_front([(a.accuracy, b.accuracy) for a, b in pairs])
    barred = set(range(len(pairs))) if len(pairs) <= BARS_ON_ALL_UP_TO else set(front)
    return TradeoffGroup(key, pairs, front, barred)


def _draw_group(fig: go.Figure, group: TradeoffGroup, labels: Sequence[str]) -> None:
    """A group's points (hover: the soup and both results) and its Pareto front as a line."""
    name, symbol, colour, dash = GROUPS[group.key]
    colour, pairs = OKABE_ITO[colour], group.pairs
    fig.add_trace(go.Scatter(
        x=[percent(a.accuracy) for a, _ in pairs], y=[percent(b.accuracy) for _, b in pairs],
        mode="markers", name=name, hovertemplate="%{hovertext}<extra></extra>",
        marker={"color": colour, "size": 8, "symbol": symbol, "opacity": 0.8},
        error_x=_bars([a for a, _ in pairs], colour, group.barred),
        error_y=_bars([b for _, b in pairs], colour, group.barred),
        hovertext=[f"{hover_text(a, labels)}<br>{hover_text(b)}" for a, b in pairs],
    ))
    front = group.front_points()
    fig.add_trace(go.Scatter(
        x=[x for x, _ in front], hoverinfo="skip", mode="lines",
        y=[y for _, y in front], name=f"Pareto front ({group.key})",
        line={"color": colour, "dash": dash, "width": 2},
    ))


def _draw_named(fig: go.Figure, data: TradeoffData) -> None:
    """Ingredients as labelled black squares, baselines as labelled triangles; a label with no free
    spot beside its point is an annotation joined to it by a line (`label_positions`)."""
    spots = [(percent(p.x.accuracy), percent(p.y.accuracy)) for p in data.named]
    everything = [(percent(a.accuracy), percent(b.accuracy)) for group in data.groups for a, b in group.pairs]
    positions = (label_positions(spots, [p.name for p in data.named], everything + spots,
                                 lines=[group.front_points() for group in data.groups], dots=everything,
                                 leaders=True) if spots else [])
    for (x, y), point, position in zip(spots, data.named, positions, strict=True):
        if not isinstance(position, str):
            fig.add_annotation(x=x, y=y, text=point.name, ax=position[0], ay=position[1], showarrow=True,
                               arrowhead=0, arrowwidth=1, standoff=6)
    beside = [(p, s if isinstance(s, str) else None) for p, s in zip(data.named, positions, strict=True)]
    ingredients = [(p, s) for p, s in beside if not p.baseline]
    if ingredients:
        fig.add_trace(go.Scatter(
            x=[percent(p.x.accuracy) for p, _ in ingredients], mode="markers+text", hoverinfo="skip",
            y=[percent(p.y.accuracy) for p, _ in ingredients], name="ingredients",
            text=[p.name if s else "" for p, s in ingredients],
            textposition=[s or "top center" for _, s in ingredients],
            marker={"symbol": "square", "size": 11, "color": "#000000"},
        ))
    for point, position in beside:
        if point.baseline:
            fig.add_trace(_baseline_trace(point, position))


def _baseline_trace(point: NamedPoint, position: str | None) -> go.Scatter:
    """A baseline's triangle with its intervals, its name beside it at `position` (None: the name is
    an annotation instead)."""
    a, b = point.x, point.y
    return go.Scatter(
        x=[percent(a.accuracy)], y=[percent(b.accuracy)], mode="markers+text", name=f"baseline: {point.name}",
        text=[point.name if position else ""], textposition=position or "top center",
        hovertemplate="%{hovertext}<extra></extra>",
        hovertext=[f"{point.name}<br>{hover_text(a)}<br>{hover_text(b)}"],
        marker={"symbol": "triangle-up", "size": 13, "color": OKABE_ITO[4], "line": {"width": 1}},
        error_x=_bars([a], OKABE_ITO[4]), error_y=_bars([b], OKABE_ITO[4]),
    )


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
