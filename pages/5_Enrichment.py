"""Enrichment: which gene sets are over-represented in a cluster, a selected gene set or typed genes."""

import streamlit as st

from musegnn_core.analysis.libraries import (
    fetch_enrichr_library,
    list_libraries,
    save_uploaded_library,
)
from pages.ui import figures, loaders, programs, theme
from pages.ui.common import run_safely, safe_text
from pages.ui.selection import explore_page, split_genes

ws, ctx = explore_page("Enrichment")
run = ctx.run.name
selection = ctx.selection

st.caption(
    "Over-representation analysis (hypergeometric test, Benjamini-Hochberg adjusted). The "
    "background is every gene of the run's co-expression graphs, not the genome; mouse genes "
    "are matched through their human orthologs."
)

# ------------------------------------------------------------------ what to test
st.subheader("Genes to test")
choices = {}
if selection["cluster"] is not None:
    named = programs.title(programs.titles(ctx.key, ctx.resolution), selection["cluster"])
    choices["cluster"] = f"Cluster {named} (resolution {ctx.resolution:g})"
if selection["genes"]:
    choices["gene_set"] = (
        f"Gene set of {len(selection['genes'])} genes "
        f"from {selection['genes_source'] or 'your selection'}"
    )
choices["typed"] = "Genes I type"
source = st.radio(
    "Selection", list(choices), format_func=choices.get, key="enrich_source", horizontal=True
)
if len(choices) == 1:
    st.caption(
        "Tip: pick a cluster on the Clusters page, or click or lasso points on the Embedding "
        "page, to test them here."
    )

genes: list[str] = []
what = ""
if source == "cluster":
    table = run_safely(
        lambda: loaders.occurrences(ctx.key, ctx.resolution, selection["cluster"]),
        "Cluster genes",
    )
    if table is not None:
        genes = list(table["gene"])
        what = f"cluster {selection['cluster']} at resolution {ctx.resolution:g}"
elif source == "gene_set":
    genes = list(selection["genes"])
    what = f"the gene set from {selection['genes_source'] or 'your selection'}"
else:
    typed = st.text_area(
        "Gene symbols",
        key="enrich_typed",
        placeholder="CD74, HLA-DRA, CD79A ... (commas, spaces or one per line)",
        height=100,
    )
    candidates, rejected = split_genes(typed)
    known = set(ctx.gene_list())
    unknown = [g for g in candidates if g not in known]
    if rejected:
        st.warning(
            f"Ignored {len(rejected)} entries that are not gene symbols: "
            f"{safe_text(', '.join(rejected[:10]))}"
        )
    if unknown:
        st.warning(
            f"{len(unknown)} of the {len(candidates)} genes are not in this run and are left out: "
            f"{safe_text(', '.join(unknown[:15]))}{' ...' if len(unknown) > 15 else ''}"
        )
    genes = [g for g in candidates if g in known]
    if typed.strip() and not genes:
        st.error(
            "None of the typed genes is in this run's embedding. Use human gene symbols "
            "(mouse genes appear under their human ortholog), e.g. from the Embedding page."
        )
    what = "your genes"
if genes:
    st.caption(
        f"{len(genes)} genes: {safe_text(', '.join(genes[:25]))}{' ...' if len(genes) > 25 else ''}"
    )

# ------------------------------------------------------------------ libraries
st.subheader("Gene-set libraries")
ORDER = {
    "human_msigdb_hallmark_v7.0": 0,
    "human_enrichr_GO_Biological_Process_2021": 1,
}
SOURCES = {
    "shared": "shared",
    "workspace": "uploaded",
    "enrichr": "Enrichr",
    "simulated": "simulated atlas",
    "folder": "folder",
}


def known_libraries():
    found = list_libraries(ws)
    return sorted(
        found,
        key=lambda lib: (ORDER.get(lib.name, 2 if lib.source == "shared" else 3), lib.name),
    )


def add_to_chosen(path: str) -> None:
    chosen = list(st.session_state.get("enrich_libraries") or [])
    if path not in chosen:
        st.session_state["enrich_libraries"] = [*chosen, path]


