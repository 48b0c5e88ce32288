"""The explorer's two plots: a ternary map over three ingredients (colour by a metric, a freshly
swept or loaded grid, click a soup to move the sliders there) and the interpolation path between
two ingredients, extrapolation included."""

from __future__ import annotations

import streamlit as st

from pages._state import Keys
from pages._widgets import figure_panel, keep_valid, set_weights, with_progress
from soupviz import Evaluator, MetricSpec
from soupviz.errors import SoupvizError
from soupviz.present.labels import record_choices
from soupviz.present.simplex_figures import picked_weights
from soupviz.present.soup_figures import interpolation_figure, ternary_figure, ternary_points
from soupviz.results.store import records_from_upload
from soupviz.soups.weights import grid_weights, line_weights


def ternary_panel(evaluator: Evaluator, weights: list[float], choices: dict[str, MetricSpec], paper: bool) -> None:
    """Ternary map of the grid over three chosen ingredients, the current soup starred."""
    k, labels, family = len(weights), evaluator.family.labels, evaluator.family
    st.subheader("Ternary map")
    with st.expander("Precomputed grid: load a `soupviz sweep` results file"):
        upload = st.file_uploader("Results file (.json or a .sqlite store)", type=["json", "sqlite"],
                                  key=Keys.SWEEP_FILE)
    loaded = []
    if upload is not None:
        try:
            loaded = records_from_upload(upload.getvalue(), family.names, upload.name, family.hashes)
        except SoupvizError as error:
            st.error(str(error))
    options = {name: spec.key for name, spec in choices.items()}
    options.update({f"{name} · file": key for name, key in record_choices(loaded).items()})
    keep_valid(Keys.TERNARY_CORNERS, list(range(k)), [0, 1, 2])
    keep_valid(Keys.TERNARY_METRIC, list(options), "clean")
    st.session_state.setdefault(Keys.GRID_STEP, 0.2)
    a, b, c = st.columns([3, 2, 2])
    corners = a.multiselect("Corners", range(k), format_func=labels.__getitem__, max_selections=3,
                            key=Keys.TERNARY_CORNERS)
    metric = b.selectbox("Colour by", list(options), key=Keys.TERNARY_METRIC)
    from_file = metric.endswith(" · file")
    step = c.select_slider("Grid step", (0.1, 0.2, 0.25, 0.5), key=Keys.GRID_STEP, disabled=from_file)
    if len(corners) == 3:
        if from_file:
            records = [r for r in loaded if r.spec == options[metric]]
        else:
            grid = grid_weights(k, step, subset=corners)
            spec = choices[metric]
            records = with_progress(f"{len(grid)} soups", lambda report: evaluator.evaluate(grid, [spec], report))
        fig = ternary_figure(records, options[metric], tuple(corners), current=weights, labels=labels, paper=paper)
        st.session_state[Keys.TERNARY_POINTS] = ternary_points(fig)

        chart = Keys.ternary_chart(st.session_state.get(Keys.TERNARY_CLICKS, 0))

        def _clicked() -> None:  # a fresh chart key after each click, so no stale selection lingers
            picked = picked_weights(st.session_state[chart].selection, st.session_state[Keys.TERNARY_POINTS])
            if picked is not None:
                set_weights(picked)
                st.session_state[Keys.TERNARY_CLICKS] = st.session_state.get(Keys.TERNARY_CLICKS, 0) + 1

        figure_panel(fig, chart, on_select=_clicked, selection_mode="points")
        st.caption("Click a soup on the map to move the sliders there.")
    else:
        st.info("Choose three ingredients for the corners.")


def line_panel(evaluator: Evaluator, weights: list[float], choices: dict[str, MetricSpec], paper: bool) -> None:
    """Chosen metrics along the path between two chosen ingredients, with 95% bands."""
    k, labels = len(weights), evaluator.family.labels
    st.subheader("Interpolation path")
    keep_valid(Keys.LINE_PAIR, list(range(k)), [0, 1])
    keep_valid(Keys.LINE_METRICS, list(choices), ["clean"])
    a, b = st.columns(2)
    pair = a.multiselect("From (α = 0) and to (α = 1)", range(k), format_func=labels.__getitem__, max_selections=2,
                         key=Keys.LINE_PAIR)
    metrics = b.multiselect("Metrics", list(choices), key=Keys.LINE_METRICS)
    if len(pair) == 2 and metrics:
        margin = st.session_state[Keys.MARGIN] if st.session_state.get(Keys.EXTRAPOLATE) else 0.0
        line = line_weights(k, pair[1], pair[0], margin)
        specs = [choices[m] for m in metrics]
        records = with_progress(f"{len(line)} soups", lambda report: evaluator.evaluate(line, specs, report))
        keys = [spec.key for spec in specs]
        fig = interpolation_figure(records, pair[1], pair[0], keys, current=weights, labels=labels, paper=paper)
        figure_panel(fig, Keys.LINE_CHART)
        if margin:
            st.caption(f"Extrapolation on: the path runs from α = {-margin:g} to {1 + margin:g}.")
    else:
        st.info("Choose two ingredients and at least one metric.")
