"""The dashboard's server: `streamlit run app.py` serves dashboard.py (the pages and the sidebar
they share) and, from the moment it starts, loads the libraries the pages use on a thread of its
own (`soupviz.serve.warm_up`), so a fresh server's first visitor does not wait for torch.

    streamlit run app.py
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st

from soupviz.serve.warm_up import load_in_background


@asynccontextmanager
async def load_libraries_on_start(app: st.App) -> AsyncIterator[None]:
    load_in_background()
    yield


app = st.App("dashboard.py", lifespan=load_libraries_on_start)
