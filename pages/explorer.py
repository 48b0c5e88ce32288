"""Soup explorer: one slider per ingredient, the soup's metrics filled in as they are measured,
a ternary map over three ingredients (click a point to move there), the interpolation path
between two, and the soup kept in the page address for sharing."""

import streamlit as st

from pages._components import quick_records, readable, session_evaluator, session_lane, settings
from pages._explorer_panels import line_panel, ternary_panel
from pages._simplex_views import interpolated, simplex_views
from pages._soupability import lineage_warning
from pages._state import Keys
from pages._widgets import background_tiles, metric_tile, read_link, weight_sliders, write_link
from soupviz import MetricSpec
from soupviz.errors import SoupvizError
from soupviz.present.labels import soup_label
from soupviz.results.grids import family_store, stored_records
from soupviz.serve.page_specs import corruption_specs, metric_choices, robust_specs

st.title("Soup explorer")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, s = evaluator.family, settings()
k, labels, paper = len(family.names), family.labels, st.session_state.get(Keys.PAPER, False)
read_link(labels)

left, right = st.columns([2, 3], gap="large")
with left:
    lineage_warning(family)
    weights = weight_sliders(family)
    write_link(weights)
    st.caption("Share this soup: the page's address holds its weights.")
with right:
    st.subheader(soup_label(weights, labels))
    st.caption(readable(f"{evaluator.images_label} · seed {evaluator.seed} · {evaluator.soup.bn_label}"))
    clean_box = st.container()  # filled last: the stored and interpolated tiles below need no computing
    slow = robust_specs(s) + corruption_specs(s)
    lane = session_lane()
    if lane is not None:
        store = family_store(family.folder)
        try:
            stored = stored_records(store, family.hashes, weights, slow)
            estimates = interpolated(store, tuple(family.hashes), weights, slow)
        except SoupvizError as error:  # a damaged or unreadable store: the live tiles still come
            st.warning(str(error))
            stored, estimates = {}, {}
        background_tiles(lane.submit(weights, slow), stored, estimates)
    metric_tile(clean_box, quick_records(evaluator, [weights], [MetricSpec("clean")])[0])

choices = metric_choices(s)
if k >= 3:
    st.divider()
    ternary_panel(evaluator, weights, choices, paper)
if k >= 3:
    simplex_views(evaluator.family, weights, paper)
if k >= 2:
    st.divider()
    line_panel(evaluator, weights, choices, paper)
