"""Figure style and export: the paper style, the rows behind a figure as CSV, file names that say
what a figure shows, and static PNG/SVG/PDF through Plotly's Kaleido and a local Chromium that is
started on demand, reused, and closed once idle, with its profile and page under the cache folder.

Builders store what they show in `layout.meta["soupviz"]` (`attach_rows`); everything here reads
it back, so a figure, its CSV and its file name cannot disagree.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
import re
import shutil
import struct
import threading
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go

from soupviz.errors import SoupvizError
from soupviz.files import cache_dir

# Okabe & Ito's colour-blind-safe palette, yellow last (it is faint on white).
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442"]
COLOUR_SCALES = {False: "viridis", True: "cividis"}  # screen and paper style, for accuracy colour axes
FORMATS = ("png", "svg", "pdf")
CSS_DPI = 96  # Plotly lays figures out in CSS pixels, 96 to the inch
DEFAULT_SIZE = (700, 500)  # Plotly's default layout size in CSS pixels
MAX_NAME = 160
EXTRA_CHROMIUMS = (
    "/usr/bin/chromium", "/usr/lib/chromium/chromium", "/snap/bin/chromium",
    "~/.cache/ms-playwright/chromium-*/chrome-linux*/chrome",
)
IDLE_ENV = "SOUPVIZ_EXPORT_IDLE_S"
DEFAULT_IDLE_S = 120.0  # a browser kept for later exports closes after this long without one
_EXPORT_LOCK = threading.RLock()  # Kaleido's shared browser answers one request at a time
_idle_timer: threading.Timer | None = None


class ExportError(SoupvizError):
    """A figure could not be exported (no Chromium, or the browser failed)."""


def apply_style(fig: go.Figure, paper: bool = False) -> go.Figure:
    """Screen style (light theme, viridis) or paper style: the white 'simple_white' theme, 16 px
    Arial (12 pt at the figure's own size, width/96 inches: 7.3 in for 700 px; give a narrower
    layout width for a one-column figure rather than shrinking it), framed axes without grids
    and the cividis colour scale. Both use the Okabe-Ito palette. Changes `fig` in place and
    returns it; switching back and forth is allowed.
    """
    fig.update_layout(
        template="simple_white" if paper else "plotly_white",
        font={"family": "Arial, Helvetica, sans-serif", "size": 16 if paper else 13,
              "color": "black"},
        colorway=OKABE_ITO, paper_bgcolor="white", plot_bgcolor="white",
    )
    if any(_uses_coloraxis(trace) for trace in fig.data):
        fig.update_layout(coloraxis_colorscale=COLOUR_SCALES[paper])
    axes = {"showgrid": not paper, "ticks": "outside" if paper else "", "mirror": paper,
            "showline": paper}
    fig.update_xaxes(**axes)
    fig.update_yaxes(**axes)
    return fig


def rgba(colour: str, alpha: float) -> str:
    """'#RRGGBB' as an rgba() string, for translucent interval bands."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _uses_coloraxis(trace: object) -> bool:
    marker = getattr(trace, "marker", None)
    return bool(getattr(trace, "coloraxis", None) or getattr(marker, "coloraxis", None))


def attach_rows(
    fig: go.Figure, kind: str, rows: list[dict], family: str = "", metric: str = "",
    weights: Sequence[float] | None = None,
) -> go.Figure:
    """Store what `fig` shows: its kind, family, metric name, current soup and exact data rows."""
    fig.update_layout(meta={"soupviz": {
        "kind": kind, "family": family, "metric": metric, "rows": rows,
        "weights": None if weights is None else [float(w) for w in weights],
    }})
    return fig


def figure_info(fig: go.Figure) -> dict:
    """What `attach_rows` stored (kind, family, metric, weights, rows); empty for other figures."""
    meta = fig.layout.meta
    return dict(meta["soupviz"]) if isinstance(meta, dict) and "soupviz" in meta else {}


