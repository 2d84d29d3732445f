"""MuSe-GNN Studio: the Streamlit entry point (`make run`) and the Home page.

Pages live in pages/ (Streamlit's multipage folder); each calls ``page_frame`` for the
shared title, sidebar and workspace, then musegnn_core for all computation.
"""

import streamlit as st

from pages.ui.common import datasets_frame, page_frame, simulated_banner, workspace

page_frame("Home")
st.title("MuSe-GNN Studio")
st.caption(
    "One embedding space for genes across tissues, technologies and species "
    "(MuSe-GNN, Liu et al., NeurIPS 2023)."
)

ws = workspace()
if ws is not None:
    simulated_banner(ws)
    table = datasets_frame(ws)
    cols = st.columns(4)
    cols[0].metric("Datasets", len(table))
    cols[1].metric("Species", table["Species"].nunique())
    cols[2].metric("Tissues", table["Tissue"].nunique())
    cols[3].metric("Modalities", table["Modality"].nunique())
    st.subheader("Datasets")
    if table.empty:
        st.info("This workspace has no datasets yet. Import some on the **Data** page.")
    else:
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={
                "Cells": st.column_config.NumberColumn(format="%d"),
                "Genes": st.column_config.NumberColumn(format="%d"),
            },
        )
        st.caption(f"Workspace: `{ws.root}`")
        st.info("**Next step:** review your datasets and import more on the **Data** page.")
