"""Co-expression: how a gene or a cluster is wired in each dataset's co-expression graph."""

import streamlit as st

from musegnn_core.analysis.subgraph import LIMITS, keep_correlated
from pages.ui import figures, loaders, programs, theme
from pages.ui.common import run_safely, safe_text
from pages.ui.selection import bind, bind_error, explore_page, resolve_gene

MERGED = "__merged__"

ws, ctx = explore_page("Co-expression")
run = ctx.run.name
selection = ctx.selection

st.caption(
    "Edges are the CS-CORE co-expression edges of the graphs this run was trained on; an "
    "edge's strength is the correlation of the two genes' Pearson residuals in that dataset. "
    "Each asked gene brings its strongest neighbours per dataset, within the size bounds."
)

choices = {"gene": "A gene"}
if selection["cluster"] is not None:
    named = programs.title(programs.titles(ctx.key, ctx.resolution), selection["cluster"])
    choices["cluster"] = f"Cluster {named} (resolution {ctx.resolution:g})"
if selection["genes"]:
    choices["gene_set"] = f"Gene set ({len(selection['genes'])} genes)"
preferred = "gene" if selection["gene"] or len(choices) == 1 else list(choices)[1]
focus = st.radio(
    "Draw around",
    list(choices),
    index=list(choices).index(preferred),
    format_func=choices.get,
    key="coexp_focus",
    horizontal=True,
)

gene_names = ctx.gene_list()
genes: list[str] = []
if focus == "gene":
    st.text_input(
        "Gene",
        placeholder="e.g. CD74",
        **bind(
            "coexp_gene",
            "gene",
            check=lambda text: resolve_gene(text, gene_names),
            to_widget=lambda value: value or "",
        ),
    )
    bind_error("coexp_gene")
    if selection["gene"]:
        genes = [selection["gene"]]
elif focus == "cluster":
    table = run_safely(
        lambda: loaders.occurrences(ctx.key, ctx.resolution, selection["cluster"]),
        "Cluster genes",
    )
    genes = list(table["gene"]) if table is not None else []
else:
    genes = list(selection["genes"])

low_n, high_n = LIMITS["max_neighbours"]
low_v, high_v = LIMITS["max_nodes"]
low_e, high_e = LIMITS["max_edges"]
c1, c2, c3, c4 = st.columns(4)
max_neighbours = c1.slider(
    "Neighbours per gene and dataset",
    low_n,
    high_n,
    10,
    key="coexp_neighbours",
    help="Each asked gene adds its strongest neighbours in each dataset's graph.",
)
max_nodes = c2.slider(
    "Most genes drawn", low_v, high_v, 60, key="coexp_nodes", help="The size bound of the view."
)
max_edges = c3.number_input(
    "Most gene pairs drawn",
    low_e,
    high_e,
    600,
    step=100,
    key="coexp_edges",
    help="Best-supported pairs first (most datasets, then the strongest correlation).",
)
min_r = c4.slider(
    "Minimum |r| drawn",
    0.0,
    0.9,
    0.1,
    step=0.05,
    key="coexp_min_r",
    help="Hide edges whose residual correlation is weaker than this (in either direction). "
    "A significant CS-CORE edge can still be weak.",
)

if not genes:
    if focus == "gene":
        st.info(
            "Type a gene above (or search one on the Embedding page) to draw its neighbourhood."
        )
    st.stop()

sub = run_safely(
    lambda: loaders.subgraph(
        ctx.key, tuple(genes), int(max_neighbours), int(max_nodes), int(max_edges)
    ),
    "Drawing the co-expression subgraph",
)
if sub is None:
    st.stop()
sub = keep_correlated(sub, float(min_r))

dataset_colors = theme.category_colors(loaders.datasets(ctx.key))
view = st.selectbox(
    "Edges shown",
    [MERGED, *sub.datasets],
    format_func=lambda v: (
        "All datasets (merged; colour = datasets supporting the edge, dotted = negative r)"
        if v == MERGED
        else f"{v} only"
    ),
    key="coexp_view",
)
for note in sub.notes:
    st.info(safe_text(note), icon=":material/content_cut:")

m1, m2, m3, m4 = st.columns(4)
m1.metric("Genes drawn", len(sub.nodes))
m2.metric("Asked genes drawn", int(sub.nodes["seed"].sum()))
m3.metric("Gene pairs", len(sub.merged))
m4.metric(
    "Pairs in 2+ datasets", int((sub.merged["n_datasets"] >= 2).sum()) if len(sub.merged) else 0
)
if view != MERGED:
    n_view = int((sub.edges["dataset"] == view).sum())
    st.caption(
        f"{n_view} edges in {safe_text(view)}; genes that are not in its graph are faded. "
        "Solid lines: positive correlation; dotted: negative."
    )
title = genes[0] if focus == "gene" else choices[focus]
st.plotly_chart(
    figures.network_figure(
        sub, None if view == MERGED else view, dataset_colors, title=theme.wrap_label(title, 90)
    ),
    key="coexp_network",
    config=theme.figure_config(f"{run}-coexpression-{title}".replace(" ", "_")),
)

edges_tab, merged_tab, nodes_tab = st.tabs(["Edges per dataset", "Gene pairs (merged)", "Genes"])
with edges_tab:
    edges = sub.edges if view == MERGED else sub.edges[sub.edges["dataset"] == view]
    st.dataframe(edges, hide_index=True, width="stretch", key="coexp_edges_table")
    loaders.csv_download(
        edges, "Download the edges (CSV)", f"{run}-coexpression-edges.csv", "download_coexp_edges"
    )
with merged_tab:
    st.dataframe(sub.merged, hide_index=True, width="stretch", key="coexp_merged_table")
    loaders.csv_download(
        sub.merged,
        "Download the gene pairs (CSV)",
        f"{run}-coexpression-pairs.csv",
        "download_coexp_pairs",
    )
with nodes_tab:
    st.dataframe(
        sub.nodes.drop(columns=["x", "y"]),
        hide_index=True,
        width="stretch",
        key="coexp_nodes_table",
    )
    loaders.csv_download(
        sub.nodes,
        "Download the genes (CSV)",
        f"{run}-coexpression-genes.csv",
        "download_coexp_nodes",
    )
