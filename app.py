"""soupviz dashboard entry: routes to the pages and draws the sidebar they share.

    streamlit run app.py

The family comes from assets/families (or $SOUPVIZ_FAMILY), the images from $SOUPVIZ_DATA or
a local CIFAR-10 copy; the Home page explains how to change either.
"""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `pages._components` when run from elsewhere

from pages._components import keep_page_state, sidebar  # noqa: E402

# A local file: a :material/...: favicon is fetched from Google's font server on every page load.
FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
st.set_page_config(page_title="soupviz", page_icon=str(FAVICON), layout="wide")
keep_page_state()
page = st.navigation({
    "Soups": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/explorer.py", title="Soup explorer", icon=":material/tune:"),
        st.Page("pages/heatmaps.py", title="Attack heatmaps", icon=":material/grid_on:"),
        st.Page("pages/tradeoff.py", title="Trade-off", icon=":material/scatter_plot:"),
    ],
    "Insight": [
        st.Page("pages/saliency.py", title="Saliency", icon=":material/visibility:"),
        st.Page("pages/generation.py", title="Generation", icon=":material/brush:"),
        st.Page("pages/adaptation.py", title="Few-shot adaptation", icon=":material/target:"),
    ],
})
sidebar()
page.run()
