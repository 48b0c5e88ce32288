"""Figures drawn from the results store on first load, refreshed while a sweep writes to it: the
filled ternary map and the tetrahedron (explorer), the heatmap of ingredients (Attack heatmaps)
and the trade-off grid (Trade-off). Live evaluation on each page refines them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta

import streamlit as st

from pages._components import family_baselines
from pages._state import Keys
from pages._widgets import figure_panel, heatmap_table_panel, keep_valid, set_weights
from soupviz.checkpoints.families import Ingredient, SoupFamily, baseline_labels
from soupviz.errors import SoupvizError
from soupviz.present.heatmap_figures import draw_heatmap, heatmap_data
from soupviz.present.labels import (
    interval_text,
    ranked_prompt,
    ranked_soup,
    record_choices,
    stored_grid_caption,
    stored_grid_notes,
    stored_heatmap_caption,
)
from soupviz.present.simplex_figures import filled_ternary_figure, tetrahedron_figure
from soupviz.present.tradeoff_figures import tradeoff_figure
from soupviz.results.grids import (
    StoredGrid,
    being_written,
    family_records,
    family_store,
    stored_baselines,
    stored_grids,
    strongest_grids,
    summary_grids,
    tradeoff_grids,
)
from soupviz.results.interpolation import Interpolated, SimplexInterpolator
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import Record, ResultStore
from soupviz.serve.soup_rows import row_soups
from soupviz.soups.weights import weights_key

# how often a page rereads the store while a sweep writes it, and otherwise; as timedeltas, since
# Streamlit parses a "5s" string with pandas, which would load it before a page's first figure
REFRESH, IDLE_REFRESH = timedelta(seconds=5), timedelta(seconds=60)


def rereading_store(draw: Callable[..., None]) -> Callable[..., None]:
    """Run `draw(family, ...)` as a fragment that rereads the family's store every `REFRESH`
    while a sweep writes to it and every `IDLE_REFRESH` otherwise (with several sessions open,
    redrawing unchanged figures every few seconds takes the CPU their attacks need); when the
    pace should change, the whole page reruns to take it up."""

    @functools.wraps(draw)
    def run(family: SoupFamily, *args: object, **kwargs: object) -> None:
        store = family_store(family.folder)
        writing = being_written(store)

        def body() -> None:
            if being_written(store) != writing:
                st.rerun(scope="app")
            draw(family, *args, **kwargs)

        st.fragment(body, run_every=REFRESH if writing else IDLE_REFRESH)()

    return run


def stored(family: SoupFamily, soups: tuple[tuple[float, ...], ...] | None = None) -> dict[str, StoredGrid]:
    """The family's stored grids per spec key (`results.grids.stored_grids`, over `soups` where given),
    read once per version of the store and shared by the server's sessions (do not modify); none,
    with a warning, where the store cannot be read. Needs no images: a page draws them before any
    data is loaded."""
    store = family_store(family.folder)
    if not store.path.is_file():
        return {}
    try:
        return _stored_grids(str(store.path), store.modified(), tuple(family.hashes), soups)
    except SoupvizError as error:  # a damaged or unreadable store: say so, and draw the live figures only
        st.warning(str(error))
        return {}


@st.cache_resource(show_spinner=False, max_entries=16)
def _stored_grids(path: str, modified: float, hashes: tuple[str, ...],
                  soups: tuple[tuple[float, ...], ...] | None) -> dict[str, StoredGrid]:
    records = _stored_records(path, modified, hashes) if soups is None else \
        family_records(ResultStore(path), hashes, soups=soups)  # a few soups: only theirs are read
    return stored_grids(records, len(hashes), soups)


@st.cache_resource(show_spinner=False, max_entries=2)
def _stored_records(path: str, modified: float, hashes: tuple[str, ...]) -> list[Record]:
    return family_records(ResultStore(path), hashes)  # read once for every choice of soups


def interpolated(store: ResultStore, hashes: tuple[str, ...], weights: list[float],
                 specs: list[MetricSpec]) -> dict[str, Interpolated]:
    """Each of `specs` (by key) at soup `weights`, interpolated from the store's grid of that spec
    (`soupviz.results.interpolation`) where the store has one whose hull holds the soup."""
    if not store.path.is_file():
        return {}
    found = {}
    for spec in specs:
        grid = _interpolator(str(store.path), store.modified(), hashes, spec.key)
        estimate = grid.at(weights) if grid is not None else None
        if estimate is not None:
            found[spec.key] = estimate
    return found


@st.cache_resource(show_spinner=False, max_entries=64)
def _interpolator(path: str, modified: float, hashes: tuple[str, ...], spec: str) -> SimplexInterpolator | None:
    grid = _stored_grids(path, modified, hashes, None).get(spec)
    return SimplexInterpolator(grid.records) if grid is not None else None


@rereading_store
def simplex_views(family: SoupFamily, weights: list[float], paper: bool) -> None:
    """Explorer: the filled ternary map of the chosen corners and the tetrahedron, from the store,
    with a list of the stored soups (best first) that moves the sliders to the one picked."""
    grids = stored(family)
    if not grids:
        return
    k = len(family.names)
    st.subheader("The whole simplex (precomputed)")
    names = record_choices([g.records[0] for g in grids.values()])
    keep_valid(Keys.STORED_METRIC, list(names), next(iter(names)))
    grid = grids[names[st.selectbox("Colour by", list(names), key=Keys.STORED_METRIC)]]
    corners = st.session_state.get(Keys.TERNARY_CORNERS) or [0, 1, 2]
    corners = tuple(corners) if len(corners) == 3 else (0, 1, 2)
    left, right = st.container(), st.container()  # full width each: side by side they squeeze the downloads
    with left:
        try:
            fig = filled_ternary_figure(grid.records, grid.records[0].spec, corners, current=weights,
                                        labels=family.labels, note=stored_grid_notes(grid), paper=paper)
            figure_panel(fig, Keys.STORED_TERNARY)
        except SoupvizError as error:  # too few stored soups on this face yet
            st.caption(str(error))
    if k == 4:
        with right:
            figure_panel(tetrahedron_figure(grid.records, grid.records[0].spec, current=weights, labels=family.labels,
                                            note=stored_grid_notes(grid), paper=paper), Keys.STORED_TETRAHEDRON)
            ranked = {tuple(r.weights): ranked_soup(r, family.labels) for r in grid.ranked()}

            def _picked() -> None:
                chosen = st.session_state.get(Keys.STORED_PICK)
                if chosen is not None:
                    set_weights(list(chosen))
                    st.session_state[Keys.STORED_MOVED] = True
                st.session_state[Keys.STORED_PICK] = None  # a one-off jump, like a preset

            st.selectbox("Move the sliders to a stored soup", list(ranked), index=None, key=Keys.STORED_PICK,
                         on_change=_picked, format_func=ranked.get,
                         placeholder=ranked_prompt(grid),
                         help="Streamlit does not pass clicks on 3-D charts back to the page; pick a soup here.")
    if st.session_state.pop(Keys.STORED_MOVED, False):
        st.rerun(scope="app")


@rereading_store
def stored_heatmap(family: SoupFamily, paper: bool, interactive: bool = True) -> None:
    """Attack heatmaps: the ingredients and presets under every stored metric (each threat at each
    stored budget by its strongest attack, corruptions as their mean), before anything is pressed;
    as a Plotly figure, or (`interactive` False, for a page's first figure) as a table coloured
    on the server that a fresh browser tab shows without starting Plotly."""
    named = row_soups(["ingredients", "presets"], family, None)
    grids = summary_grids(strongest_grids(stored(family, tuple(tuple(w) for _, w in named))))
    records = [r for grid in grids.values() for r in grid.records]
    if not records:
        return
    present = {weights_key(r.weights) for r in records}
    soups = [(name, w) for name, w in named if weights_key(w) in present]
    baselines = family_baselines(family)
    extra = stored_baselines(family_store(family.folder), family, baselines, list(grids.values()), complete=False)
    data = heatmap_data(records, soups, list(grids), labels=family.labels, baselines=extra,
                        baseline_labels=baseline_labels(family, baselines))
    if interactive:
        figure_panel(draw_heatmap(data, paper), Keys.STORED_HEATMAP)
    else:
        heatmap_table_panel(data, paper, Keys.STORED_HEATMAP)
    st.caption(stored_heatmap_caption(list(grids.values()), len(soups)))


@rereading_store
def stored_tradeoff(family: SoupFamily, threat: str, against: str, weights: list[float],
                    baselines: list[Ingredient], paper: bool) -> None:
    """Trade-off: robust accuracy under `threat` against `against` (`results.grids.tradeoff_grids`)
    over the stored grid, with the `baselines` stored on the same images and attack, before anything
    is pressed."""
    grids = tradeoff_grids(stored(family), threat, against)
    if grids is None:
        if against == "corruption-mean":
            st.caption("The store holds no corruption grid yet: `soupviz sweep FAMILY --metrics corruptions` "
                       "measures one.")
        elif against != "clean":
            st.caption("The precomputed store has no grid of both metrics: press Evaluate to measure them.")
        return
    x_grid, y_grid = grids
    extra = stored_baselines(family_store(family.folder), family, baselines, grids)
    names = baseline_labels(family, baselines)
    try:
        fig = tradeoff_figure(x_grid.records + y_grid.records, y_grid.records[0].spec, x_grid.records[0].spec,
                              current=weights, labels=family.labels, paper=paper, baselines=extra,
                              baseline_labels=names)
    except SoupvizError:  # the stored clean and robust grids share no soup yet
        return
    figure_panel(fig, Keys.STORED_TRADEOFF)
    st.caption(f"Precomputed: {x_grid.records[0].metric} {stored_grid_caption(x_grid)}; "
               f"{y_grid.records[0].metric} {stored_grid_caption(y_grid)}."
               + (" Baselines: " + " · ".join(f"{names[r.family]} {r.metric} {interval_text(r)}" for r in extra)
                  if extra else ""))
