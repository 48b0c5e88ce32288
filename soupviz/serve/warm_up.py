"""Loading the dashboard's libraries as its server starts, before anyone opens a page.

torch and the library's evaluation, figure and store modules take seconds to import on a small
machine; a fresh server would make its first visitor wait for them before Home's first figure
(bench/results/load.md). app.py starts `load_in_background` when the server starts, so the
imports run while the browser opens the page; a page that needs a module still loading waits for
it (Python's import lock), never imports it twice.
"""

from __future__ import annotations

import importlib
import threading

from soupviz.results.packed import unpack_in_background
from soupviz.serve.settings import shipped_family_folder

PAGE_MODULES = (  # what the pages import from outside Streamlit, in the order Home needs them
    "torch",
    "soupviz.checkpoints.importing",
    "soupviz.corruptions.cifar_c",
    "soupviz.data",
    "soupviz.device",
    "soupviz.evaluate.factory",
    "soupviz.evaluate.kept_soupability",
    "soupviz.present.heatmap_figures",
    "soupviz.present.heatmap_html",
    "soupviz.present.places",
    "soupviz.present.simplex_figures",
    "soupviz.present.soupability_figures",
    "soupviz.present.tables",
    "soupviz.present.tradeoff_figures",
    "soupviz.results.grids",
    "soupviz.results.interpolation",
    "soupviz.serve.background",
    "soupviz.serve.page_specs",
    "soupviz.serve.soup_rows",
    "soupviz.serve.uploads",
    "soupviz.soups.links",
    "soupviz.soups.parameters",
)
# Left to the pages, though Home's table loads it: Plotly looks pandas up in sys.modules without
# importing it, and a figure drawn while this thread imports it found it half-made (AttributeError).
NOT_HERE = ("pandas",)


def load_page_libraries() -> None:
    """Import every module of `PAGE_MODULES` and build each figure style once (Plotly loads its
    theme classes on first use, a quarter of a second)."""
    for name in PAGE_MODULES:
        importlib.import_module(name)
    import plotly.graph_objects as go

    from soupviz.present.figure_export import apply_style

    for paper in (False, True):
        apply_style(go.Figure(), paper=paper)


def load_in_background() -> threading.Thread:
    """Start unpacking the shipped store and loading the pages' libraries on a thread of their
    own; returns the loading thread."""
    unpack_in_background(shipped_family_folder())
    thread = threading.Thread(target=load_page_libraries, name="soupviz-warm-up", daemon=True)
    thread.start()
    return thread