def figure_csv(fig: go.Figure) -> str:
    """The numbers behind a figure as CSV text: one row per plotted record, exact values
    (accuracies as fractions, intervals, method, images, seed), plus figure columns; lists
    (ingredient names) are joined by spaces, like the weights."""
    rows = figure_info(fig).get("rows")
    if not rows:
        raise ExportError("This figure carries no data rows; build it with a soupviz builder.")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: " ".join(map(str, v)) if isinstance(v, list | tuple) else v
                      for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def figure_filename(
    kind: str, family: str, weights: Sequence[float] | None, metric: str, ext: str
) -> str:
    """A file name that says what a figure shows, in safe characters only ([A-Za-z0-9._-]).

    Example:
        >>> figure_filename("ternary", "cifar10 wrn", [0.5, 0.5, -0.4, 0.4], "L∞ 8/255", "png")
        'ternary_cifar10-wrn_w0.5-0.5-m0.4-0.4_Linf-8-255.png'
    """
    parts = [_slug(kind) or "figure", _slug(family)]
    if weights is not None:
        parts.append("w" + "-".join(f"{w:.4g}".replace("-", "m") for w in weights))
    parts.append(_slug(metric))
    stem = "_".join(part for part in parts if part)
    if len(stem) > MAX_NAME:
        stem = stem[: MAX_NAME - 9] + "-" + hashlib.sha256(stem.encode()).hexdigest()[:8]
    return f"{stem}.{_slug(ext.lstrip('.')) or 'bin'}"


def filename_for(fig: go.Figure, ext: str) -> str:
    """`figure_filename` from what a builder stored in `fig`."""
    info = figure_info(fig)
    return figure_filename(info.get("kind", "figure"), info.get("family", ""), info.get("weights"),
                           info.get("metric", ""), ext)


def _slug(text: str) -> str:
    for old, new in (("∞", "inf"), ("∧", "and"), ("·", "x"), ("→", "to"), ("≤", "")):
        text = text.replace(old, new)
    text = re.sub(r"[^A-Za-z0-9.]+", "-", text)
    return re.sub(r"-+", "-", text).strip("-.")


def find_chromium() -> str:
    """The Chromium/Chrome executable Kaleido will use, or an `ExportError` saying what to do.

    Order: the BROWSER_PATH environment variable (Kaleido's own override), Kaleido's search
    (its downloaded Chrome, then chromium/chrome on PATH and their usual paths), then Debian's
    /usr/bin/chromium, snap and Playwright's Chromium; a browser found only by these last ones
    is put into BROWSER_PATH so Kaleido uses it.
    """
    override = os.environ.get("BROWSER_PATH")
    if override:
        if _executable(override):
            return override
        raise ExportError(f"BROWSER_PATH={override!r} is not an executable; point it at "
                          "Chromium or Chrome, or unset it.")
    try:
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser(skip_local=False)
    except Exception:  # choreographer's search is best effort; ours follows
        found = None
    if found:
        return found
    for pattern in EXTRA_CHROMIUMS:
        for candidate in sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern))):
            if _executable(str(candidate)):
                os.environ["BROWSER_PATH"] = str(candidate)
                return str(candidate)
    raise ExportError(
        "Static export needs Chromium or Chrome and none was found: install it (e.g. "
        "`apt-get install chromium`, or `plotly_get_chrome`), or set BROWSER_PATH to its "
        "executable."
    )


def _executable(path: str) -> bool:
    resolved = shutil.which(path)
    return resolved is not None and os.access(resolved, os.X_OK)


