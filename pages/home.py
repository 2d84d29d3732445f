"""Home: the workspace at a glance (datasets, graphs, runs) and the next step to take."""

import streamlit as st

from musegnn_core.graphs.build import graph_infos
from musegnn_core.jobs import running_training
from pages.ui.common import (
    datasets_frame,
    run_safely,
    safe_text,
    set_page_title,
    simulated_banner,
    workspace,
)
from pages.ui.runs import runs_overview

set_page_title(None)
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

    st.subheader("Runs")
    graphs = run_safely(lambda: graph_infos(ws), "Reading the graphs") or {}
    runs = run_safely(lambda: runs_overview(ws), "Reading the runs")
    active = run_safely(lambda: running_training(ws), "Reading the training state")
    done = (
        [] if runs is None or runs.empty else runs.loc[runs["State"] == "completed", "Run"].tolist()
    )
    cols = st.columns(3)
    cols[0].metric("Graphs built", f"{len(graphs)} of {len(table)}")
    cols[1].metric("Runs", 0 if runs is None else len(runs))
    cols[2].metric("Completed runs", len(done))
    if runs is None or runs.empty:
        st.caption("No training runs yet.")
    else:
        st.dataframe(runs.drop(columns=["Resumable"]), hide_index=True, width="stretch")
    if table.empty:
        pass  # the next step (import data) is said above
    elif active:
        st.info(
            f"**Training now:** run {safe_text(active)}. Watch it on the **Train** page; "
            "it goes on if you close the browser."
        )
        st.page_link(
            "pages/2_Train.py", label="Open the Train page", icon=":material/model_training:"
        )
    elif not done:
        st.info(
            "**Next step:** train MuSe-GNN on your datasets on the **Train** page "
            "(the quick preset takes minutes on a CPU)."
        )
        st.page_link(
            "pages/2_Train.py", label="Open the Train page", icon=":material/model_training:"
        )
    else:
        st.info(
            f"**Next step:** explore the joint gene embedding of run {safe_text(done[0])} "
            "on the **Embedding** page."
        )
