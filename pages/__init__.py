"""The dashboard's pages; dashboard.py routes to them with st.navigation.

Streamlit runs the first session of a fresh server through its legacy router for a `pages/`
folder until some run has called st.navigation, so a shared link straight to /explorer would run
that page without dashboard.py (no shared sidebar, the legacy page list). Every page imports this
package first: `leave_legacy_router` calls st.navigation once and reruns, so the link goes
through dashboard.py.

Imported once per server process: where app.py's warm-up has not already begun it (a server
started with `streamlit run dashboard.py`, a test), the shipped family's store starts unpacking
on another core here (`unpack_in_background`), so Home's first figure finds it ready.
"""

from pages._routes import leave_legacy_router
from soupviz.results.packed import unpack_in_background
from soupviz.serve.settings import shipped_family_folder

unpack_in_background(shipped_family_folder())
leave_legacy_router()
