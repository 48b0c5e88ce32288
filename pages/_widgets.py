"""Reusable page widgets: the soup's weight sliders, evaluation with a progress bar and a running
estimate, accuracy tiles with intervals, and a figure panel with its downloads (PNG at 300 dpi,
SVG and PDF rendered only when clicked, CSV of the numbers behind the figure).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from pages._components import session_lock
from pages._state import QUERY_WEIGHTS, Keys
from soupviz import Record, SoupFamily
from soupviz.evaluate.methods import attack_strength
from soupviz.present.figure_export import ExportError, export_figure, figure_csv, filename_for, find_chromium
from soupviz.present.heatmap_figures import HeatmapData, draw_heatmap
from soupviz.present.heatmap_html import heatmap_html
from soupviz.present.labels import bounded, ingredient_titles, interval_text, method_text, tile_caption
from soupviz.progress import Progress, ProgressCallback
from soupviz.results.interpolation import Interpolated
from soupviz.results.speaking import speaking_record, strength_order, strength_rank
from soupviz.serve.background import Job, Tile
from soupviz.soups.links import SoupLink, read_soup_link, weights_to_query
from soupviz.soups.weights import (
    DEFAULT_MARGIN,
    bounds,
    is_extrapolated,
    margin_for,
    nearest_soup,
    presets,
    rebalance,
    tidy,
    uniform,
)

T = TypeVar("T")
MARGINS = (0.2, 0.4, 0.6, 1.0)
MIMES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


def current_weights(k: int) -> list[float]:
    """The session's soup (uniform until the user moves it), reset when the family changes size."""
    weights = st.session_state.get(Keys.WEIGHTS)
    if weights is None or len(weights) != k:
        weights = uniform(k)
        set_weights(weights)
    return list(weights)


def set_weights(weights: Sequence[float]) -> None:
    """Make `weights` the current soup and move the sliders there (call before they are drawn,
    e.g. from a callback)."""
    weights = tidy(weights)
    st.session_state[Keys.WEIGHTS] = weights
    writes = st.session_state.setdefault(Keys.SLIDER_WRITES, {})
    for i, w in enumerate(weights):
        before = st.session_state.get(Keys.slider(i))
        if before != w:  # a slider written to is reset in the browser
            st.session_state[Keys.slider(i)] = w
            if before is not None:
                earlier = writes.get(i)
                recent = earlier.before if earlier is not None and earlier.may_echo() else ()
                writes[i] = SliderWrite(w, (*recent, before))


@dataclass(frozen=True)
class SliderWrite:
    """A slider the page moved (rebalancing the soup): its new value, the values it moved it away
    from moments ago (what the browser may still show), and when the run that drew the slider at
    its new value sent it to the browser (None: not yet; a slow run can take longer than any fixed
    window, so the window starts there, not at the move)."""

    value: float
    before: tuple[float, ...]
    sent_at: float | None = None

    def may_echo(self) -> bool:
        """Whether the browser may still send one of `before`: until the new value has been with it
        for `STALE_SECONDS`."""
        return self.sent_at is None or time.monotonic() - self.sent_at <= STALE_SECONDS


STALE_SECONDS = 10.0


def _mark_sent(index: int) -> None:
    """Start the stale window of slider `index`'s pending write: its new value was just drawn."""
    writes = st.session_state.get(Keys.SLIDER_WRITES, {})
    write = writes.get(index)
    if write is not None and write.sent_at is None:
        writes[index] = replace(write, sent_at=time.monotonic())


def _stale_echo(index: int, value: float) -> bool:
    """Whether slider `index` reports the value the page moved it away from moments ago: the
    browser sends every slider's value with each change, so one it had not yet updated comes
    back stale when the user moves another slider during a rerun; it is put back, not applied."""
    write = st.session_state.get(Keys.SLIDER_WRITES, {}).get(index)
    if write is None or not write.may_echo():
        return False
    if value in write.before and st.session_state[Keys.WEIGHTS][index] == write.value:
        st.session_state[Keys.slider(index)] = write.value
        return True
    return False


