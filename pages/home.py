"""Home: the workspace at a glance and the next step to take."""

import streamlit as st

from pages.common import datasets_frame, simulated_banner, workspace

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
