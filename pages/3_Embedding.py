"""Embedding: the UMAP of every (gene, dataset) row, gene search, and selections for other pages."""

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from pages.ui import figures, loaders, theme
from pages.ui.common import run_safely, safe_text
from pages.ui.selection import bind, bind_error, explore_page, resolve_gene, set_selection

ws, ctx = explore_page("Embedding")

obs = ctx.embedding.obs
run = ctx.run.name
st.caption(
    f"Run **{safe_text(run)}**: {ctx.embedding.n_obs:,} (gene, dataset) rows of "
    f"{obs['gene'].nunique():,} genes from {obs['dataset'].nunique()} datasets, one point per "
    f"gene and dataset; clusters at resolution {ctx.resolution:g}."
)


def apply_plot_selection(chart_key: str, trace_rows, genes, clusters, datasets) -> None:
    """A click selects the point's cluster; a box or lasso selects the genes inside it."""
    kind, rows = figures.selected_rows(st.session_state.get(chart_key), trace_rows)
    if kind == "click":
        row = rows[0]
        set_selection(cluster=str(clusters[row]))
        st.session_state["umap_message"] = (
            f"Selected cluster {clusters[row]} (you clicked {genes[row]} in {datasets[row]})."
        )
    elif kind == "region":
        chosen = sorted(set(genes[rows]))
        set_selection(
            genes=chosen, genes_source=f"a box/lasso of {rows.size} points on the Embedding page"
        )
        st.session_state["umap_message"] = (
            f"Selected a gene set of {len(chosen)} genes ({rows.size} points)."
        )


gene_names = ctx.gene_list()
c1, c2, c3 = st.columns([2, 2, 1])
by = c1.selectbox(
    "Colour by",
    list(figures.COLOR_OPTIONS),
    format_func=figures.COLOR_OPTIONS.get,
    key="umap_color",
)
c2.text_input(
    "Find a gene",
    placeholder="e.g. CD74",
    help="Highlights every instance of the gene (one per dataset) and lists its nearest genes.",
    **bind(
        "gene_query",
        "gene",
        check=lambda text: resolve_gene(text, gene_names),
        to_widget=lambda value: value or "",
    ),
)
size = c3.slider("Point size", 2, 12, 5, key="umap_size")
bind_error("gene_query")

gene = ctx.gene
highlight = (
    np.flatnonzero(obs["gene"].astype(str).to_numpy() == gene) if gene else np.array([], int)
)
fig, trace_rows = loaders.umap_figure(ctx.key, ctx.resolution, by, gene, int(size))
chart_key = f"umap-{run}"
st.plotly_chart(
    fig,
    key=chart_key,
    on_select=partial(
        apply_plot_selection,
        chart_key,
        trace_rows,
        obs["gene"].astype(str).to_numpy(),
        np.asarray(ctx.labels, dtype=str),
        obs["dataset"].astype(str).to_numpy(),
    ),
    selection_mode=("points", "box", "lasso"),
    config=theme.figure_config(f"{run}-umap", image_format="png", scale=3),
)
st.caption(
    "Click a point to select its cluster; draw a box or a lasso (toolbar) to select a gene "
    "set. The selection is used by the Clusters, Enrichment and Co-expression pages."
)
message = st.session_state.pop("umap_message", None)
if message:
    st.success(message)

selection = ctx.selection
if selection["cluster"] is not None or selection["genes"]:
    with st.container(border=True):
        if selection["cluster"] is not None:
            members = int((ctx.labels == selection["cluster"]).sum())
            st.markdown(
                f"**Cluster {selection['cluster']}** at resolution {ctx.resolution:g}: "
                f"{members} rows."
            )
        if selection["genes"]:
            st.markdown(
                f"**Gene set** of {len(selection['genes'])} genes from "
                f"{safe_text(selection['genes_source'] or 'your selection')}: "
                f"{safe_text(', '.join(selection['genes'][:30]))}"
                + (" ..." if len(selection["genes"]) > 30 else "")
            )
            loaders.csv_download(
                pd.DataFrame({"gene": selection["genes"]}),
                "Download the gene set (CSV)",
                f"{run}-gene-set.csv",
                "download_gene_set",
            )
        links = st.columns(3)
        links[0].page_link("pages/4_Clusters.py", label="Clusters", icon=":material/hub:")
        links[1].page_link("pages/5_Enrichment.py", label="Enrichment", icon=":material/biotech:")
        links[2].page_link(
            "pages/6_Coexpression.py", label="Co-expression", icon=":material/share:"
        )

if gene:
    st.subheader(f"{gene}")
    n_instances = len(highlight)
    st.caption(
        f"{gene} is in {n_instances} of the run's {obs['dataset'].nunique()} datasets: "
        + ", ".join(sorted(obs["dataset"].astype(str).to_numpy()[highlight]))
    )
    left, right = st.columns(2)
    with left:
        top = st.slider("Nearest genes to list", 5, 100, 20, step=5, key="nearest_top")
        near = run_safely(lambda: loaders.nearest(ctx.key, gene, top), "Nearest genes")
        if near is not None:
            st.markdown("**Nearest (gene, dataset) rows** by cosine similarity")
            st.dataframe(near, hide_index=True, width="stretch", key="nearest_table")
            loaders.csv_download(
                near, "Download (CSV)", f"{run}-{gene}-nearest.csv", "download_nearest"
            )
    with right:
        matrix = run_safely(lambda: loaders.instances(ctx.key, gene), "Gene instances")
        if matrix is not None:
            if len(matrix) > 1:
                st.plotly_chart(
                    figures.cosine_heatmap(matrix, gene),
                    key="instances_heatmap",
                    config=theme.figure_config(f"{run}-{gene}-instances"),
                )
            else:
                st.info(f"{gene} is in one dataset only: there is nothing to compare it with.")
            st.dataframe(matrix, width="stretch", key="instances_table")
            loaders.csv_download(
                matrix,
                "Download the cosine matrix (CSV)",
                f"{run}-{gene}-instances.csv",
                "download_instances",
                index=True,
            )

st.subheader("Export")
e1, e2 = st.columns(2)
e1.download_button(
    "Embedding as h5ad",
    partial(loaders.embedding_h5ad, ctx.run),
    file_name=f"{run}-embeddings.h5ad",
    mime="application/octet-stream",
    key="download_h5ad",
    on_click="ignore",
    help="The run's embeddings file: 32-d embedding in X, UMAP in obsm, metadata in obs.",
)
e2.download_button(
    "Embedding as CSV",
    partial(loaders.embedding_csv, ctx.key),
    file_name=f"{run}-embeddings.csv",
    mime="text/csv",
    key="download_csv",
    on_click="ignore",
    help="One row per (gene, dataset): metadata, UMAP coordinates and the 32 dimensions.",
)
