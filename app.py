"""MuSe-GNN Studio: the Streamlit entry point (`make run`).

It frames every page (title, sidebar, workspace) and routes between them; the
pages themselves live in pages/ and call musegnn_core for all computation.
"""

from pathlib import Path

import streamlit as st

from pages.common import safe_text

ASSETS = Path(__file__).parent / "assets"

st.set_page_config(page_title="MuSe-GNN Studio", page_icon=str(ASSETS / "logo.svg"), layout="wide")
st.logo(str(ASSETS / "logo.svg"))

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
    ]
)

with st.sidebar:
    from musegnn_core.paths import default_workspace

    st.caption(f"Workspace: {safe_text(default_workspace())}")

navigation.run()