def _slider_moved(index: int) -> None:
    """Rebalance the others around the moved slider. Its own value is written back only if the
    bounds changed it: a write would reset the browser's slider, losing key presses made since."""
    low, high = bounds(st.session_state.get(Keys.EXTRAPOLATE, False), st.session_state.get(Keys.MARGIN, DEFAULT_MARGIN))
    value = st.session_state[Keys.slider(index)]
    if _stale_echo(index, value):
        return
    st.session_state.get(Keys.SLIDER_WRITES, {}).pop(index, None)
    set_weights(rebalance(st.session_state[Keys.WEIGHTS], index, value, low, high))


def _preset_chosen(named: dict[str, list[float]]) -> None:
    choice = st.session_state.get(Keys.PRESET)
    if choice in named:
        set_weights(named[choice])
    st.session_state[Keys.PRESET] = None  # a preset is a one-off jump, not a state


def _bounds_changed() -> None:
    low, high = bounds(st.session_state.get(Keys.EXTRAPOLATE, False), st.session_state.get(Keys.MARGIN, DEFAULT_MARGIN))
    set_weights(nearest_soup(st.session_state[Keys.WEIGHTS], low, high))


def weight_sliders(family: SoupFamily) -> list[float]:
    """One slider per ingredient, kept summing to 1 (within [0, 1], or the extrapolation margin),
    presets, and the extrapolation toggle. Returns the current weights."""
    k = len(family.names)
    st.session_state.setdefault(Keys.EXTRAPOLATE, False)
    st.session_state.setdefault(Keys.MARGIN, DEFAULT_MARGIN)
    extrapolate = st.session_state[Keys.EXTRAPOLATE]
    low, high = bounds(extrapolate, st.session_state[Keys.MARGIN])
    weights = current_weights(k)
    if any(w < low or w > high for w in weights):
        set_weights(nearest_soup(weights, low, high))
    weights = st.session_state[Keys.WEIGHTS]
    for i, w in enumerate(weights):
        st.session_state.setdefault(Keys.slider(i), w)
    for i, label in enumerate(ingredient_titles(family)):  # value: what a browser that lost the slider's state restores
        st.slider(label, low, high, value=weights[i], step=0.01, format="%.3f", key=Keys.slider(i),
                  on_change=_slider_moved, args=(i,), disabled=k == 1)
        _mark_sent(i)
    row = st.container(horizontal=True, wrap=True, gap="large")  # wraps rather than cutting the label short
    row.toggle("Extrapolate", key=Keys.EXTRAPOLATE, on_change=_bounds_changed,
               help="Allow weights outside [0, 1] (still summing to 1), within the margin.")
    if extrapolate:
        row.select_slider("Margin", MARGINS, key=Keys.MARGIN, on_change=_bounds_changed, width=180)
    threats = [ingredient.card.threat for ingredient in family.ingredients]
    named = dict(presets(threats, family.labels))
    st.selectbox("Presets", list(named), index=None, placeholder="Jump to a preset soup…", key=Keys.PRESET,
                 on_change=_preset_chosen, args=(named,),
                 help="Each ingredient, the uniform soup, and the paper's pairs.")
    return weights


def with_progress(label: str, work: Callable[[ProgressCallback], T]) -> T:
    """Run `work(report)` under a progress bar that shows each report's message and, while an attack
    runs, its running estimate: every page's one progress bar.

    Each update is a point where Streamlit can stop this run, so moving a slider meanwhile
    restarts the page at once (finished results are in the cache) instead of waiting. The
    session's lock keeps an interrupted run and its successor from driving the soup together.
    """
    bar, note = st.progress(0.0, text=label), st.empty()

    def report(now: Progress) -> None:
        bar.progress(now.fraction, text=f"{label}: {now.message}")
        if now.partial is not None:
            note.caption(f"running estimate {interval_text(now.partial)} · {now.message}")

    try:
        with session_lock():
            return work(report)
    finally:
        bar.empty()
        note.empty()


