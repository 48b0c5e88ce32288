"""What the figure-making subcommands write: the numbers behind a figure as CSV, and the figures
themselves as HTML or, through `present.figure_export`, as PNG, SVG or PDF.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # plotly is imported where figures are made, so the CLI runs without it (a GPU box)
    import plotly.graph_objects as go

FIGURE_FORMATS = ("html", "png", "svg", "pdf")


def check_out(path: str | None, suffixes: Sequence[str]) -> None:
    """Refuse an --out file name whose extension is none of `suffixes`, before any work is done
    (a file written under another format's extension would mislead whoever opens it)."""
    from soupviz.errors import SoupvizError

    if path and Path(path).suffix.lower() not in suffixes:
        raise SoupvizError(f"--out {path}: name a {' or '.join(suffixes)} file (the extension picks the format).")


def write_outputs(figures: Sequence[go.Figure], csv_path: str | None, folder: str | None, fmt: str,
                  csv_figure: int = 0) -> None:
    """Write the numbers behind `figures[csv_figure]` to `csv_path`, and every figure into `folder`
    as `fmt` (html, or png/svg/pdf through `export.export_figure`), saying where each went."""
    from soupviz.present.figure_export import export_figure, figure_csv, filename_for

    if csv_path:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        Path(csv_path).write_text(figure_csv(figures[csv_figure]))
        print(f"numbers written to {csv_path}")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for fig in figures:
            path = Path(folder) / filename_for(fig, fmt)
            if fmt == "html":
                fig.write_html(path, include_plotlyjs=True)
            else:
                path.write_bytes(export_figure(fig, fmt))
            print(f"figure written to {path}")