with st.expander("Add a library (upload a .gmt or fetch from Enrichr)"):
    uploaded = st.file_uploader(
        "GMT file (tab-separated: set name, description, genes)", type=["gmt"], key="gmt_upload"
    )
    results = st.session_state.setdefault("gmt_upload_results", {})
    if uploaded is not None:
        signature = f"{uploaded.file_id}:{uploaded.name}:{uploaded.size}"
        if signature not in results:
            library = run_safely(
                lambda: save_uploaded_library(ws, uploaded.name, uploaded.getvalue()),
                "Adding the library",
            )
            results[signature] = library and f"Added {library.name}: it is now selected below."
            if library is not None:
                add_to_chosen(str(library.path))
        elif results[signature] is None:
            st.error(
                f"{safe_text(uploaded.name)} was not added (see the message when it was "
                "uploaded); fix the file and upload it again."
            )
        if results[signature]:
            st.success(safe_text(results[signature]))
    e1, e2 = st.columns([3, 1])
    enrichr_name = e1.text_input(
        "Enrichr library name",
        key="enrichr_name",
        placeholder="e.g. KEGG_2021_Human",
        help="Downloaded once from Enrichr (needs internet) and kept in the workspace.",
    )
    if e2.button("Fetch", key="enrichr_go", disabled=not enrichr_name.strip()):
        with st.spinner("Asking Enrichr..."):
            library = run_safely(
                lambda: fetch_enrichr_library(ws, enrichr_name.strip()), "Fetching from Enrichr"
            )
        if library is not None:
            add_to_chosen(str(library.path))
            st.success(f"{safe_text(library.name)} is ready and selected below.")

libraries = known_libraries()
if not libraries:
    st.info(
        "No gene-set library is available: upload a .gmt above (MSigDB and Enrichr offer them)."
    )
    st.stop()
labels = {str(lib.path): f"{lib.name} ({SOURCES.get(lib.source, lib.source)})" for lib in libraries}
if "enrich_libraries" not in st.session_state:
    preferred = [lib for lib in libraries if lib.name == "human_msigdb_hallmark_v7.0"] or [
        lib for lib in libraries if lib.source == "simulated"
    ]
    st.session_state["enrich_libraries"] = [str((preferred or libraries)[0].path)]
if any(p not in labels for p in st.session_state["enrich_libraries"]):
    st.session_state["enrich_libraries"] = [
        p for p in st.session_state["enrich_libraries"] if p in labels
    ]
chosen = st.multiselect(
    "Libraries to test against", list(labels), format_func=labels.get, key="enrich_libraries"
)

go = st.button("Run enrichment", type="primary", key="enrich_go", disabled=not (genes and chosen))
if go:
    st.session_state["enrich_request"] = {
        "key": ctx.key,
        "genes": tuple(genes),
        "paths": tuple(chosen),
        "what": what,
    }

# ------------------------------------------------------------------ results
request = st.session_state.get("enrich_request")
if request and request["key"] == ctx.key:
    result = run_safely(
        lambda: loaders.enrichment(ctx.key, request["genes"], request["paths"]), "Enrichment"
    )
    if result is not None:
        names = ", ".join(labels.get(p, p) for p in request["paths"])
        st.subheader("Results")
        st.caption(
            f"{safe_text(request['what'])} ({len(request['genes'])} genes) against "
            f"{safe_text(names)}; background: {len(loaders.background(ctx.key)):,} genes of the "
            "run's graphs."
        )
        if result.empty:
            st.info(
                "No gene set shares a gene with this selection. Try another library or a "
                "larger selection."
            )
        else:
            significant = int((result["adjusted_p_value"] < 0.05).sum())
            r1, r2 = st.columns(2)
            r1.metric("Sets sharing a gene", len(result))
            r2.metric("Adjusted p < 0.05", significant)
            st.plotly_chart(
                figures.enrichment_bars(result),
                key="enrichment_bars",
                config=theme.figure_config(f"{run}-enrichment"),
            )
            shown = result[
                [
                    "term",
                    "overlap",
                    "adjusted_p_value",
                    "p_value",
                    "odds_ratio",
                    "genes",
                    "library",
                ]
            ]
            st.dataframe(
                shown,
                hide_index=True,
                width="stretch",
                key="enrichment_table",
                column_config={
                    "adjusted_p_value": st.column_config.NumberColumn("adjusted p", format="%.2e"),
                    "p_value": st.column_config.NumberColumn("p", format="%.2e"),
                    "odds_ratio": st.column_config.NumberColumn("odds ratio", format="%.2f"),
                },
            )
            loaders.csv_download(
                result, "Download the results (CSV)", f"{run}-enrichment.csv", "download_enrichment"
            )
elif not genes:
    st.info("Choose genes to test above, then run the enrichment.")
