"""The heatmap as an HTML table (`heatmap_html`): the same cells, names, colours and footnote as
the Plotly figure drawn from the same `HeatmapData`, with every text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from plotly.colors import get_colorscale, sample_colorscale

from soupviz.present.heatmap_figures import draw_heatmap, heatmap_data
from soupviz.present.heatmap_html import heatmap_html
from tests.unit.present.test_soup_figures import CLEAN, LABELS, LINF, one_hot, record


class Cells(HTMLParser):
    """Each table row's header and cells: (text, title, style)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str, str]]] = []
        self.open: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.open = {"text": "", **dict(attrs)}

    def handle_data(self, data: str) -> None:
        if self.open is not None:
            self.open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.open is not None:
            self.rows[-1].append((self.open["text"], self.open.get("title", ""), self.open.get("style", "")))
            self.open = None


def parsed(markup: str) -> list[list[tuple[str, str, str]]]:
    cells = Cells()
    cells.feed(markup)
    return cells.rows


def background(style: str) -> str:
    return re.search(r"background:(rgb\([^)]*\))", style).group(1)


def test_the_table_shows_the_figures_cells_rows_and_columns():
    soups = [("nominal", one_hot(0)), ("L∞ 8/255", one_hot(1))]
    records = [record(one_hot(0), CLEAN, 90), record(one_hot(0), LINF, 5), record(one_hot(1), CLEAN, 70)]
    data = heatmap_data(records, soups=soups, labels=LABELS)
    trace = draw_heatmap(data).data[0]
    rows = parsed(heatmap_html(data))
    assert [text for text, _, _ in rows[0][1:]] == list(trace.x) == ["clean", "L∞ 8/255 ≤"]
    assert [row[0][0] for row in rows[1:]] == list(trace.y)
    assert [[text for text, _, _ in row[1:]] for row in rows[1:]] == [list(r) for r in trace.text]
    assert rows[2][2] == ("", "L∞ 8/255: not evaluated", "")
    assert rows[1][2][1] == trace.hovertext[0][1].replace("<br>", "\n")  # the interval and attack on hover


def test_cells_are_coloured_on_the_figures_scale_and_range_in_either_style():
    records = [record(one_hot(k), CLEAN, correct) for k, correct in enumerate((20, 60, 100))]
    data = heatmap_data(records, labels=LABELS)
    for paper, scale in ((False, "viridis"), (True, "cividis")):
        colours = [background(style) for _, _, style in (row[1] for row in parsed(heatmap_html(data, paper))[1:])]
        assert colours == sample_colorscale(get_colorscale(scale), [0.0, 0.5, 1.0])


def test_the_footnote_names_each_columns_attack_and_n_and_text_is_escaped():
    records = [record(one_hot(0), CLEAN, 90), record(one_hot(0), LINF, 5)]
    data = heatmap_data(records, soups=[("<b>mine</b>", one_hot(0))], labels=LABELS)
    markup = heatmap_html(data)
    assert "L∞ 8/255: by APGD-CE-20, n=100" in markup and "clean: n=100" in markup
    assert "<b>mine</b>" not in markup and "&lt;b&gt;mine&lt;/b&gt;" in markup
    assert "<small>100 test images per soup</small>" in markup  # the figure's subtitle