def metric_tile(container: DeltaGenerator, record: Record, stored: bool = False) -> None:
    """An accuracy with, on its face, what it rests on (the attack, n, 'stored'), its 95% interval
    and what the strength table says of the attack at this threat and budget."""
    label = bounded(record.metric, record.upper_bound)
    container.metric(label, f"{100 * record.accuracy:.1f}%", help=method_text(record))
    container.caption(tile_caption(record, stored))
    note = attack_strength(record.measure)
    if note:
        container.caption(note)


POLL = 1.0  # seconds between redraws of tiles still being measured in the background (each redraw is a
# fragment rerun on the server: with many sessions, faster polling takes CPU from the measuring itself)


TILE_PX = 185  # a tile's width: its number and a corruption's full name fit; tiles wrap onto more rows when narrow


def background_tiles(job: Job, stored: dict[str, Record], estimates: dict[str, Interpolated] | None = None) -> None:
    """Tiles for a background job's metrics, redrawn every `POLL` seconds until all are in:
    each shows its live record once measured, meanwhile the stored record of the soup if there
    is one (marked as stored), else its number interpolated from the stored soups around it
    (`estimates`, marked as such), and the measurement's progress. When the job ends the page reruns
    once, so the finished tiles stop polling. Tiles keep their width and wrap, so a narrow
    window shows fewer per row rather than cutting their numbers short."""
    polling = not job.ended.is_set()

    def draw() -> None:
        row = st.container(horizontal=True, wrap=True, gap="small")
        for tile in job.tiles:
            job_tile(row.container(width=TILE_PX), tile, stored.get(tile.spec.key),
                     (estimates or {}).get(tile.spec.key))
        if polling and job.ended.is_set():
            st.rerun(scope="app")

    st.fragment(draw, run_every=POLL if polling else None)()


def job_tile(container: DeltaGenerator, tile: Tile, stored: Record | None,
             estimate: Interpolated | None = None) -> None:
    """One metric of a background job: the record that speaks for it (`speaking_record` of the live
    and the stored one), else the number interpolated from the stored soups around it, and the live
    measurement's progress while it could still change that."""
    shown = speaking_record([tile.record, stored])
    if shown is not None:
        metric_tile(container, shown, stored=shown is stored)
    elif tile.error:
        container.metric(bounded(tile.spec.column, tile.spec.is_upper_bound), "n/a", help=tile.error)
    elif estimate is not None:
        container.metric(bounded(tile.spec.column, tile.spec.is_upper_bound), f"{100 * estimate.accuracy:.1f}%",
                         help=estimate.caption())
        container.caption(estimate.caption())
    else:
        container.metric(bounded(tile.spec.column, tile.spec.is_upper_bound), "…", help="measuring this soup")
    if tile.error:
        container.caption(tile.error)
    elif tile.record is None and (stored is None or strength_order(stored)[0] >= strength_rank(tile.spec)):
        done = tile.progress.fraction if tile.progress is not None else 0.0
        message = tile.progress.message if tile.progress is not None else "queued"
        container.progress(done, text=f"measuring: {message}")


@st.cache_resource(show_spinner=False)
def export_problem() -> str:
    """Why static export cannot run here ('' when Chromium is found)."""
    try:
        find_chromium()
    except ExportError as error:
        return str(error)
    return ""


def figure_panel(fig: go.Figure, key: str, **chart: object) -> object:
    """Show `fig` and its downloads; extra keywords go to `st.plotly_chart` (e.g. on_select)."""
    event = st.plotly_chart(fig, key=key, theme=None, **chart)
    download_buttons(fig, key)
    return event


def heatmap_table_panel(data: HeatmapData, paper: bool, key: str) -> None:
    """`data` as a heatmap table coloured on the server (`present.heatmap_html`), with the same
    downloads as its Plotly figure."""
    st.html(heatmap_html(data, paper))
    download_buttons(draw_heatmap(data, paper), key)


