"""Data: import datasets (upload or server path), see what the workspace holds, delete."""

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from musegnn_core.data.importer import ImportOptions, import_datasets
from musegnn_core.data.readers import ORIENTATIONS, safe_upload_name
from musegnn_core.graphs.build import build_graphs
from musegnn_core.graphs.cellqc import cell_qc_table
from musegnn_core.metadata import MODALITIES, MODALITY_LABELS, SPECIES
from musegnn_core.settings import GRAPH_SETTINGS, PRESETS, GraphConfig
from musegnn_core.workspace import Workspace
from pages.ui.common import (
    datasets_frame,
    flash,
    graphs_frame,
    page_head,
    run_safely,
    safe_text,
)
from pages.ui.qcplots import counts_histogram, genes_histogram, spatial_scatter
from pages.ui.settings_form import setting_input, widget_value

UPLOAD_TYPES = ["h5ad", "h5", "csv", "tsv", "txt", "gz"]
FROM_FILE = "(from file or guess)"

ws = page_head("Data")


def metadata_options(key: str) -> ImportOptions:
    """The metadata form shared by both import routes."""
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Dataset name", key=f"{key}-name", placeholder="from the file name")
    species = c2.selectbox("Species", [FROM_FILE, *SPECIES], key=f"{key}-species")
    modality = c3.selectbox(
        "Modality",
        [FROM_FILE, *MODALITIES],
        key=f"{key}-modality",
        format_func=lambda m: MODALITY_LABELS.get(m, m),
    )
    c4, c5, c6 = st.columns(3)
    tissue = c4.text_input("Tissue", key=f"{key}-tissue", placeholder="e.g. pancreas")
    technology = c5.text_input("Technology", key=f"{key}-technology", placeholder="e.g. 10x v3")
    orientation = c6.selectbox(
        "Table orientation", ORIENTATIONS, key=f"{key}-orientation", help="Only for CSV/TSV tables."
    )
    coordinates = st.text_input(
        "Spot coordinates file on the server (spatial data without obsm['spatial'])",
        key=f"{key}-coords",
        placeholder="/path/to/coordinates.csv",
    )
    allow = st.checkbox(
        "Round non-integer counts (estimated counts, e.g. Salmon)",
        key=f"{key}-allow",
        help="Raw counts must be integers; rounding is recorded in the dataset's notes.",
    )
    return ImportOptions(
        name=name.strip() or None,
        species=None if species == FROM_FILE else species,
        modality=None if modality == FROM_FILE else modality,
        tissue=tissue.strip() or None,
        technology=technology.strip() or None,
        orientation=orientation,
        allow_non_integer=allow,
        coordinates=coordinates.strip() or None,
    )


def report(prepared) -> None:
    for item in prepared:
        m = item.meta
        st.success(
            f"Imported **{safe_text(m.name)}**: {m.n_cells:,} cells x {m.n_genes:,} genes "
            f"({m.species}, {safe_text(m.tissue)}, {MODALITY_LABELS[m.modality]})."
        )
        for note in item.notes:
            st.caption(f"Note: {safe_text(note)}")


st.subheader("Datasets in this workspace")
st.dataframe(datasets_frame(ws), hide_index=True, width="stretch")


@st.cache_data(max_entries=32, show_spinner="Computing per-cell quality numbers...")
def qc_table(root: str, name: str, mtime: float) -> pd.DataFrame:
    """Cached per dataset file: a re-import (new mtime) recomputes."""
    return cell_qc_table(Workspace(root), name)


st.subheader("Quality control")
qc_names = ws.dataset_names()
if qc_names:
    qc_name = st.selectbox("Dataset", qc_names, key="qc-dataset")
    qc = run_safely(
        lambda: qc_table(str(ws.root), qc_name, ws.dataset_path(qc_name).stat().st_mtime),
        "Quality control",
    )
    if qc is not None and not qc.empty:
        kept = int(qc["passes_qc"].sum())
        st.caption(
            f"{len(qc):,} cells; {kept:,} ({kept / len(qc):.1%}) pass the default QC of graph "
            f"building. Median {qc['total_counts'].median():,.0f} counts and "
            f"{qc['n_genes_by_counts'].median():,.0f} genes per cell."
        )
        q1, q2 = st.columns(2)
        q1.plotly_chart(counts_histogram(qc), key="qc-counts")
        q2.plotly_chart(genes_histogram(qc), key="qc-genes")
        if "x" in qc:
            st.plotly_chart(spatial_scatter(qc), key="qc-spatial")
