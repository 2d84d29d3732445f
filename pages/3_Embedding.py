"""Embedding: the UMAP of every (gene, dataset) row, gene search, and selections for other pages."""

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from musegnn_core.pins import pin_genes, pinned_genes
from pages.ui import figures, loaders, programs, theme
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
    if kind != "none":
        # A new chart key on the next run: the plot comes back without the click's fading
        # or the drawn box, so what is shown (and exported) is the highlighted selection.
        st.session_state["umap_version"] = st.session_state.get("umap_version", 0) + 1
    if kind == "click":
        row = rows[0]
        set_selection(cluster=str(clusters[row]))
        st.session_state["umap_message"] = (
            f"Selected cluster {programs.title(names, clusters[row])} "
            f"(you clicked {genes[row]} in {datasets[row]})."
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
names = programs.titles(ctx.key, ctx.resolution)
c1, c2, c3 = st.columns([2, 2, 1])
by = c1.selectbox(
    "Colour by",
    list(figures.COLOR_OPTIONS),
    format_func=figures.COLOR_OPTIONS.get,
    **bind("umap_color", "color", to_widget=lambda value: value or "dataset"),
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


def pin(gene_to_pin: str) -> None:
    pinned = run_safely(lambda: pin_genes(ws, [gene_to_pin]), "Pinning the gene")
    if pinned is not None:
        st.session_state["umap_message"] = (
            f"Pinned {gene_to_pin}: the Train page offers it for the next run "
            f"({len(pinned)} pinned gene{'s' if len(pinned) != 1 else ''})."
        )


query = (st.session_state.get("gene_query") or "").strip()
if st.session_state.get("_bind_error_gene_query") and query:
    missing = run_safely(lambda: programs.missing_gene(ctx.key, query), "Looking for the gene")
    if missing is not None:
        with st.container(border=True):
            st.markdown(
                f"**Why is {safe_text(query)} not in this run?** {safe_text(missing.summary)}"
            )
            held = missing.datasets.dropna(subset=["symbol"])
            if not held.empty:
                st.dataframe(held, hide_index=True, width="stretch", key="missing_table")
            if missing.suggestions:
                st.caption(
                    "Related genes in this run: "
                    + safe_text(", ".join(f"{s['gene']} ({s['why']})" for s in missing.suggestions))
                )
            else:
                st.caption("No gene of the same symbol family is in this run.")
            already = query in pinned_genes(ws)
            st.button(
                f"Pin {query} for the next run" if not already else f"{query} is pinned",
                key="pin_gene",
                on_click=pin,
                args=(query,),
                disabled=already or held.empty,
                help="Keeps the gene in every graph of the next run where it is expressed "
                "(the Train page pre-fills its genes to include from the pinned list).",
            )

gene = ctx.gene
highlight = (
    np.flatnonzero(obs["gene"].astype(str).to_numpy() == gene) if gene else np.array([], int)
)
selected_cluster = ctx.cluster
fig, trace_rows = programs.umap_figure(
    ctx.key, ctx.resolution, by, gene, int(size), selected_cluster
)
version = st.session_state.get("umap_version", 0)
chart_key = f"umap-{run}" + (f"-v{version}" if version else "")
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
    "Click a point to select its cluster (it stays in colour, the rest turns grey); draw a "
    "box or a lasso (toolbar) to select a gene set. The selection is used by the Clusters, "
    "Enrichment and Co-expression pages. The camera icon saves the view as a PNG."
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
                f"**Cluster {safe_text(programs.title(names, selection['cluster']))}** at "
                f"resolution {ctx.resolution:g}: {members} rows."
            )
            program = run_safely(
                lambda: programs.annotations(ctx.key, ctx.resolution).cluster(selection["cluster"]),
                "Naming the cluster",
            )
            if program is not None:
                hubs = ", ".join(
                    f"{h['gene']} ({h['coexpression_degree']})" for h in program["hub_genes"]
                )
                st.markdown(f"Hub genes (co-expression degree in the cluster): {safe_text(hubs)}")
                if program["top_terms"]:
                    terms = "; ".join(
                        f"{t['name']} ({t['library']}, adj. p {t['adjusted_p_value']:.1e})"
                        for t in program["top_terms"][:3]
                    )
                    st.markdown(f"Top terms: {safe_text(terms)}")
                else:
                    st.caption(
                        "No gene set is enriched here: the cluster is named by its hub genes."
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
    partial(programs.embedding_h5ad, ctx.key, ctx.resolution),
    file_name=f"{run}-embeddings.h5ad",
    mime="application/octet-stream",
    key="download_h5ad",
    on_click="ignore",
    help="The run's embeddings: the gene embedding in X, UMAP in obsm, metadata, cluster and "
    "cluster label in obs, the clusters' labels, hub genes and terms in uns.",
)
e2.download_button(
    "Embedding as CSV",
    partial(programs.embedding_csv, ctx.key, ctx.resolution),
    file_name=f"{run}-embeddings.csv",
    mime="text/csv",
    key="download_csv",
    on_click="ignore",
    help="One row per (gene, dataset): metadata, cluster and its label, UMAP coordinates "
    "and the embedding's dimensions.",
)
