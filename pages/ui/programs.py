"""Cached access to a run's annotated gene programs (labels, hub genes, terms), missing-gene
explanations, labelled exports and the report, for the explore pages."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from musegnn_core.analysis import annotate as core_annotate
from musegnn_core.analysis.missing import MissingGene, explain_missing_gene, suggest_genes
from musegnn_core.errors import MuseGNNError
from pages.ui import loaders
from pages.ui.loaders import RunKey

#: Session key of the libraries chosen on the Clusters page to name clusters with.
LIBRARIES_KEY = "annotation_libraries"


def default_libraries(key: RunKey) -> list[str]:
    ws, run = loaders._open(key)
    return [str(p) for p in core_annotate.default_annotation_libraries(ws, run)]


def chosen_libraries(key: RunKey) -> tuple[str, ...]:
    """The libraries that name clusters in this session (the run's defaults until changed)."""
    chosen = st.session_state.get(LIBRARIES_KEY)
    if chosen is None:
        return tuple(default_libraries(key))
    return tuple(p for p in chosen if Path(p).is_file())


def _stamps(paths: Sequence[str]) -> tuple[int, ...]:
    return tuple(Path(p).stat().st_mtime_ns if Path(p).exists() else 0 for p in paths)


@st.cache_data(max_entries=64, show_spinner="Naming the clusters (enriched terms, hub genes)...")
def _annotations(
    key: RunKey, resolution: float, paths: tuple[str, ...], stamps: tuple[int, ...], nonce: int
) -> core_annotate.Annotations:
    del stamps, nonce  # cache key only
    ws, run = loaders._open(key)
    return core_annotate.run_annotations(ws, run, resolution, list(paths))


def annotations(
    key: RunKey, resolution: float, paths: Sequence[str] | None = None
) -> core_annotate.Annotations:
    """The run's clusters at ``resolution``, named with ``paths`` (default: this session's)."""
    paths = tuple(chosen_libraries(key) if paths is None else paths)
    nonce = st.session_state.get("_annotation_nonce", 0)
    return _annotations(key, float(resolution), paths, _stamps(paths), nonce)


def recompute(key: RunKey, resolution: float) -> None:
    """Annotate again from scratch (button): bypasses both caches."""
    ws, run = loaders._open(key)
    core_annotate.run_annotations(ws, run, resolution, list(chosen_libraries(key)), recompute=True)
    st.session_state["_annotation_nonce"] = st.session_state.get("_annotation_nonce", 0) + 1


def titles(key: RunKey, resolution: float) -> dict[str, str]:
    """Cluster -> "3 · allograft rejection / complement · 500 genes" (number kept)."""
    try:
        return annotations(key, resolution).titles()
    except (MuseGNNError, OSError, ValueError):  # a label is a nicety; the number always works
        return {}


def title(titles_by_cluster: dict[str, str], cluster) -> str:
    return titles_by_cluster.get(str(cluster), f"cluster {cluster}")


@st.cache_data(max_entries=128, show_spinner=False)
def ranked_genes(key: RunKey, resolution: float, cluster: str) -> pd.DataFrame:
    """The cluster's genes, most central first, with their co-expression degree."""
    ws, run = loaders._open(key)
    return core_annotate.cluster_gene_table(
        loaders.embedding(key),
        loaders.labels(key, resolution),
        cluster,
        core_annotate.run_graph_adjacency(ws, run),
    )


@st.cache_data(max_entries=64, show_spinner="Looking for the gene in the raw counts...")
def missing_gene(key: RunKey, gene: str) -> MissingGene:
    ws, run = loaders._open(key)
    result = explain_missing_gene(ws, run, gene, loaders.gene_list(key))
    result.suggestions = suggest_genes(gene, loaders.gene_list(key), datasets_per_gene(key))
    return result


@st.cache_data(max_entries=16, show_spinner=False)
def datasets_per_gene(key: RunKey) -> pd.Series:
    obs = loaders.embedding(key).obs
    return obs.groupby(obs["gene"].astype(str), observed=True)["dataset"].nunique()


def _labelled_obs(key: RunKey, resolution: float) -> pd.DataFrame:
    data = loaders.embedding(key)
    labels = np.asarray(loaders.labels(key, resolution), dtype=str)
    names = annotations(key, resolution).labels()
    table = data.obs.copy()
    table["cluster"] = labels
    table["cluster_label"] = [names.get(c, "") for c in labels]
    return table


@st.cache_data(max_entries=4, show_spinner="Preparing the CSV...")
def embedding_csv(key: RunKey, resolution: float) -> bytes:
    """One row per (gene, dataset): metadata, cluster and its label, UMAP, the embedding."""
    data = loaders.embedding(key)
    table = _labelled_obs(key, resolution)
    table.index.name = "row"
    umap = np.asarray(data.obsm["X_umap"])
    table["umap_1"], table["umap_2"] = umap[:, 0], umap[:, 1]
    values = np.asarray(data.X, dtype=np.float32)
    dims = pd.DataFrame(
        values, index=table.index, columns=[f"dim_{i + 1}" for i in range(values.shape[1])]
    )
    buffer = io.StringIO()
    pd.concat([table, dims], axis=1).to_csv(buffer, float_format="%.6g")
    return buffer.getvalue().encode("utf-8")


def embedding_h5ad(key: RunKey, resolution: float) -> bytes:
    """The run's embeddings with ``obs['cluster']``, ``obs['cluster_label']`` and the
    annotation in ``uns['cluster_annotation']`` (built when the download is clicked)."""
    data = loaders.embedding(key).copy()
    table = _labelled_obs(key, resolution)
    data.obs["cluster"] = pd.Categorical(table["cluster"])
    data.obs["cluster_label"] = table["cluster_label"].to_numpy()
    data.uns["cluster_annotation"] = core_annotate.annotation_uns(annotations(key, resolution))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "embeddings.h5ad"
        data.write_h5ad(path)
        return path.read_bytes()


def report_html(key: RunKey, resolution: float) -> bytes:
    """The run's self-contained HTML report (built when the download is clicked)."""
    from musegnn_core.report import build_report

    ws, run = loaders._open(key)
    return build_report(ws, run.name, resolution, list(chosen_libraries(key))).encode("utf-8")


@st.cache_resource(max_entries=16, show_spinner=False)
def _umap_figure(key, resolution, by, gene, point_size, selected, titles_items):
    from pages.ui import figures

    data = loaders.embedding(key)
    highlight = np.flatnonzero(data.obs["gene"].astype(str).to_numpy() == gene) if gene else []
    return figures.umap_figure(
        data,
        loaders.labels(key, resolution),
        by,
        highlight,
        point_size,
        titles=dict(titles_items),
        selected_cluster=selected,
    )


def umap_figure(
    key: RunKey, resolution: float, by: str, gene: str | None, point_size: int, selected=None
):
    """The UMAP figure and its trace rows, with cluster labels, built once per view (shared
    between sessions: ``st.plotly_chart`` copies a figure before sending it)."""
    names = tuple(sorted(titles(key, resolution).items()))
    return _umap_figure(key, resolution, by, gene, point_size, selected, names)
