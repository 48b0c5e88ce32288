"""The dashboard's pages; app.py routes to them with st.navigation.

Streamlit runs the first session of a fresh server through its legacy router for a `pages/`
folder until some run has called st.navigation, so a shared link straight to /explorer would run
that page without app.py (no shared sidebar, the legacy page list). Every page imports this
package first: it switches the legacy router off and reruns, so the link goes through app.py.
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
    PagesManager.uses_pages_directory = False  # what st.navigation itself does on its first call
    st.rerun()
