"""Export: file names say what a figure shows in safe characters, the CSV holds the exact
numbers, PNGs say 300 dpi, and static export gives real PNG/SVG/PDF bytes or a clear error."""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import plotly.graph_objects as go
import pytest
from PIL import Image

from soupviz.present import figure_export as export
from soupviz.present.figure_export import (
    FORMATS,
    ExportError,
    attach_rows,
    export_figure,
    figure_csv,
    figure_filename,
    filename_for,
    find_chromium,
    stop_export_browser,
)

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def test_file_names_say_kind_family_weights_and_metric_in_safe_characters():
    weights = [0.5, 0.5, -0.4, 0.4]
    name = figure_filename("ternary", "cifar10 wrn/28", weights, "L∞ 8/255 APGD-CE-20", "png")
    assert name == "ternary_cifar10-wrn-28_w0.5-0.5-m0.4-0.4_Linf-8-255-APGD-CE-20.png"
    assert SAFE.match(name)
    odd = figure_filename("heat map", "../../etc", None, "fog 3 ∧ union: a*b?", ".svg")
    assert SAFE.match(odd) and ".." not in odd and odd.endswith(".svg") and "_w" not in odd


def test_long_file_names_are_capped_and_stay_distinct():
    first = figure_filename("heatmap", "fam", [0.1] * 10, "L∞ 8/255 APGD-CE-20 " * 20, "pdf")
    second = figure_filename("heatmap", "fam", [0.1] * 10, "L∞ 8/255 APGD-CE-20 " * 21, "pdf")
    assert len(first) <= export.MAX_NAME + 4 and first != second and SAFE.match(first)


def test_csv_and_file_name_come_from_what_the_builder_stored():
    rows = [{"weights": "0.5 0.5", "accuracy": 0.1 + 0.2, "method": "APGD-CE-20, L∞ 8/255"},
            {"weights": "1 0", "accuracy": 1 / 3, "pareto": True}]
    fig = attach_rows(go.Figure(), "tradeoff", rows, "fam", "clean vs L∞ 8/255", [0.5, 0.5])
    parsed = list(csv.DictReader(io.StringIO(figure_csv(fig))))
    assert [float(r["accuracy"]) for r in parsed] == [0.1 + 0.2, 1 / 3]  # exact round trip
    assert parsed[0]["method"] == "APGD-CE-20, L∞ 8/255" and parsed[0]["pareto"] == ""
    assert filename_for(fig, "csv") == "tradeoff_fam_w0.5-0.5_clean-vs-Linf-8-255.csv"
    with pytest.raises(ExportError, match="no data rows"):
        figure_csv(go.Figure())


def test_png_resolution_is_written_into_the_file():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "white").save(buffer, format="PNG", dpi=(72, 72))
    png = export._with_png_dpi(buffer.getvalue(), 300)
    image = Image.open(io.BytesIO(png))
    assert image.size == (4, 3) and image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert png.count(b"pHYs") == 1


def test_unknown_formats_and_a_bad_browser_path_are_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(ExportError, match="png, svg, pdf"):
        export_figure(go.Figure(), "eps")
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    with pytest.raises(ExportError, match="BROWSER_PATH"):
        find_chromium()


def test_no_chromium_anywhere_says_how_to_get_one(monkeypatch):
    from choreographer.browsers.chromium import Chromium

    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setattr(Chromium, "find_browser", classmethod(lambda cls, **kw: None))
    monkeypatch.setattr(export, "EXTRA_CHROMIUMS", ())
    with pytest.raises(ExportError, match="apt-get install chromium"):
        export_figure(go.Figure(), "svg")


@pytest.mark.slow
def test_static_export_gives_png_svg_and_pdf_bytes():
    try:
        find_chromium()
    except ExportError as error:
        pytest.skip(f"no Chromium for Kaleido: {error}")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    try:
        images = {fmt: export_figure(fig, fmt, keep_browser=True, width=350, height=250) for fmt in FORMATS}
    finally:
        stop_export_browser()
    assert images["png"].startswith(b"\x89PNG\r\n\x1a\n")
    assert images["svg"].lstrip().startswith((b"<svg", b"<?xml"))
    assert images["pdf"].startswith(b"%PDF")
    png = Image.open(io.BytesIO(images["png"]))
    assert png.size[0] == pytest.approx(350 * 300 / 96, abs=1)  # 300 dpi at 350/96 inches wide
    assert png.size[1] == pytest.approx(250 * 300 / 96, abs=1)
    assert png.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def _chromiums(pid: int) -> set[int]:
    """Process ids of every live Chromium process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit():
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if rest[0] != "Z":  # a zombie has exited already
                children.setdefault(int(rest[1]), []).append(int(entry.name))
                names[int(entry.name)] = name
    found, todo = set(), list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found |= {child} if "chrom" in names[child].lower() else set()
        todo += children.get(child, [])
    return found


@pytest.mark.slow
def test_the_export_browser_is_reused_then_closed_when_idle_leaving_nothing(monkeypatch, tmp_path):
    try:
        find_chromium()
    except ExportError as error:
        pytest.skip(f"no Chromium for Kaleido: {error}")
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(export.IDLE_ENV, "2")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    others = _chromiums(os.getpid())  # browsers other tests keep for the session (Playwright's) are not ours
    try:
        assert export_figure(fig, "svg", keep_browser=True).lstrip().startswith((b"<svg", b"<?xml"))
        browsers = _chromiums(os.getpid()) - others
        assert browsers and export.export_browser_running()
        assert any((tmp_path / "cache" / "export" / "profile").iterdir())  # its profile lives under the cache
        assert export_figure(fig, "pdf", keep_browser=True).startswith(b"%PDF")
        assert browsers & _chromiums(os.getpid())  # the same browser, reused
        ours = browsers | (_chromiums(os.getpid()) - others)
        deadline = time.monotonic() + 60
        while export.export_browser_running() and time.monotonic() < deadline:
            time.sleep(0.2)
        while ours & _chromiums(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.2)
        closed_by_itself = not export.export_browser_running()
        left = ours & _chromiums(os.getpid())
    finally:
        stop_export_browser()
    assert closed_by_itself and not left
    assert not (tmp_path / "cache" / "export").exists()


def test_the_idle_time_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(export.IDLE_ENV, "5")
    assert export.idle_seconds() == 5
    monkeypatch.setenv(export.IDLE_ENV, "soon")
    assert export.idle_seconds() == export.DEFAULT_IDLE_S
