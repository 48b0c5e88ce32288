"""The dashboard's pages, grouped for the sidebar (the one list dashboard.py routes with), and the switch
from Streamlit's legacy `pages/` router to it."""

import streamlit as st


def routes() -> dict[str, list[st.Page]]:
    """Every page with its title and icon, by sidebar section; called during a script run, as
    `st.Page` resolves its path against the running main script (dashboard.py)."""
    return {
        "Soups": [
            st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
            st.Page("pages/explorer.py", title="Soup explorer", icon=":material/tune:"),
            st.Page("pages/heatmaps.py", title="Attack heatmaps", icon=":material/grid_on:"),
            st.Page("pages/tradeoff.py", title="Trade-off", icon=":material/scatter_plot:"),
            st.Page("pages/merges.py", title="Merge lab", icon=":material/call_merge:"),
        ],
        "Insight": [
            st.Page("pages/saliency.py", title="Saliency", icon=":material/visibility:"),
            st.Page("pages/generation.py", title="Generation", icon=":material/brush:"),
            st.Page("pages/adaptation.py", title="Few-shot adaptation", icon=":material/target:"),
        ],
    }


_left_legacy_router = False


def leave_legacy_router() -> None:
    """Once per server process, call st.navigation with these pages and rerun: until some run has
    called st.navigation, Streamlit routes a fresh server's first session through its legacy
    `pages/` folder router, which would run a linked page without dashboard.py. Calling st.navigation
    switches that router off (its documented effect); the rerun then goes through dashboard.py."""
    global _left_legacy_router
    if _left_legacy_router or not st.runtime.exists():
        return
    _left_legacy_router = True
    st.navigation(routes())
    st.rerun()
