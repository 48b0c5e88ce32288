"""Accuracy heatmaps as an HTML table, for a page's first figure: the `HeatmapData` that
`draw_heatmap` draws, coloured here on the server, so a fresh browser tab shows it at once
instead of first starting Plotly's 4.7 MB script (about 1.5 s on a 2-core machine, the largest
part of Home's first visit: bench/results/load.md). Cells carry the accuracy, their hover the
interval and the attack; the footnote names each column's attack and n, as in the figure."""

from __future__ import annotations

import html
import math

from plotly.colors import get_colorscale, sample_colorscale, unlabel_rgb

from soupviz.present.figure_export import COLOUR_SCALES
from soupviz.present.heatmap_figures import HeatmapData
from soupviz.present.soup_figures import hover_text, percent
from soupviz.results.records import Record

FONT = "Arial, Helvetica, sans-serif"
CLASS = "soupviz-heatmap"


def heatmap_html(data: HeatmapData, paper: bool = False) -> str:
    """The heatmap of `data` as one self-contained HTML figure: title, a table with a row per soup
    (then baselines) and a column per metric, each cell coloured by its accuracy on the same colour
    scale and range as the Plotly figure (blank where not evaluated), the colour key, and the
    footnote naming each column's attack and image count."""
    values = [percent(r.accuracy) for row in data.table for r in row.cells if r]
    low, high = (min(values), max(values)) if values else (0.0, 100.0)
    scale = get_colorscale(COLOUR_SCALES[paper])
    head = "".join(f"<th scope='col' style='{_HEAD}'>{_text(name)}</th>" for name in data.columns)
    body = "".join(
        f"<tr><th scope='row' style='{_ROW}'>{_text(row.name)}</th>"
        + "".join(_cell(row.name, r, row.labels, scale, low, high) for r in row.cells) + "</tr>"
        for row in data.table)
    return (f"<figure class='{CLASS}' style='margin:0;font-family:{FONT};font-size:{16 if paper else 13}px;"
            f"color:black;background:white;padding:8px;overflow-x:auto'>"
            f"<figcaption style='font-size:1.25em;margin-bottom:6px'>{_text(data.title)}</figcaption>"
            f"<table style='border-collapse:separate;border-spacing:1px'><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{_key(scale, low, high)}"
            f"<p style='font-size:11px;margin:6px 0 0'>{_text(data.footnote)}</p></figure>")


_HEAD = "font-weight:normal;padding:2px 6px;vertical-align:bottom;text-align:center"
_ROW = "font-weight:normal;padding:2px 8px 2px 0;text-align:right;white-space:nowrap"


def _cell(row: str, record: Record | None, labels: list[str] | None, scale: list, low: float, high: float) -> str:
    if record is None:
        return f"<td title='{_attribute(f'{row}: not evaluated')}'></td>"
    value = percent(record.accuracy)
    colour = _colour(scale, value, low, high)
    ink = "black" if _luminance(colour) > 0.45 else "white"
    hover = _attribute(f"{row}<br>{hover_text(record, labels)}")
    return (f"<td title='{hover}' style='background:{colour};color:{ink};padding:6px 8px;"
            f"text-align:center;min-width:3.2em'>{value:.1f}</td>")


def _key(scale: list, low: float, high: float) -> str:
    """The colour key: the scale's gradient from the lowest to the highest accuracy shown."""
    stops = ", ".join(f"{colour} {100 * at:.0f}%" for at, colour in scale)
    return (f"<div style='display:flex;align-items:center;gap:6px;margin-top:6px;font-size:11px'>"
            f"accuracy (%) <span>{low:.1f}</span><span style='display:inline-block;width:160px;height:10px;"
            f"background:linear-gradient(to right, {stops})'></span><span>{high:.1f}</span></div>")


def _colour(scale: list, value: float, low: float, high: float) -> str:
    at = 0.5 if math.isclose(high, low) else (value - low) / (high - low)
    return sample_colorscale(scale, [min(max(at, 0.0), 1.0)])[0]


def _luminance(colour: str) -> float:
    r, g, b = (channel / 255 for channel in unlabel_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _text(markup: str) -> str:
    """Plotly's text markup (<br>, <sup>) as HTML, everything else escaped."""
    lines = [html.escape(line) for line in markup.split("<br>")]
    return "<br>".join(line.replace("&lt;sup&gt;", "<small>").replace("&lt;/sup&gt;", "</small>")
                       for line in lines)


def _attribute(markup: str) -> str:
    """Plotly's hover markup as a title attribute: a line per <br>."""
    return html.escape(markup.replace("<br>", "\n"), quote=True)
