"""The dashboard's script, run for every session's every rerun: routes to the pages and draws
the sidebar they share. app.py serves it (`streamlit run app.py`); `streamlit run dashboard.py`
serves it too, without loading the libraries at the server's start.

The family comes from assets/families (or $SOUPVIZ_FAMILY), the images from $SOUPVIZ_DATA or
a local CIFAR-10 copy; the Home page explains how to change either.
"""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `pages._components` when run from elsewhere

from pages._components import keep_page_state, sidebar  # noqa: E402
from pages._routes import routes  # noqa: E402

# A local file: a :material/...: favicon is fetched from Google's font server on every page load.
FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
st.set_page_config(page_title="soupviz", page_icon=str(FAVICON), layout="wide")
keep_page_state()
page = st.navigation(routes())
sidebar()
page.run()
