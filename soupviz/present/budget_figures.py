"""Robust accuracy against the attack budget ε: one panel per threat, one line with a 95% band per
soup and attack setting, starting at the soup's clean accuracy. `budget_data` decides what is
shown, from records; `draw_budget_curves` draws it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from soupviz.errors import SoupvizError
from soupviz.evaluate.methods import attack_label
from soupviz.present.figure_export import OKABE_ITO, apply_style, attach_rows, rgba
from soupviz.present.labels import image_counts, soup_label
from soupviz.present.soup_figures import BOTTOM_LEGEND, NamedSoups, family_of, hover_text, images_note, percent
from soupviz.results.records import Record
from soupviz.soups.weights import weights_key
from soupviz.threats import THREAT_LABELS, format_budget


@dataclass(frozen=True)
class BudgetLine:
    """One soup under one attack setting (attack, steps, restarts, targets) at one threat: its
    records in order of budget, the soup's clean record first where there is one, and each one's
    budget `eps` (0 for the clean record). `legend` names the soup, the attack and the image count."""

    soup: str
    setting: tuple
    points: list[Record]
    eps: list[float]
    legend: str


@dataclass(frozen=True)
class BudgetPanel:
    """One threat's panel: its lines, the budgets it ticks (0 and every one measured), and the
    unit its axis reads budgets in (1/255 at L∞, else 1)."""

    threat: str
    lines: list[BudgetLine]
    ticks: list[float]
    unit: int

    @property
    def name(self) -> str:
        return THREAT_LABELS.get(self.threat, self.threat)

    @property
    def axis_title(self) -> str:
        return f"ε ({self.name}{', ×1/255' * (self.unit == 255)})"


@dataclass(frozen=True)
class BudgetData:
    """What `budget_curves` shows, decided from records before any drawing: the panels, the
    ingredient names for hovers, the title, the CSV `rows`, and the family and threats stored with them."""

    panels: list[BudgetPanel]
    labels: list[str]
    title: str
    rows: list[dict]
    family: str
    metric: str


def budget_data(
    records: Sequence[Record], soups: NamedSoups | None = None, labels: Sequence[str] | None = None,
) -> BudgetData:
    """What `budget_curves` draws (see there for the arguments). Raises a `SoupvizError` when no
    record is a robust accuracy."""
    attacked = [r for r in records if r.kind == "attack"]
    if not attacked:
        raise SoupvizError("No robust-accuracy results to plot against the budget; "
                           "evaluate some threats first.")
    labels = list(labels or attacked[0].ingredients)
    if soups is None:
        keys = dict.fromkeys(weights_key(r.weights) for r in attacked)
        soups = [(soup_label(w, labels), w) for w in keys]
    clean = {weights_key(r.weights): r for r in records if r.kind == "clean"}
    threats = list(dict.fromkeys(r.measure.threat for r in attacked))
    panels = [_panel(threat, [r for r in attacked if r.measure.threat == threat], soups, clean)
              for threat in threats]
    rows = [_row(line.soup, panel.threat, e, p)
            for panel in panels for line in panel.lines for e, p in zip(line.eps, line.points, strict=True)]
    return BudgetData(
        panels=panels, labels=labels, rows=rows, family=family_of(records),
        title=f"Accuracy against the attack budget (ε = 0: clean accuracy)<br><sup>{images_note(records)}</sup>",
        metric=" ".join(panel.name for panel in panels),
    )


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
    return draw_budget_curves(budget_data(records, soups, labels), paper)


def draw_budget_curves(data: BudgetData, paper: bool = False) -> go.Figure:
    """The panels of `data` side by side on a shared y axis; a soup and attack keep one colour in
    every panel and one legend entry (from the first panel); rows attached, in paper or screen style."""
    fig = make_subplots(rows=1, cols=len(data.panels), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[panel.name for panel in data.panels])
    colours: dict[tuple, str] = {}
    for col, panel in enumerate(data.panels, start=1):
        for line in panel.lines:
            colour = colours.setdefault((line.soup, line.setting), OKABE_ITO[len(colours) % len(OKABE_ITO)])
            _draw_line(fig, line, panel, colour, col, data.labels)
        fig.update_xaxes(tickvals=[b * panel.unit for b in panel.ticks], tickangle=0, title_text=panel.axis_title,
                         ticktext=[f"{b * panel.unit:.4g}" for b in panel.ticks], row=1, col=col)
    fig.update_yaxes(title_text="Robust accuracy (%), upper bound", row=1, col=1)
    fig.update_layout(title={"text": data.title}, legend=BOTTOM_LEGEND)
    attach_rows(fig, "budget", data.rows, data.family, data.metric)
    return apply_style(fig, paper)


def _panel(threat: str, attacked: Sequence[Record], soups: NamedSoups, clean: dict) -> BudgetPanel:
    """The panel of one threat from its robust records, a line per soup (in `soups` order) and
    attack setting (in order of first record); `clean` maps weights keys to clean records."""
    series: dict[tuple, list[Record]] = {}  # (soup, attack settings) -> records
    for r in attacked:
        setting = (r.measure.attack, r.measure.steps, r.measure.restarts, r.measure.targets)
        series.setdefault((weights_key(r.weights), setting), []).append(r)
    lines = []
    for name, weights in soups:
        for (key, setting), found in series.items():
            if key == weights_key(weights):
                points = ([clean[key]] if key in clean else []) + sorted(found, key=lambda r: r.measure.eps)
                legend = f"{name} ({attack_label(found[0].measure)}, {image_counts(points)})"
                eps = [0.0 if p.kind == "clean" else p.measure.eps for p in points]
                lines.append(BudgetLine(name, setting, points, eps, legend))
    ticks = sorted({0.0} | {r.measure.eps for r in attacked})
    return BudgetPanel(threat, lines, ticks, 255 if threat == "linf" else 1)


def _row(soup: str, threat: str, eps: float, record: Record) -> dict:
    """The CSV row of a drawn point: the soup, the panel's threat and the budget the point is drawn
    at, then the record's own columns. A clean record (ε = 0 in every panel) has no threat or budget
    of its own, so the drawn ones win over its ''; a robust record's are the same."""
    drawn = {"soup": soup, "threat": threat, "eps": eps}
    return {**drawn, **record.row(), **drawn}


def _draw_line(fig: go.Figure, line: BudgetLine, panel: BudgetPanel, colour: str, col: int,
               labels: Sequence[str]) -> None:
    """A line's 95% band (two traces, the lower filled up to the upper) and its accuracies."""
    x = [e * panel.unit for e in line.eps]
    for bound, fill in (("ci_high", None), ("ci_low", "tonexty")):
        fig.add_trace(go.Scatter(
            x=x, y=[percent(getattr(p, bound)) for p in line.points], mode="lines",
            line={"width": 0}, fill=fill, fillcolor=rgba(colour, 0.18),
            showlegend=False, hoverinfo="skip", legendgroup=line.legend), row=1, col=col)
    fig.add_trace(go.Scatter(
        x=x, y=[percent(p.accuracy) for p in line.points], mode="lines+markers", name=line.legend,
        legendgroup=line.legend, showlegend=col == 1, line={"color": colour},
        hovertext=[f"ε = {_budget_text(panel.threat, e)}<br>{hover_text(p, labels)}"
                   for e, p in zip(line.eps, line.points, strict=True)],
        hovertemplate="%{hovertext}<extra></extra>"), row=1, col=col)


def _budget_text(threat: str, eps: float) -> str:
    return format_budget(threat, eps) if eps else "0"
