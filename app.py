"""MuSe-GNN Studio: the Streamlit entry point (`make run`) and the frame of every page.

``st.navigation`` runs the chosen page (``pages/``) inside this script, so the frame is
drawn here once: the wide layout, logo, navigation with our labels and the workspace.
Each page then draws only its own content (``page_head`` gives it its title, any kept
message, the workspace and the simulated-data banner).
"""

from pathlib import Path

import streamlit as st

from musegnn_core.paths import default_workspace
from pages.ui.common import ASSETS, PAGES, safe_text

st.set_page_config(page_title="MuSe-GNN Studio", page_icon=str(ASSETS / "logo.svg"), layout="wide")
st.logo(str(ASSETS / "logo.svg"))
pages = [
    st.Page(script, title=label, icon=icon, default=True)
    if script == PAGES[0][0]
    # The URLs the multipage folder gave before: /Data, /Train, ... (shared links keep working).
    else st.Page(script, title=label, icon=icon, url_path=Path(script).stem.split("_", 1)[-1])
    for script, label, icon in PAGES
]
# Our own links (below) instead of Streamlit's list, so the labels and order are ours.
page = st.navigation(pages, position="hidden")
with st.sidebar:
    for link in pages:
        st.page_link(link)
    st.divider()
    st.caption(f"Workspace: {safe_text(default_workspace())}")
page.run()
