"""Build, cache and load the gene co-expression graph of each dataset.

One graph per dataset: QC -> gene selection (Pearson-residual HVGs, or SPARK-X for
spatial data) -> ortholog mapping to human symbols -> node features (Pearson
residuals, genes x cells) -> CS-CORE edges (p < threshold).

Cache layout, one folder per distinct input and parameter set::

    graphs/<dataset>/<fingerprint>/adjacency.npz   sparse symmetric 0/1 adjacency
                                   features.npy    float32 genes x cells residuals
                                   genes.tsv       node (human symbol), original symbol
                                   graph.json      parameters, statistics, QC, timings,
                                                   versions; written last, so a folder
                                                   without it is an interrupted build

The fingerprint hashes the dataset file, the parameters, the ortholog table and
:data:`GRAPH_ALGORITHM_VERSION`, so any change rebuilds and an identical request is
served from disk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import software_versions
from ..device import resolve_device
from ..errors import ValidationError
from ..metadata import DatasetMeta
from ..settings import CORRECTIONS, SELECTIONS, GraphConfig  # noqa: F401 (re-exported)
from ..storage import atomic_path, atomic_write_json, file_lock, read_json
from ..workspace import Workspace, now_iso
from . import hvg, orthologs, qc
from .cscore import coexpression_adjacency, cscore
from .pool import PoolPlan, memory_estimate, plan_pool, task_cost, task_runner
from .sparkx import rank_spatially_variable_genes, sparkx

#: Bump when a change to the pipeline alters graphs, so cached graphs are rebuilt.
GRAPH_ALGORITHM_VERSION = 1
Progress = Callable[[float, str], None]


@dataclass
class GeneGraph:
    """One dataset's graph as stored in the workspace."""

    dataset: str
    genes: list[str]
    original_genes: list[str]
    adjacency: sp.csr_matrix
    features: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_genes(self) -> int:
        return len(self.genes)


@dataclass
class GraphSummary:
    dataset: str
    n_genes: int
    n_edges: int
    density: float
    #: Seconds spent on this dataset in the call: ranking its genes where every dataset is
    #: ranked first (shared selection, complete graphs), then building and saving its graph
    #: or reading the cached one's summary.
    seconds: float
    cached: bool
    fingerprint: str
    #: Peak resident memory of the processes that ranked and built it (0 when cached).
    peak_memory_bytes: int = 0


# ----------------------------------------------------------------- pieces
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def ortholog_table_path(workspace: Workspace) -> Path | None:
    """The workspace's own table (the simulated demo ships one), else the shared HCOP table."""
    local = workspace.root / "resources" / "orthologs.tsv"
    return local if local.exists() else orthologs.default_ortholog_table_path()


def keep_positive_edges(adjacency: sp.csr_matrix, correlation: np.ndarray) -> sp.csr_matrix:
    """The edges whose co-expression estimate is positive (self-loops kept).

    A two-sided test also joins genes that avoid each other (markers of different cell
    types); an edge asks the model to place its genes together, which for an
    anti-correlated pair teaches the opposite of shared function.
    """
    coo = sp.coo_matrix(adjacency)
    est = np.nan_to_num(np.asarray(correlation)[coo.row, coo.col], nan=0.0)
    keep = (est > 0) | (coo.row == coo.col)
    kept = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=adjacency.shape, dtype=np.uint8
    )
    return kept.maximum(kept.T)


