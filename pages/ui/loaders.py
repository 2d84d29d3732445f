"""Cached access to a run's results, so that moving between pages is instant after a first load.

Every loader is keyed on a :data:`RunKey`: (workspace root, run name, modification time of
the run's embeddings file). A run that is retrained or resumed writes a new embeddings
file, which changes the key, so nothing stale is ever served. Large objects that the pages
only read (the embedding, the graphs) are shared with ``st.cache_resource``; tables go
through ``st.cache_data`` (each caller gets its own copy).

The loaders only call ``musegnn_core``; errors the user can fix (``MuseGNNError``) are not
cached and reach the page, which shows them with ``run_safely``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import pandas as pd
import streamlit as st

from musegnn_core.analysis import clusters as core_clusters
from musegnn_core.analysis import neighbors as core_neighbors
from musegnn_core.analysis.enrich import enrich_libraries, run_background
from musegnn_core.analysis.evaluate import load_embedding, run_graphs
from musegnn_core.analysis.subgraph import CoexpressionSubgraph, coexpression_subgraph
from musegnn_core.runs import Run, get_run
from musegnn_core.workspace import Workspace

#: (workspace root, run name, embeddings file mtime in ns)
RunKey = tuple[str, str, int]


def run_key(ws: Workspace, run: Run) -> RunKey:
    try:
        stamp = run.embeddings_path.stat().st_mtime_ns
    except FileNotFoundError:
        stamp = 0
    return (str(ws.root), run.name, stamp)


def _open(key: RunKey) -> tuple[Workspace, Run]:
    ws = Workspace.open(key[0], create=False)
    return ws, get_run(ws, key[1])


def trained_resolution(run: Run) -> float:
    """The Leiden resolution the run was trained (and its obs['leiden'] computed) with."""
    return run.trained_resolution()


@st.cache_resource(max_entries=6, show_spinner="Loading the embedding...")
def embedding(key: RunKey) -> ad.AnnData:
    """The run's embedding (shared between sessions: read it, never change it)."""
    return load_embedding(_open(key)[1])


@st.cache_resource(max_entries=3, show_spinner="Loading the co-expression graphs...")
def graphs(key: RunKey) -> dict:
    ws, run = _open(key)
    return run_graphs(ws, run)


@st.cache_data(max_entries=64, show_spinner="Clustering (once per resolution)...")
def labels(key: RunKey, resolution: float) -> pd.Series:
    """Cluster labels at ``resolution`` (computed once, then read from the run folder)."""
    _, run = _open(key)
    return core_clusters.run_clustering(run, embedding(key), resolution).labels


@st.cache_data(max_entries=64, show_spinner=False)
def gene_list(key: RunKey) -> list[str]:
    """The distinct genes of the embedding, sorted."""
    return sorted(set(embedding(key).obs["gene"].astype(str)))


@st.cache_data(max_entries=64, show_spinner=False)
def datasets(key: RunKey) -> list[str]:
    """The run's datasets in the order of the run's config."""
    obs = embedding(key).obs
    names = obs["dataset"].astype(str)
    return list(dict.fromkeys(names))


@st.cache_data(max_entries=64, show_spinner="Summarising clusters...")
def summary(key: RunKey, resolution: float) -> pd.DataFrame:
    return core_clusters.cluster_summary(embedding(key), labels(key, resolution))


@st.cache_data(max_entries=128, show_spinner=False)
def composition(key: RunKey, resolution: float, by: str) -> pd.DataFrame:
    return core_clusters.composition(embedding(key), labels(key, resolution), by=by)


@st.cache_data(max_entries=256, show_spinner=False)
def occurrences(key: RunKey, resolution: float, cluster: str) -> pd.DataFrame:
    return core_clusters.gene_occurrences(embedding(key), labels(key, resolution), cluster)


@st.cache_data(max_entries=256, show_spinner=False)
def nearest(key: RunKey, gene: str, top: int = 20) -> pd.DataFrame:
    return core_neighbors.nearest_genes(embedding(key), gene, top=top)


@st.cache_data(max_entries=256, show_spinner=False)
def instances(key: RunKey, gene: str) -> pd.DataFrame:
    return core_neighbors.gene_instances(embedding(key), gene)


@st.cache_data(max_entries=16, show_spinner=False)
def background(key: RunKey) -> list[str]:
    """The enrichment universe: every gene of the run's graphs."""
    ws, run = _open(key)
    return sorted(run_background(ws, run))


def _stamps(paths: Sequence[str | Path]) -> tuple[int, ...]:
    return tuple(Path(p).stat().st_mtime_ns if Path(p).exists() else 0 for p in paths)


@st.cache_data(max_entries=128, show_spinner="Testing gene sets...")
def _enrichment(
    key: RunKey, genes: tuple[str, ...], paths: tuple[str, ...], stamps: tuple[int, ...]
) -> pd.DataFrame:
    del stamps  # part of the cache key only: an edited library is read again
    return enrich_libraries(list(genes), list(paths), background(key))


def enrichment(key: RunKey, genes: Sequence[str], paths: Sequence[str | Path]) -> pd.DataFrame:
    """Over-representation of ``genes`` in the libraries ``paths`` (cached per library file)."""
    paths = tuple(str(p) for p in paths)
    return _enrichment(key, tuple(sorted(set(genes))), paths, _stamps(paths))


@st.cache_data(max_entries=64, show_spinner="Collecting co-expression edges...")
def subgraph(
    key: RunKey, genes: tuple[str, ...], max_neighbours: int, max_nodes: int, max_edges: int
) -> CoexpressionSubgraph:
    return coexpression_subgraph(
        graphs(key),
        list(genes),
        max_neighbours=int(max_neighbours),
        max_nodes=int(max_nodes),
        max_edges=int(max_edges),
    )


def evaluation(run: Run) -> dict | None:
    """The run's stored evaluation (``evaluation.json``), or None if it was never evaluated."""
    return run.evaluation_record()


def table_csv(table: pd.DataFrame, index: bool = False) -> bytes:
    return table.to_csv(index=index).encode("utf-8")


def csv_download(
    table: pd.DataFrame, label: str, file_name: str, key: str, index: bool = False
) -> None:
    """A CSV download of ``table``; clicking it does not rerun the page."""
    st.download_button(
        label,
        table_csv(table, index=index),
        file_name=file_name,
        mime="text/csv",
        key=key,
        on_click="ignore",
    )


def evaluation_table(evaluation: dict) -> pd.DataFrame:
    """Metrics (rows) x methods (columns) of a stored evaluation: the six, their mean, then
    the gene-set measures; undefined values are NaN."""
    from musegnn_core.analysis.metrics import METRICS

    table = pd.DataFrame(evaluation.get("table", {}), dtype=float)
    first = [m for m in (*METRICS, "mean_of_six") if m in table.index]
    return table.loc[first + [m for m in table.index if m not in first]]
