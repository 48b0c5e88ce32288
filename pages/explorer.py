"""Soup explorer: one slider per ingredient, the soup's metrics filled in as they are measured,
a ternary map over three ingredients (click a point to move there), the interpolation path
between two, and the soup kept in the page address for sharing."""

import streamlit as st

from pages._components import quick_records, session_evaluator, settings
from pages._widgets import (
    evaluate_live, evaluate_tiles, figure_panel, metric_tile, read_link, set_weights, weight_sliders, write_link,
)
from soupviz.app_state import Keys
from soupviz.dashboard import (
    corruption_specs, grid_weights, line_weights, metric_choices, picked_weights, robust_specs, ternary_points,
)
from soupviz.figures import interpolation_figure, soup_label, ternary_figure
from soupviz.metrics import MetricSpec

st.title("Soup explorer")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, s = evaluator.family, settings()
k, labels, paper = len(family.names), family.labels, st.session_state.get(Keys.PAPER, False)
read_link(k)

left, right = st.columns([2, 3], gap="large")
with left:
    weights = weight_sliders(family)
    write_link(weights)
    st.caption("Share this soup: the page's address holds its weights.")
with right:
    st.subheader(soup_label(weights, labels))
    st.caption(f"{evaluator.images_label} · seed {evaluator.seed} · {evaluator.soup.bn_label}")
    metric_tile(st.container(), quick_records(evaluator, [weights], [MetricSpec("clean")])[0])
    evaluate_tiles(evaluator, weights, robust_specs(s) + corruption_specs(s))

choices = metric_choices(s)
if k >= 3:
    st.divider()
    st.subheader("Ternary map")
    st.session_state.setdefault(Keys.TERNARY_CORNERS, [0, 1, 2])
    st.session_state.setdefault(Keys.GRID_STEP, 0.2)
    a, b, c = st.columns([3, 2, 2])
    corners = a.multiselect("Corners", range(k), format_func=labels.__getitem__, max_selections=3, key=Keys.TERNARY_CORNERS)
    metric = b.selectbox("Colour by", list(choices), key=Keys.TERNARY_METRIC)
    step = c.select_slider("Grid step", (0.1, 0.2, 0.25, 0.5), key=Keys.GRID_STEP)
    if len(corners) == 3:
        grid = grid_weights(k, step, subset=corners)
        records = evaluate_live(lambda report: evaluator.evaluate(grid, [choices[metric]], report), f"{len(grid)} soups")
        fig = ternary_figure(records, choices[metric].key, tuple(corners), current=weights, labels=labels, paper=paper)
        st.session_state[Keys.TERNARY_POINTS] = ternary_points(fig)

        def _clicked() -> None:
            picked = picked_weights(st.session_state[Keys.TERNARY].selection, st.session_state[Keys.TERNARY_POINTS])
            if picked is not None:
                set_weights(picked)

        figure_panel(fig, Keys.TERNARY, on_select=_clicked, selection_mode="points")
        st.caption("Click a soup on the map to move the sliders there.")
    else:
        st.info("Choose three ingredients for the corners.")

if k >= 2:
    st.divider()
    st.subheader("Interpolation path")
    st.session_state.setdefault(Keys.LINE_PAIR, [0, 1])
    st.session_state.setdefault(Keys.LINE_METRICS, ["clean"])
    a, b = st.columns(2)
    pair = a.multiselect("From (α = 0) and to (α = 1)", range(k), format_func=labels.__getitem__, max_selections=2, key=Keys.LINE_PAIR)
    metrics = b.multiselect("Metrics", list(choices), key=Keys.LINE_METRICS)
    if len(pair) == 2 and metrics:
        margin = st.session_state[Keys.MARGIN] if st.session_state.get(Keys.EXTRAPOLATE) else 0.0
        line = line_weights(k, pair[1], pair[0], margin)
        specs = [choices[m] for m in metrics]
        records = evaluate_live(lambda report: evaluator.evaluate(line, specs, report), f"{len(line)} soups on the path")
        fig = interpolation_figure(records, pair[1], pair[0], [spec.key for spec in specs], current=weights, labels=labels, paper=paper)
        figure_panel(fig, "line_chart")
        if margin:
            st.caption(f"Extrapolation on: the path runs from α = {-margin:g} to {1 + margin:g}.")
    else:
        st.info("Choose two ingredients and at least one metric.")