def download_buttons(fig: go.Figure, key: str) -> None:
    """CSV of the numbers at once; PNG (300 dpi), SVG and PDF rendered only when clicked."""
    cells = st.columns([1, 1, 1, 1, 3], gap="small")
    cells[0].download_button("CSV", figure_csv(fig), file_name=filename_for(fig, "csv"), mime="text/csv",
                             key=Keys.download(key, "csv"), on_click="ignore", icon=":material/download:")
    problem = export_problem()
    for cell, fmt in zip(cells[1:4], ("png", "svg", "pdf"), strict=True):
        cell.download_button(fmt.upper(), (lambda fmt=fmt: export_figure(fig, fmt, keep_browser=True)),
                             file_name=filename_for(fig, fmt), mime=MIMES[fmt], key=Keys.download(key, fmt),
                             on_click="ignore", disabled=bool(problem),
                             help=problem or f"{fmt.upper()} via Plotly's static export", icon=":material/download:")


def keep_valid(key: str, options: Sequence, default: object) -> None:
    """Drop a remembered choice that is no longer offered (e.g. after the budget changed)."""
    value = st.session_state.get(key, default)
    if isinstance(value, list):
        value = [v for v in value if v in options]
    elif value not in options:
        value = default
    st.session_state[key] = value


def set_soup(weights: Sequence[float]) -> None:
    """Make `weights` the current soup (`set_weights`), first turning extrapolation on, at the
    smallest margin that holds them, where they need it (call before the sliders are drawn)."""
    if is_extrapolated(weights):
        st.session_state[Keys.EXTRAPOLATE] = True
        st.session_state[Keys.MARGIN] = margin_for(weights, MARGINS)
    set_weights(weights)


@dataclass(frozen=True)
class HeldLink:
    """A link the explorer could not honour (or changed while reading): its message, and the soup
    shown instead. Both stay, and the page address keeps the link as given, until the user acts:
    moves the soup away from `shown` or dismisses the message."""

    link: SoupLink
    shown: tuple[float, ...]


def read_link(names: Sequence[str]) -> None:
    """Once per session, start from the soup in the page address (?w=0.5,0.5,0,0) if any; a link
    that cannot be honoured opens the uniform soup with the reason kept on screen (`held_link`)."""
    if not st.session_state.get(Keys.URL_READ):
        st.session_state[Keys.URL_READ] = True
        text = st.query_params.get(QUERY_WEIGHTS)
        if text:
            link = read_soup_link(text, names, margin=max(MARGINS))
            if link.weights is None:
                set_weights(uniform(len(names)))
            else:
                set_soup(link.weights)
            if link.problem or link.note:
                st.session_state[Keys.LINK_PROBLEM] = HeldLink(link, tuple(st.session_state[Keys.WEIGHTS]))
    show_held_link()


def held_link() -> HeldLink | None:
    """The link message still standing: dropped once the soup has moved away from what it opened."""
    held = st.session_state.get(Keys.LINK_PROBLEM)
    if held is not None and tuple(st.session_state.get(Keys.WEIGHTS) or ()) != held.shown:
        st.session_state.pop(Keys.LINK_PROBLEM, None)
        return None
    return held


def _dismiss_link() -> None:
    st.session_state.pop(Keys.LINK_PROBLEM, None)


def show_held_link() -> None:
    """The standing link message with a Dismiss button, redrawn on every run until the user acts."""
    held = held_link()
    if held is None:
        return
    box = st.container(border=True)
    if held.link.problem:
        box.warning(f"{held.link.problem} Showing the uniform soup instead; the address keeps the link as given "
                    "until you move a slider or dismiss this message.", icon=":material/link_off:")
    else:
        box.info(held.link.note, icon=":material/link:")
    box.button("Dismiss", key=Keys.LINK_DISMISS, on_click=_dismiss_link, icon=":material/close:")


def write_link(weights: Sequence[float]) -> None:
    """Keep the current soup in the page address, so copying the address shares it; a link that
    could not be honoured stays as given while its message stands (`held_link`)."""
    held = held_link()
    if held is not None and held.link.problem:
        return
    text = weights_to_query(weights)
    if st.query_params.get(QUERY_WEIGHTS) != text:
        st.query_params[QUERY_WEIGHTS] = text
