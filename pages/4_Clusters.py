"""Clusters: Leiden clusters of the joint embedding at a chosen resolution, and their genes."""

import streamlit as st

from musegnn_core.analysis.annotate import labelled_summary
from musegnn_core.analysis.clusters import (
    COMPOSITION_KEYS,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    check_resolution,
)
from musegnn_core.analysis.libraries import list_libraries
from pages.ui import figures, loaders, programs, theme
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

libraries = {str(lib.path): lib.name for lib in list_libraries(ws)}
if programs.LIBRARIES_KEY not in st.session_state:
    st.session_state[programs.LIBRARIES_KEY] = [
        p for p in programs.default_libraries(ctx.key) if p in libraries
    ]
n1, n2 = st.columns([4, 1])
n1.multiselect(
    "Name clusters with",
    list(libraries),
    format_func=libraries.get,
    key=programs.LIBRARIES_KEY,
    help="Each cluster is named by its most enriched gene sets in these libraries (adjusted "
    "p < 0.05, 2+ genes), or by its hub genes when none is enriched. Computed once per "
    "resolution and library set, then read from the run folder.",
)
n2.button(
    "Name again",
    key="annotate_again",
    on_click=lambda: run_safely(
        lambda: programs.recompute(ctx.key, ctx.resolution), "Naming the clusters"
    ),
    help="Recompute the labels, hub genes and terms (e.g. after editing a library).",
)
program = run_safely(lambda: programs.annotations(ctx.key, ctx.resolution), "Naming the clusters")
summary = run_safely(lambda: loaders.summary(ctx.key, ctx.resolution), "Cluster summary")
if summary is None or program is None:
    st.stop()
table = labelled_summary(summary, program)
names = program.titles()
if program.note:
    st.info(safe_text(program.note))


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
        "label": st.column_config.TextColumn(
            "label", help="Top enriched terms (or hub genes when none) · number of genes"
        ),
        "hub_genes": st.column_config.TextColumn(
            "hub genes", help="The genes most central to the cluster in the embedding"
        ),
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
        figures.composition_heatmap(composition, by, share, names),
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
    format_func=lambda c: f"{programs.title(names, c)} ({sizes.get(c, 0)} rows)",
    **bind("cluster_picker", "cluster"),
)
cluster = ctx.cluster
if cluster is not None:
    record = program.cluster(cluster)
    st.markdown(f"#### {safe_text(programs.title(names, cluster))}")
    if record["labelled_by"] == "hub genes":
        st.caption(
            "No gene set of the chosen libraries is enriched in this cluster (adjusted p < "
            "0.05 with 2+ genes), so it is named by its hub genes."
        )
    hub_col, term_col = st.columns([1, 1])
    with hub_col:
        st.markdown("**Hub genes** (most central in the embedding)")
        st.dataframe(
            record["hub_genes"],
            hide_index=True,
            width="stretch",
            key="hub_genes_table",
            column_config={
                "centrality": st.column_config.NumberColumn(
                    "centrality", help="Mean cosine to the cluster's other rows", format="%.3f"
                ),
                "n_datasets": st.column_config.NumberColumn("datasets"),
                "coexpression_degree": st.column_config.NumberColumn(
                    "degree",
                    help="Co-expression degree: genes of this cluster it is co-expressed with "
                    "in the run's graphs",
                ),
            },
        )
        breadth = record["breadth"]
        st.caption(
            "Breadth: "
            + "; ".join(
                f"{len(breadth[k])} {plural}"
                for k, plural in (
                    ("dataset", "datasets"),
                    ("tissue", "tissues"),
                    ("modality", "modalities"),
                    ("species", "species"),
                )
            )
        )
    with term_col:
        st.markdown("**Top enriched terms** (per library)")
        if record["top_terms"]:
            st.dataframe(
                [
                    {
                        "term": t["name"],
                        "library": t["library"],
                        "overlap": t["overlap"],
                        "adjusted_p_value": t["adjusted_p_value"],
                        "genes": t["genes"].replace(";", ", "),
                    }
                    for t in record["top_terms"]
                ],
                hide_index=True,
                width="stretch",
                key="top_terms_table",
                column_config={
                    "adjusted_p_value": st.column_config.NumberColumn("adjusted p", format="%.2e")
                },
            )
        else:
            st.caption("None significant.")
    genes = run_safely(
        lambda: programs.ranked_genes(ctx.key, ctx.resolution, cluster), "Cluster genes"
    )
    if genes is not None:
        st.markdown("**Genes of the cluster**, most central first")
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
                "centrality": st.column_config.NumberColumn(
                    "centrality", help="Mean cosine to the cluster's other rows", format="%.3f"
                ),
                "coexpression_degree": st.column_config.NumberColumn(
                    "co-expression degree",
                    help="Genes of this cluster it is co-expressed with in the run's graphs",
                ),
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
st.subheader("Report")
st.download_button(
    "Download the lab-meeting report (HTML)",
    lambda: programs.report_html(ctx.key, ctx.resolution),
    file_name=f"{run}-report-res{ctx.resolution:g}.html",
    mime="text/html",
    key="download_report",
    on_click="ignore",
    help="One self-contained file that opens offline: datasets and settings, the UMAP by "
    "labelled cluster, the clusters with labels and hub genes, their top terms and the "
    "benchmark table.",
)
st.caption(f"Run {safe_text(run)}, resolution {ctx.resolution:g}.")