def export_figure(
    fig: go.Figure, fmt: str, *, width: int | None = None, height: int | None = None,
    dpi: int = 300, keep_browser: bool = False,
) -> bytes:
    """The figure as PNG, SVG or PDF bytes, rendered by Plotly's Kaleido in Chromium.

    Plotly lays figures out in CSS pixels (1/96 inch): a figure `width` px wide (its layout
    width, else 700) is width/96 inches. PNGs are rendered at scale dpi/96 (3.125 for 300 dpi,
    so 700 × 500 px becomes 2188 × 1563 pixels) and carry a pHYs chunk with that dpi, so a
    document places them at their intended size; SVG and PDF are vector at width/96 inches.

    Args:
        fmt: 'png', 'svg' or 'pdf'.
        width, height: layout size in CSS pixels; default the figure's own, else 700 × 500.
        dpi: PNG resolution.
        keep_browser: leave the browser running for later exports (0.3 s each instead of about
            4 s to start Chromium) until none came for `idle_seconds()`; else it closes at once.

    Raises:
        ExportError: no Chromium, an unknown format, or the export failed.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ExportError(f"Cannot export a figure as {fmt!r}: use one of {', '.join(FORMATS)}.")
    if dpi <= 0:
        raise ExportError(f"The PNG resolution must be positive, got {dpi} dpi.")
    find_chromium()
    data = fig.to_dict()
    data.get("layout", {}).pop("meta", None)  # the rows are for CSV, not for the browser
    width = width or fig.layout.width or DEFAULT_SIZE[0]
    height = height or fig.layout.height or DEFAULT_SIZE[1]
    scale = dpi / CSS_DPI if fmt == "png" else 1
    with _EXPORT_LOCK:
        try:
            _open_browser()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                image = go.Figure(data).to_image(format=fmt, width=width, height=height,
                                                 scale=scale)
        except Exception as error:  # Kaleido and Chromium fail in many ways; name the format
            stop_export_browser()
            raise ExportError(f"Exporting the figure as {fmt.upper()} failed ({error}); "
                              "check that Chromium runs.") from error
        if keep_browser:
            _close_when_idle()
        else:
            stop_export_browser()
    return _with_png_dpi(image, dpi) if fmt == "png" else image


def export_folder() -> Path:
    """Where the export browser keeps its profile and page: `<cache>/export`, emptied on close."""
    return cache_dir() / "export"


def idle_seconds() -> float:
    """How long a kept export browser waits for the next export: $SOUPVIZ_EXPORT_IDLE_S, else 120."""
    try:
        return max(0.0, float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)))
    except ValueError:
        return DEFAULT_IDLE_S


def export_browser_running() -> bool:
    """Whether the shared export browser is open."""
    import kaleido

    return kaleido._global_server.is_running()  # noqa: SLF001 (Kaleido has no public query)


def stop_export_browser() -> None:
    """Close the export browser (no-op if none) and remove its profile and page."""
    import kaleido

    global _idle_timer
    with _EXPORT_LOCK:
        if _idle_timer is not None:
            _idle_timer.cancel()
            _idle_timer = None
        kaleido.stop_sync_server(silence_warnings=True)
        shutil.rmtree(export_folder(), ignore_errors=True)


def _stop_if_still_idle(timer: threading.Timer) -> None:
    """The idle timer's action: close the browser unless an export came since it was set."""
    with _EXPORT_LOCK:
        if _idle_timer is timer:
            stop_export_browser()


def _open_browser() -> None:
    """Start Kaleido's shared browser unless it runs, with its Chromium profile and the page it
    renders in (Kaleido's default writes both to the system's temp folder) under the cache."""
    import kaleido

    if export_browser_running():
        return
    folder = export_folder()
    (folder / "profile").mkdir(parents=True, exist_ok=True)
    page = folder / "index.html"
    page.write_text(kaleido.PageGenerator().generate_index())
    kaleido.start_sync_server(n=1, silence_warnings=True, page_generator=str(page), tmp_dir=str(folder / "profile"))


def _close_when_idle() -> None:
    """(Re)start the timer that closes the browser when no export comes for `idle_seconds()`."""
    global _idle_timer
    if _idle_timer is not None:
        _idle_timer.cancel()
    timer = threading.Timer(idle_seconds(), lambda: _stop_if_still_idle(timer))
    timer.daemon = True
    _idle_timer = timer
    timer.start()


def _with_png_dpi(png: bytes, dpi: int) -> bytes:
    """`png` with a pHYs chunk saying `dpi` (pixels per metre), replacing any earlier one."""
    signature, chunks, position = png[:8], [], 8
    while position < len(png):
        length = struct.unpack(">I", png[position : position + 4])[0]
        chunks.append(png[position : position + 12 + length])
        position += 12 + length
    body = b"pHYs" + struct.pack(">IIB", round(dpi / 0.0254), round(dpi / 0.0254), 1)
    phys = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body))
    kept = [c for c in chunks if c[4:8] != b"pHYs"]
    return signature + kept[0] + phys + b"".join(kept[1:])  # pHYs must precede IDAT; IHDR is first