def cap_neighbours(adjacency: sp.csr_matrix, test_stat: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep each gene's ``k`` strongest significant edges (largest |T|), symmetrised.

    An uncorrected p-value admits more edges as cells grow (59% density for 3696
    cells); a per-gene cap bounds the cost of message passing while keeping every
    gene's most certain partners. An edge survives if either end keeps it.
    """
    dense = adjacency.toarray().astype(bool)
    diagonal = dense.diagonal().copy()
    np.fill_diagonal(dense, False)
    strength = np.where(dense, np.abs(np.nan_to_num(test_stat, nan=0.0)), -np.inf)
    k = min(k, dense.shape[0] - 1)
    top = (
        np.argpartition(-strength, k - 1, axis=1)[:, :k]
        if k > 0
        else np.empty((len(dense), 0), int)
    )
    keep = np.zeros_like(dense)
    np.put_along_axis(keep, top, True, axis=1)
    keep &= dense
    keep |= keep.T
    np.fill_diagonal(keep, diagonal)
    return sp.csr_matrix(keep, dtype=np.uint8)


def graph_statistics(adjacency: sp.csr_matrix) -> dict:
    """Undirected edge count and off-diagonal density, self-loops excluded."""
    n = adjacency.shape[0]
    off_diagonal = adjacency.nnz - int(adjacency.diagonal().astype(bool).sum())
    n_edges = off_diagonal // 2
    density = off_diagonal / (n * (n - 1)) if n > 1 else 0.0
    return {"n_genes": n, "n_edges": int(n_edges), "density": float(density)}


def rank_genes(adata: ad.AnnData, meta: DatasetMeta, config: GraphConfig) -> tuple[list[str], dict]:
    """All usable genes, most informative first: Pearson-residual variance, or SPARK-X for
    spatial data (the reference's choices)."""
    if meta.modality == "spatial":
        result = sparkx(
            adata.X, np.asarray(adata.obsm["spatial"]), gene_names=list(adata.var_names)
        )
        ranked = [str(g) for g in rank_spatially_variable_genes(result)]
        n_significant = int((result.table["adjusted_pvalue"] < 0.05).sum())
        return ranked, {"method": "sparkx", "n_significant_by_0.05": n_significant}
    ranked = hvg.rank_genes_pearson(adata, theta=config.theta).index.tolist()
    return ranked, {"method": "pearson_residuals"}


def choose_genes(
    ranked: list[str], nodes: list[str], config: GraphConfig, partner_counts: dict[str, int] | None
) -> list[str]:
    """The ``n_genes`` genes of a graph.

    ``per-dataset`` (the reference): the top of this dataset's own ranking.
    ``shared``: among this dataset's top ``shared_pool * n_genes`` genes, those that are
    also in the pools of more other datasets come first (ties by this dataset's rank),
    so graphs share more genes for the cross-dataset losses while every gene chosen is
    still among this dataset's most variable. ``nodes`` are the human names of
    ``ranked`` (orthologs), which is what other datasets share.
    """
    if config.selection == "per-dataset" or not partner_counts:
        return ranked[: config.n_genes]
    pool = config.shared_pool * config.n_genes
    counts = np.array([partner_counts.get(node, 0) for node in nodes[:pool]])
    order = np.lexsort((np.arange(len(counts)), -counts))  # by count desc, then rank
    return [ranked[i] for i in order[: config.n_genes]]


#: A pinned gene joins a graph when at least this many of the dataset's cells detect it.
MIN_CELLS_FOR_PINNED_GENE = 3


def detected_cell_counts(filtered: ad.AnnData, genes: list[str]) -> np.ndarray:
    """Per gene of ``genes``, how many of the dataset's cells detect it."""
    block = filtered.X[:, filtered.var_names.get_indexer(genes)]
    if sp.issparse(block):
        return np.asarray((block != 0).sum(axis=0)).ravel()
    return np.count_nonzero(np.asarray(block), axis=0)


def pin_genes(
    chosen: list[str], prepared: PreparedDataset, include: tuple[str, ...]
) -> tuple[list[str], dict]:
    """``chosen`` plus the genes of ``include`` that this dataset expresses.

    A pinned gene is matched by its own symbol or its human ortholog, case-insensitively
    (a user types CD74 for mouse Cd74 too). It joins only when at least
    :data:`MIN_CELLS_FOR_PINNED_GENE` cells after QC detect it: an undetected gene has no
    co-expression to learn from. Returns the genes and what happened to each pin.
    """
    if not include:
        return chosen, {}
    wanted = {g.upper(): g for g in include}
    by_name: dict[str, str] = {}
    for gene, node in zip(prepared.ranked, prepared.ranked_nodes, strict=True):
        for key in (gene.upper(), node.upper()):
            by_name.setdefault(key, gene)
    filtered = prepared.filtered
    present = set(chosen)
    added, already, not_expressed, absent = [], [], [], []
    for key, asked in wanted.items():
        gene = by_name.get(key)
        if gene is None:
            absent.append(asked)
        elif gene in present:
            already.append(asked)
        else:
            if detected_cell_counts(filtered, [gene])[0] >= MIN_CELLS_FOR_PINNED_GENE:
                added.append(gene)
                present.add(gene)
            else:
                not_expressed.append(asked)
    report = {
        "pinned_added": added,
        "pinned_already_chosen": already,
        "pinned_not_expressed": not_expressed,
        "pinned_not_in_dataset": absent,
    }
    return chosen + added, report


def complete_genes(
    chosen: list[str], prepared: PreparedDataset, run_genes: set[str]
) -> tuple[list[str], dict]:
    """``chosen`` plus the genes of ``run_genes`` (human names of the genes chosen for any
    graph of the run) that this dataset detects, in the order of its ranking.

    A gene among another dataset's top genes is often measured here too, only less
    variable than this dataset's own top genes; without it, its embedding pools fewer
    datasets than measured it. The rule for a gene to join is a pinned gene's.
    """
    present = set(chosen)
    candidates = [
        gene
        for gene, node in zip(prepared.ranked, prepared.ranked_nodes, strict=True)
        if node in run_genes and gene not in present
    ]
    counts = detected_cell_counts(prepared.filtered, candidates)
    added = [g for g, n in zip(candidates, counts, strict=True) if n >= MIN_CELLS_FOR_PINNED_GENE]
    return chosen + added, {"completed_added": len(added)}


def graph_genes(
    prepared: PreparedDataset, config: GraphConfig, partner_counts: dict[str, int] | None
) -> tuple[list[str], dict]:
    """The genes a dataset's graph starts from: its chosen genes and the pinned ones, with
    the report of the pins."""
    genes = choose_genes(prepared.ranked, prepared.ranked_nodes, config, partner_counts)
    return pin_genes(genes, prepared, config.include_genes)


def map_node_names(
    genes: list[str], species: str, table_path: Path | None
) -> tuple[list[str], dict]:
    """Human symbols for mouse genes (unmapped genes keep their own symbol)."""
    if species != "mouse":
        return list(genes), {"mapped": len(genes), "unmapped": 0, "table": None}
    if table_path is None:
        return list(genes), {
            "mapped": 0,
            "unmapped": len(genes),
            "table": None,
            "warning": "no ortholog table: mouse genes keep mouse symbols",
        }
    mapping = orthologs.map_genes_to_human(genes, "mouse", orthologs.ortholog_lookup(table_path))
    human = mapping["human"]
    nodes = [h if h is not None else g for g, h in zip(genes, human, strict=True)]
    mapped = int(human.notna().sum())
    return nodes, {"mapped": mapped, "unmapped": len(genes) - mapped, "table": str(table_path)}


@dataclass
class PreparedDataset:
    """A dataset after QC with its genes ranked: the input of gene choice and CS-CORE."""

    meta: DatasetMeta
    filtered: ad.AnnData
    report: qc.QCReport
    ranked: list[str]
    ranked_nodes: list[str]
    selection: dict
    timings: dict


def prepare_dataset(
    adata: ad.AnnData, meta: DatasetMeta, config: GraphConfig, table_path: Path | None
) -> PreparedDataset:
    """QC, then rank every gene (and name it by its human ortholog)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    qc_config = (
        qc.reference_qc_config if config.qc_preset == "reference" else qc.default_qc_config
    )(meta.modality)
    filtered, report = qc.run_qc(adata, meta.modality, meta.species, qc_config)
    timings["qc"] = time.perf_counter() - start
    start = time.perf_counter()
    ranked, selection = rank_genes(filtered, meta, config)
    timings["sparkx" if meta.modality == "spatial" else "hvg"] = time.perf_counter() - start
    ranked_nodes, _ = map_node_names(ranked, meta.species, table_path)
    return PreparedDataset(meta, filtered, report, ranked, ranked_nodes, selection, timings)


def build_graph(
    adata: ad.AnnData | PreparedDataset,
    meta: DatasetMeta,
    config: GraphConfig,
    table_path: Path | None = None,
    partner_counts: dict[str, int] | None = None,
    run_genes: set[str] | None = None,
) -> GeneGraph:
    """Compute one dataset's graph in memory (no caching).

    ``partner_counts`` (for ``selection="shared"``) says, per human gene name, in how
    many other datasets' pools the gene is; ``run_genes`` (for ``complete_graphs``), the
    human names of the genes chosen for every graph of the run.
    """
    prepared = (
        adata
        if isinstance(adata, PreparedDataset)
        else prepare_dataset(adata, meta, config, table_path)
    )
    filtered, report, timings = prepared.filtered, prepared.report, dict(prepared.timings)
    genes, pinned = graph_genes(prepared, config, partner_counts)
    completed = {}
    if config.complete_graphs and run_genes is not None:
        genes, completed = complete_genes(genes, prepared, run_genes)
    selection = {**prepared.selection, "rule": config.selection, **pinned, **completed}
    if len(genes) < 2:
        raise ValidationError(
            f"{meta.name}: fewer than two usable genes after QC; no graph possible."
        )

    start = time.perf_counter()
    features = hvg.node_features(filtered, genes, theta=config.theta)
    timings["features"] = time.perf_counter() - start

    start = time.perf_counter()
    columns = pd.Index(filtered.var_names).get_indexer(genes)
    counts = filtered.X[:, columns]
    depth = np.asarray(filtered.obs["n_counts"], dtype=np.float64)
    result = cscore(counts, depth, device=resolve_device(config.device))
    adjacency = coexpression_adjacency(
        result.p_value,
        threshold=config.pvalue,
        method=config.correction,
        self_loops=config.self_loops,
    )
    if config.edge_sign == "positive":
        adjacency = keep_positive_edges(adjacency, result.est)
    if config.edges_per_gene:
        adjacency = cap_neighbours(adjacency, result.test_stat, config.edges_per_gene)
    timings["cscore"] = time.perf_counter() - start

    nodes, mapping = map_node_names(genes, meta.species, table_path)
    duplicated = pd.Index(nodes).duplicated()
    if duplicated.any():  # an unmapped mouse symbol equal to a mapped one: keep the first
        keep = ~duplicated
        nodes = [n for n, k in zip(nodes, keep, strict=True) if k]
        genes = [g for g, k in zip(genes, keep, strict=True) if k]
        features, adjacency = features[keep], adjacency[keep][:, keep]
    info = {
        "dataset": meta.name,
        "species": meta.species,
        "tissue": meta.tissue,
        "modality": meta.modality,
        **graph_statistics(sp.csr_matrix(adjacency)),
        "n_cells": int(filtered.n_obs),
        "selection": selection,
        "orthologs": mapping,
        "qc": report.to_dict(),
        "cscore_iterations": int(result.n_iter),
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return GeneGraph(
        meta.name,
        nodes,
        genes,
        sp.csr_matrix(adjacency, dtype=np.uint8),
        features.astype(np.float32),
        info,
    )


def genes_depend_on_other_datasets(config: GraphConfig) -> bool:
    """Whether a graph's genes depend on the other datasets built with it (shared
    selection, completion): then every dataset is ranked before any graph is built, and the
    datasets built together enter each graph's cache key."""
    return config.selection == "shared" or config.complete_graphs


# ------------------------------------------------------------------ cache
def graph_fingerprint(
    meta: DatasetMeta,
    config: GraphConfig,
    dataset_sha256: str,
    orthologs_sha256: str | None,
    context: list[str] | None = None,
) -> str:
    """Hash of everything a graph depends on (the caller hashes each file once)."""
    payload = {
        "algorithm": GRAPH_ALGORITHM_VERSION,
        "dataset_sha256": dataset_sha256,
        "species": meta.species,
        "modality": meta.modality,
        "config": config.fingerprint_fields(),
        "context": sorted(context) if genes_depend_on_other_datasets(config) and context else None,
        "orthologs_sha256": orthologs_sha256 if meta.species == "mouse" else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def save_graph(folder: Path, graph: GeneGraph, extra: dict) -> None:
    """Write data files first and graph.json last: its presence marks a complete graph."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "adjacency.npz") as tmp:
        sp.save_npz(tmp, graph.adjacency, compressed=True)
    with atomic_path(folder / "features.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, graph.features, allow_pickle=False)
    with atomic_path(folder / "genes.tsv") as tmp:
        pd.DataFrame({"node": graph.genes, "original": graph.original_genes}).to_csv(
            tmp, sep="\t", index=False
        )
    atomic_write_json(folder / "graph.json", {**graph.info, **extra})


def graph_folder(workspace: Workspace, dataset: str, fingerprint: str) -> Path:
    return workspace.graphs_dir / dataset / fingerprint


def load_graph(workspace: Workspace, dataset: str, fingerprint: str | None = None) -> GeneGraph:
    """Load a stored graph (the most recent complete one when no fingerprint is given)."""
    folder = (
        graph_folder(workspace, dataset, fingerprint)
        if fingerprint
        else latest_graph_folder(workspace, dataset)
    )
    if folder is None or not (folder / "graph.json").exists():
        raise ValidationError(f"No graph built for {dataset!r} yet: build graphs first.")
    info = read_json(folder / "graph.json")
    genes = pd.read_csv(folder / "genes.tsv", sep="\t", dtype=str, keep_default_na=False)
    return GeneGraph(
        dataset=dataset,
        genes=genes["node"].tolist(),
        original_genes=genes["original"].tolist(),
        adjacency=sp.load_npz(folder / "adjacency.npz").tocsr(),
        features=np.load(folder / "features.npy", allow_pickle=False),
        info=info,
    )


def latest_graph_folder(workspace: Workspace, dataset: str) -> Path | None:
    folders = [f for f in (workspace.graphs_dir / dataset).glob("*") if (f / "graph.json").exists()]
    if not folders:
        return None
    return max(folders, key=lambda f: read_json(f / "graph.json", {}).get("created_at", ""))


def graph_infos(workspace: Workspace) -> dict[str, dict]:
    """The latest complete graph's info per dataset (for the Data page and `list`)."""
    out = {}
    for name in workspace.dataset_names():
        folder = latest_graph_folder(workspace, name)
        if folder is not None:
            out[name] = read_json(folder / "graph.json", {})
    return out


def prepare_task(root: str, name: str, config: GraphConfig, table_path) -> PreparedDataset:
    """:func:`prepare_dataset` of a workspace's dataset (a task of the pool)."""
    workspace = Workspace(root)
    adata = workspace.load_dataset(name)
    return prepare_dataset(adata, workspace.dataset(name), config, table_path)


def build_task(
    root: str, name: str, config: GraphConfig, table_path, partner_counts, run_genes, prepared
) -> GeneGraph:
    """:func:`build_graph` of a workspace's dataset (a task of the pool)."""
    workspace = Workspace(root)
    source = prepared or workspace.load_dataset(name)
    return build_graph(
        source, workspace.dataset(name), config, table_path, partner_counts, run_genes
    )


def most_graph_genes(config: GraphConfig, n_datasets: int) -> int:
    """The most genes one graph can hold (for cost and memory estimates): with completion,
    the genes chosen for every dataset's graph."""
    return config.n_genes * (max(1, n_datasets) if config.complete_graphs else 1)


def plan_graph_pool(
    workspace: Workspace,
    metas: list[DatasetMeta],
    config: GraphConfig,
    workers: int | str = "auto",
    memory_limit_gb: float | None = None,
    built_together: int | None = None,
) -> PoolPlan:
    """The pool that builds ``metas``' graphs within the cores and the memory limit;
    ``built_together``: how many datasets the run builds graphs for (default ``metas``),
    which bounds a completed graph's size."""
    n_graph_genes = most_graph_genes(config, built_together or len(metas))
    estimates = [
        memory_estimate(
            m.n_cells, m.n_genes, n_graph_genes, workspace.dataset_path(m.name).stat().st_size
        )
        for m in metas
    ]
    return plan_pool(estimates, workers, memory_limit_gb)


def build_graphs(
    workspace: Workspace,
    datasets: list[str] | None = None,
    config: GraphConfig | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    workers: int | str = 1,
    memory_limit_gb: float | None = None,
) -> list[GraphSummary]:
    """Build (or reuse) the graph of each dataset; returns one summary per dataset.

    ``workers`` (a count or ``"auto"``) builds datasets in parallel processes within the
    usable cores and ``memory_limit_gb`` (default half the available memory); the graphs
    are the same as one process builds (:mod:`musegnn_core.graphs.pool`).
    """
    config = config or GraphConfig()
    names = datasets or workspace.dataset_names()
    if not names:
        raise ValidationError("The workspace has no datasets: import some first.")
    metas = [workspace.dataset(name) for name in names]
    table_path = ortholog_table_path(workspace)
    context = [sha256_file(workspace.dataset_path(m.name)) for m in metas]
    table_sha = sha256_file(table_path) if table_path else None
    fingerprints = [
        graph_fingerprint(m, config, sha, table_sha, context)
        for m, sha in zip(metas, context, strict=True)
    ]
    to_build = [
        force or not (graph_folder(workspace, m.name, f) / "graph.json").exists()
        for m, f in zip(metas, fingerprints, strict=True)
    ]
    plan = None
    if workers != 1 and sum(to_build) > 1:
        plan = plan_graph_pool(
            workspace,
            [m for m, b in zip(metas, to_build, strict=True) if b],
            config,
            workers,
            memory_limit_gb,
            built_together=len(metas),
        )
    with task_runner(plan) as run_tasks:
        return _build_graphs(
            workspace, config, metas, fingerprints, to_build, table_path, progress, run_tasks
        )


def _build_graphs(
    workspace, config, metas, fingerprints, to_build, table_path, progress, run_tasks
) -> list[GraphSummary]:
    root = str(workspace.root)
    prepared: dict[str, PreparedDataset] = {}
    ranking: dict[str, tuple[float, int]] = {}  # seconds and peak memory of each ranking
    pools: dict[str, set[str]] = {}
    ranked_first = genes_depend_on_other_datasets(config) and any(to_build)
    if ranked_first:
        # Every dataset's ranking is needed to choose (or complete) the genes of any one.
        pool = config.shared_pool * config.n_genes
        results = run_tasks(
            prepare_task,
            [(root, m.name, config, table_path) for m in metas],
            [workspace.dataset_path(m.name).stat().st_size for m in metas],
        )
        for i, (meta, (ready, seconds, peak)) in enumerate(zip(metas, results, strict=True)):
            if progress:
                progress(i / (2 * len(metas)), f"{meta.name}: ranking genes")
            prepared[meta.name] = ready
            ranking[meta.name] = (seconds, peak)
            if config.selection == "shared":
                pools[meta.name] = set(ready.ranked_nodes[:pool])

    def partner_counts(name: str):
        if not pools:
            return None
        return Counter(gene for other, genes in pools.items() if other != name for gene in genes)

    run_genes = None
    if config.complete_graphs and prepared:
        run_genes = set()
        for name, ready in prepared.items():
            node_of = dict(zip(ready.ranked, ready.ranked_nodes, strict=True))
            genes, _ = graph_genes(ready, config, partner_counts(name))
            run_genes.update(node_of[gene] for gene in genes)

    building = [m for m, b in zip(metas, to_build, strict=True) if b]
    n_graph_genes = most_graph_genes(config, len(metas))
    built = run_tasks(
        build_task,
        [
            (
                root,
                m.name,
                config,
                table_path,
                partner_counts(m.name),
                run_genes,
                prepared.pop(m.name, None),
            )
            for m in building
        ],
        [task_cost(m.n_cells, m.n_genes, n_graph_genes) for m in building],
    )
    summaries = []
    for i, (meta, fingerprint, build) in enumerate(zip(metas, fingerprints, to_build, strict=True)):
        if progress:
            progress(
                (i + len(metas) * ranked_first) / (len(metas) * (1 + ranked_first)),
                f"{meta.name}: {'building graph' if build else 'cached'}",
            )
        start = time.perf_counter()
        folder = graph_folder(workspace, meta.name, fingerprint)
        task_seconds, ranking_peak = ranking.get(meta.name, (0.0, 0))
        peak = 0
        if not build:
            info = read_json(folder / "graph.json")
        else:
            graph, build_seconds, build_peak = next(built)
            task_seconds += build_seconds
            peak = max(ranking_peak, build_peak)
            start = time.perf_counter()
            with file_lock(workspace.graphs_dir / f".{meta.name}.lock"):
                # An earlier attempt or a forced rebuild: drop the validity marker first, so
                # an interruption while deleting never leaves graph.json beside missing data.
                (folder / "graph.json").unlink(missing_ok=True)
                shutil.rmtree(folder, ignore_errors=True)
                save_graph(
                    folder,
                    graph,
                    {
                        "fingerprint": fingerprint,
                        "config": asdict(config),
                        "algorithm_version": GRAPH_ALGORITHM_VERSION,
                        "versions": software_versions(
                            "numpy", "scipy", "torch", "anndata", "scanpy"
                        ),
                        "created_at": now_iso(),
                    },
                )
            info = graph.info
        summaries.append(
            GraphSummary(
                dataset=meta.name,
                n_genes=info["n_genes"],
                n_edges=info["n_edges"],
                density=info["density"],
                seconds=task_seconds + time.perf_counter() - start,
                cached=not build,
                fingerprint=fingerprint,
                peak_memory_bytes=peak,
            )
        )
    if progress:
        progress(1.0, "done")
    return summaries