else:
    st.caption("Import a dataset to see its quality control.")

st.subheader("Import")
upload_tab, path_tab = st.tabs(["Upload a file", "Path on this server"])

with upload_tab:
    uploaded = st.file_uploader(
        "Count matrix (.h5ad, 10x .h5, CSV/TSV table)", type=UPLOAD_TYPES, key="upload-file"
    )
    options = metadata_options("upload")
    if st.button("Import uploaded file", disabled=uploaded is None, key="upload-go"):
        # Saved under a sanitised name inside the workspace so a crafted file name can
        # never point outside it; removed again whatever happens.
        staging = Path(tempfile.mkdtemp(prefix=".tmp-upload-", dir=ws.root))
        try:
            target = staging / safe_upload_name(uploaded.name)
            target.write_bytes(uploaded.getbuffer())
            with st.spinner("Reading and validating..."):
                result = run_safely(lambda: import_datasets(ws, [target], options), "Import")
            if result:
                report(result)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

with path_tab:
    server_path = st.text_input(
        "File or 10x folder on this machine",
        key="path-input",
        placeholder="/data/pbmc3k/filtered_feature_bc_matrix",
    )
    options = metadata_options("path")
    if st.button("Import from path", disabled=not server_path.strip(), key="path-go"):
        with st.spinner("Reading and validating..."):
            result = run_safely(
                lambda: import_datasets(ws, [Path(server_path.strip()).expanduser()], options),
                "Import",
            )
        if result:
            report(result)

st.subheader("Co-expression graphs")
st.caption(
    "Per dataset: QC, the top genes by Pearson-residual variance (SPARK-X for spatial data), "
    "mouse genes mapped to human orthologs, and CS-CORE co-expression edges."
)
graph_table = graphs_frame(ws)
if not graph_table.empty:
    st.dataframe(graph_table, hide_index=True, width="stretch")
base = st.radio(
    "Start from the settings of",
    list(PRESETS),
    index=list(PRESETS).index("quick") if "quick" in PRESETS else 0,
    horizontal=True,
    key="graph-preset",
    help="The graphs a training with this preset uses, so it finds them built.",
)
if st.session_state.get("graph-preset-loaded") != base:
    for name, spec in GRAPH_SETTINGS.items():
        st.session_state[f"graph-{name}"] = widget_value(spec, getattr(PRESETS[base].graph, name))
    st.session_state["graph-preset-loaded"] = base
with st.form("build-graphs"):
    specs = list(GRAPH_SETTINGS.values())
    for row in range(0, len(specs), 3):
        for column, spec in zip(st.columns(3), specs[row : row + 3], strict=False):
            setting_input(column, spec, f"graph-{spec.name}")
    chosen = st.multiselect(
        "Datasets", ws.dataset_names(), default=ws.dataset_names(), key="graph-datasets"
    )
    go = st.form_submit_button(
        "Build graphs", type="primary", disabled=not ws.dataset_names(), key="graph-go"
    )
if go:
    bar = st.progress(0.0, text="Starting...")
    summaries = run_safely(
        lambda: build_graphs(
            ws,
            chosen or None,
            GraphConfig(**{name: st.session_state[f"graph-{name}"] for name in GRAPH_SETTINGS}),
            progress=lambda f, message: bar.progress(min(f, 1.0), text=message),
        ),
        "Building graphs",
    )
    if summaries:
        built = sum(not s.cached for s in summaries)
        flash(
            f"Graphs ready for {len(summaries)} datasets ({built} built, "
            f"{len(summaries) - built} from cache)."
        )
        st.rerun()

st.subheader("Delete a dataset")
names = ws.dataset_names()
if names:
    victim = st.selectbox("Dataset", names, key="delete-name")
    sure = st.checkbox(
        "Yes, delete it and its cached graphs (training runs are kept)", key="delete-confirm"
    )
    if st.button("Delete", disabled=not sure, type="primary", key="delete-go") and run_safely(
        lambda: ws.delete_dataset(victim) or True, "Delete"
    ):
        flash(f"Deleted {safe_text(victim)}.")
        st.rerun()
else:
    st.caption("No datasets to delete.")
