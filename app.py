"""MuSe-GNN Studio: the Streamlit entry point (`make run`) and the frame of every page.

``st.navigation`` runs the chosen page (``pages/``) inside this script, so the frame is
drawn here once: the wide layout, logo, navigation with our labels, the workspace and, on
the pages that explore a trained run, the run picker (``selection.run_picker``, which keeps
the chosen run in the session for the page). Each page then draws only its own content
(``page_head`` gives it its title, any kept message, the workspace and the simulated-data
banner; an explore page reads the picked run with ``selection.explore_page``).
"""

from pathlib import Path

import streamlit as st

from musegnn_core.paths import default_workspace
from pages.ui.common import ASSETS, PAGES, safe_text
from pages.ui.selection import forget_picked_run, run_picker

st.set_page_config(page_title="MuSe-GNN Studio", page_icon=str(ASSETS / "logo.svg"), layout="wide")
st.logo(str(ASSETS / "logo.svg"))
pages = [
    st.Page(nav.script, title=nav.label, icon=nav.icon, default=True)
    if nav is PAGES[0]
    # The URLs the multipage folder gave before: /Data, /Train, ... (shared links keep working).
    else st.Page(
        nav.script,
        title=nav.label,
        icon=nav.icon,
        url_path=Path(nav.script).stem.split("_", 1)[-1],
    )
    for nav in PAGES
]
# Our own links (below) instead of Streamlit's list, so the labels and order are ours.
page = st.navigation(pages, position="hidden")
with st.sidebar:
    for link in pages:
        st.page_link(link)
    st.divider()
    st.caption(f"Workspace: {safe_text(default_workspace())}")
if any(page is link and nav.explores_run for link, nav in zip(pages, PAGES, strict=True)):
    run_picker()
else:
    forget_picked_run()
page.run()
