"""Clusters: Leiden clusters of the joint embedding at a chosen resolution, and their genes."""

import streamlit as st

from musegnn_core.analysis.clusters import (
    COMPOSITION_KEYS,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    check_resolution,
)
from pages.ui import figures, loaders, theme
from pages.ui.common import run_safely, safe_text
from pages.ui.selection import bind, explore_page, set_selection

ws, ctx = explore_page("Clusters")
run = ctx.run.name

st.caption(
    "A cluster that holds the same gene from several datasets is a common functional gene "
    "group; its genes seen in one tissue or one modality only are the specific part of it."
)
c1, c2, c3 = st.columns([1, 1, 2])
c1.number_input(
    "Leiden resolution",
    min_value=MIN_RESOLUTION,
    max_value=MAX_RESOLUTION,
    step=0.1,
    format="%.2f",
    help=f"Higher gives more, smaller clusters. The run was trained with "
    f"{ctx.trained_resolution:g}; other resolutions are computed once (a few seconds) "
    "and kept in the run folder.",
    **bind("resolution_input", "res", check=check_resolution),
)
c2.metric("Clusters", ctx.labels.nunique())
c3.metric("Rows (gene, dataset)", f"{ctx.embedding.n_obs:,}")

table = run_safely(lambda: loaders.summary(ctx.key, ctx.resolution), "Cluster summary")
if table is None:
    st.stop()


def pick_from_table(table_key: str, clusters: list[str]) -> None:
    rows = st.session_state[table_key]["selection"]["rows"]
    if rows:
        set_selection(cluster=clusters[rows[0]])


st.subheader("Clusters")
table_key = f"clusters_table-{run}-{ctx.resolution:g}"
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    key=table_key,
    on_select=lambda: pick_from_table(table_key, list(table["cluster"])),
    selection_mode="single-row",
    column_config={
        "cluster": st.column_config.TextColumn("cluster", help="Numbered by size, 0 the largest"),
        "size": st.column_config.NumberColumn("rows", help="(gene, dataset) rows"),
        "n_genes": st.column_config.NumberColumn("genes"),
        "n_datasets": st.column_config.NumberColumn("datasets"),
        "n_shared_genes": st.column_config.NumberColumn(
            "shared genes", help="Genes in this cluster from at least two datasets"
        ),
        "n_tissue_only_genes": st.column_config.NumberColumn(
            "tissue-only genes", help="Genes whose instances here all come from one tissue"
        ),
        "n_modality_only_genes": st.column_config.NumberColumn(
            "modality-only genes", help="Genes whose instances here all come from one modality"
        ),
    },
)
st.caption("Select a row to open that cluster below (and on the other pages).")
loaders.csv_download(
    table,
    "Download the clusters table (CSV)",
    f"{run}-clusters-res{ctx.resolution:g}.csv",
    "download_clusters",
)

st.subheader("Composition")
h1, h2 = st.columns([2, 1])
by = h1.segmented_control(
    "Rows per cluster and", COMPOSITION_KEYS, default="dataset", key="composition_by"
)
by = by or "dataset"
share = h2.toggle("Show each cluster's shares", value=True, key="composition_share")
composition = run_safely(
    lambda: loaders.composition(ctx.key, ctx.resolution, by), "Cluster composition"
)
if composition is not None:
    st.plotly_chart(
        figures.composition_heatmap(composition, by, share),
        key="composition_heatmap",
        config=theme.figure_config(f"{run}-clusters-by-{by}"),
    )
    loaders.csv_download(
        composition,
        f"Download the cluster x {by} table (CSV)",
        f"{run}-clusters-by-{by}-res{ctx.resolution:g}.csv",
        "download_composition",
        index=True,
    )

st.subheader("Genes of a cluster")
clusters = ctx.clusters()
sizes = dict(zip(table["cluster"], table["size"], strict=True))
st.selectbox(
    "Cluster",
    clusters,
    index=None,
    placeholder="Pick a cluster (or select a row above, or click a point on the Embedding page)",
    format_func=lambda c: f"cluster {c} ({sizes.get(c, 0)} rows)",
    **bind("cluster_picker", "cluster"),
)
cluster = ctx.cluster
if cluster is not None:
    genes = run_safely(
        lambda: loaders.occurrences(ctx.key, ctx.resolution, cluster), "Cluster genes"
    )
    if genes is not None:
        shared = int(genes["shared"].sum())
        m1, m2, m3 = st.columns(3)
        m1.metric("Genes", len(genes))
        m2.metric("Shared by 2+ datasets", shared)
        m3.metric("Tissue- or modality-specific", int((genes["specific_to"] != "").sum()))
        st.dataframe(
            genes,
            hide_index=True,
            width="stretch",
            key="cluster_genes_table",
            column_config={
                "n_datasets": st.column_config.NumberColumn(
                    "datasets here", help="Datasets whose instance of the gene is in this cluster"
                ),
                "n_datasets_in_run": st.column_config.NumberColumn(
                    "datasets in run", help="Datasets having the gene at all"
                ),
            },
        )
        loaders.csv_download(
            genes,
            f"Download cluster {cluster}'s genes (CSV)",
            f"{run}-cluster{cluster}-res{ctx.resolution:g}-genes.csv",
            "download_cluster_genes",
        )
        links = st.columns(2)
        links[0].page_link(
            "pages/5_Enrichment.py",
            label=f"Enrichment of cluster {cluster}",
            icon=":material/biotech:",
        )
        links[1].page_link(
            "pages/6_Coexpression.py",
            label=f"Co-expression of cluster {cluster}",
            icon=":material/share:",
        )
else:
    st.info(
        f"No cluster selected. {len(clusters)} clusters at resolution {ctx.resolution:g}; "
        f"pick one above to list its genes and where each occurs.",
    )
st.caption(f"Run {safe_text(run)}, resolution {ctx.resolution:g}.")
