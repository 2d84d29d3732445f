"""Functional gene groups: Leiden clusters of a run's joint embedding and what is in them.

A cluster that holds the same gene from several datasets is a cross-dataset "common
functional gene group" (the paper's reading); genes of a cluster seen in one tissue or
one modality only are the specific part of it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import ValidationError
from ..settings import DEFAULT_LEIDEN_RESOLUTION, LEIDEN_RESOLUTION_RANGE
from ..storage import atomic_path

#: The per-row properties a cluster's composition is reported by.
COMPOSITION_KEYS = ("dataset", "tissue", "modality", "species")
#: One range for training and exploring (a run trained at any resolution opens here).
MIN_RESOLUTION, MAX_RESOLUTION = LEIDEN_RESOLUTION_RANGE


@dataclass
class Clustering:
    """Cluster labels of every (gene, dataset) row of a run at one resolution."""

    labels: pd.Series  # indexed like embedding.obs, values "0", "1", ... (by size)
    resolution: float
    cached: bool


def check_resolution(resolution: float) -> float:
    try:
        value = float(resolution)
    except (TypeError, ValueError):
        raise ValidationError(f"Resolution must be a number, not {resolution!r}.") from None
    if not (math.isfinite(value) and MIN_RESOLUTION <= value <= MAX_RESOLUTION):
        raise ValidationError(
            f"Resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION}, not {resolution}."
        )
    return round(value, 3)


def _cache_path(run_root: Path, resolution: float, seed: int) -> Path:
    return run_root / "clusters" / f"leiden-res{resolution:g}-seed{seed}.csv"


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster "0" is the largest, then "1", ...; ties broken by the old label."""
    sizes = pd.Series(labels).value_counts()
    order = sorted(sizes.index, key=lambda c: (-sizes[c], str(c)))
    mapping = {old: str(new) for new, old in enumerate(order)}
    return np.array([mapping[x] for x in labels], dtype=object)


def cluster_embedding(
    adata: ad.AnnData, resolution: float = 1.0, n_neighbors: int = 15, seed: int = 0
) -> ad.AnnData:
    """Leiden clusters of the rows, in place: ``obs['leiden']`` and the neighbour graph.

    ``sc.pp.neighbors`` on ``X`` (Euclidean, exact kNN through scikit-learn: the default
    pynndescent gives an approximation of the same graph and costs seconds of JIT
    compilation) then ``sc.tl.leiden`` with the igraph implementation (leidenalg if the
    installed scanpy lacks it), both seeded. Returns ``adata``.
    """
    import scanpy as sc

    if adata.n_obs < 3:
        raise ValidationError(f"Clustering needs at least 3 rows, the embedding has {adata.n_obs}.")
    k = int(min(n_neighbors, adata.n_obs - 1))
    sc.pp.neighbors(
        adata,
        n_neighbors=k,
        use_rep="X",
        metric="euclidean",
        random_state=seed,
        transformer="sklearn",
    )
    try:
        sc.tl.leiden(
            adata,
            resolution=resolution,
            random_state=seed,
            flavor="igraph",
            n_iterations=2,
            directed=False,
            key_added="leiden",
        )
    except (ImportError, TypeError, ValueError):  # older scanpy: leidenalg only
        sc.tl.leiden(adata, resolution=resolution, random_state=seed, key_added="leiden")
    adata.obs["leiden"] = adata.obs["leiden"].astype(str).astype("category")
    return adata


def leiden_clusters(
    embedding: ad.AnnData,
    resolution: float = DEFAULT_LEIDEN_RESOLUTION,
    seed: int = 0,
    n_neighbors: int = 15,
) -> pd.Series:
    """Leiden labels of the embedding's rows at ``resolution`` (seeded, numbered by size)."""
    resolution = check_resolution(resolution)
    work = ad.AnnData(X=np.asarray(embedding.X, dtype=np.float32))
    work.obs_names = embedding.obs_names
    cluster_embedding(work, resolution=resolution, n_neighbors=n_neighbors, seed=seed)
    labels = _relabel_by_size(work.obs["leiden"].astype(str).to_numpy())
    return pd.Series(labels, index=embedding.obs_names, name="cluster")


def run_clustering(
    run, embedding: ad.AnnData, resolution: float | None = None, seed: int | None = None
) -> Clustering:
    """Clusters of a run at ``resolution``, computed once per resolution and cached in the run.

    ``None`` means the resolution the run was trained with, whose labels are already in
    the embedding (``obs['leiden']``). Others go to ``<run>/clusters/`` as CSV.
    """
    train = run.config().get("train", {})
    trained_resolution = run.trained_resolution()
    seed = int(train.get("seed", 0)) if seed is None else int(seed)
    # The run's own resolution needs no check: whatever it was trained with opens here.
    resolution = trained_resolution if resolution is None else check_resolution(resolution)
    if (
        math.isclose(resolution, trained_resolution)
        and seed == int(train.get("seed", 0))
        and "leiden" in embedding.obs
    ):
        labels = _relabel_by_size(embedding.obs["leiden"].astype(str).to_numpy())
        return Clustering(
            pd.Series(labels, index=embedding.obs_names, name="cluster"), resolution, True
        )
    path = _cache_path(run.root, resolution, seed)
    if path.exists():
        cached = pd.read_csv(path, index_col=0, dtype=str)["cluster"]
        if list(cached.index) == list(embedding.obs_names):
            return Clustering(cached.rename("cluster"), resolution, True)
    labels = leiden_clusters(embedding, resolution, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        labels.to_frame().to_csv(tmp)
    return Clustering(labels, resolution, False)


def _obs(embedding: ad.AnnData, labels: pd.Series) -> pd.DataFrame:
    if len(labels) != embedding.n_obs:
        raise ValidationError("Cluster labels do not match the embedding's rows.")
    if "gene" not in embedding.obs or "dataset" not in embedding.obs:
        raise ValidationError("The embedding lacks its gene and dataset columns.")
    obs = pd.DataFrame(index=embedding.obs_names)
    for column in ("gene", *COMPOSITION_KEYS):  # older or foreign tables may lack some
        values = embedding.obs.get(column, "unknown")
        obs[column] = pd.Series(values, index=embedding.obs_names).astype(str)
    obs["cluster"] = np.asarray(labels, dtype=str)
    return obs


def _cluster_order(values) -> list[str]:
    return sorted(set(map(str, values)), key=lambda c: (int(c) if c.isdigit() else math.inf, c))


def composition(embedding: ad.AnnData, labels: pd.Series, by: str = "dataset") -> pd.DataFrame:
    """Rows per cluster (index) and category of ``by`` (columns): a cluster x dataset table."""
    if by not in COMPOSITION_KEYS:
        raise ValidationError(
            f"Composition is by one of {', '.join(COMPOSITION_KEYS)}, not {by!r}."
        )
    obs = _obs(embedding, labels)
    table = pd.crosstab(obs["cluster"], obs[by])
    return table.reindex(_cluster_order(table.index))


def gene_occurrences(embedding: ad.AnnData, labels: pd.Series, cluster: str) -> pd.DataFrame:
    """The genes of one cluster and where each occurs.

    Columns: gene; ``n_datasets`` (datasets whose instance of the gene is in this
    cluster) and ``datasets``; ``tissues``, ``modalities``, ``species`` of those
    instances; ``n_datasets_in_run`` (datasets having the gene at all); ``shared``
    (in the cluster from at least two datasets); ``specific_to`` ("tissue: brain",
    "modality: spatial", or "" when the run has one tissue/modality or the gene spans several).
    """
    obs = _obs(embedding, labels)
    cluster = str(cluster)
    if cluster not in set(obs["cluster"]):
        known = _cluster_order(obs["cluster"])
        raise ValidationError(
            f"No cluster {cluster!r} at this resolution (clusters {known[0]}-{known[-1]})."
        )
    in_run = obs.groupby("gene")["dataset"].nunique()
    rows = obs[obs["cluster"] == cluster]
    n_tissues, n_modalities = obs["tissue"].nunique(), obs["modality"].nunique()

    def joined(values) -> str:
        return ", ".join(sorted(set(values)))

    table = rows.groupby("gene").agg(
        n_datasets=("dataset", "nunique"),
        datasets=("dataset", joined),
        tissues=("tissue", joined),
        modalities=("modality", joined),
        species=("species", joined),
    )
    table["n_datasets_in_run"] = in_run.reindex(table.index).to_numpy()
    table["shared"] = table["n_datasets"] >= 2
    specific = []
    for tissues, modalities in zip(table["tissues"], table["modalities"], strict=True):
        if n_tissues > 1 and "," not in tissues:
            specific.append(f"tissue: {tissues}")
        elif n_modalities > 1 and "," not in modalities:
            specific.append(f"modality: {modalities}")
        else:
            specific.append("")
    table["specific_to"] = specific
    table = table.reset_index().sort_values(
        ["n_datasets", "gene"], ascending=[False, True], kind="stable"
    )
    return table.reset_index(drop=True)


def _shares(series: pd.Series, top: int = 3) -> str:
    """'a 60%, b 30%, c 10%': the largest categories of one cluster."""
    counts = series.value_counts()
    total = counts.sum()
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in counts.head(top).items())


def cluster_summary(embedding: ad.AnnData, labels: pd.Series) -> pd.DataFrame:
    """One row per cluster: size, composition, shared genes and tissue/modality-only genes."""
    obs = _obs(embedding, labels)
    n_tissues, n_modalities = obs["tissue"].nunique(), obs["modality"].nunique()
    rows = []
    for cluster in _cluster_order(obs["cluster"]):
        part = obs[obs["cluster"] == cluster]
        per_gene = part.groupby("gene").agg(
            n_datasets=("dataset", "nunique"),
            n_tissues=("tissue", "nunique"),
            n_modalities=("modality", "nunique"),
        )
        shared = per_gene.index[per_gene["n_datasets"] >= 2]
        shared = sorted(shared, key=lambda g: (-per_gene.loc[g, "n_datasets"], g))
        tissue_only = int((per_gene["n_tissues"] == 1).sum()) if n_tissues > 1 else 0
        modality_only = int((per_gene["n_modalities"] == 1).sum()) if n_modalities > 1 else 0
        rows.append(
            {
                "cluster": cluster,
                "size": len(part),
                "n_genes": len(per_gene),
                "n_datasets": part["dataset"].nunique(),
                "datasets": _shares(part["dataset"]),
                "tissues": _shares(part["tissue"]),
                "modalities": _shares(part["modality"]),
                "species": _shares(part["species"]),
                "n_shared_genes": len(shared),
                "shared_genes": ", ".join(shared[:12]) + (" ..." if len(shared) > 12 else ""),
                "n_tissue_only_genes": tissue_only,
                "n_modality_only_genes": modality_only,
            }
        )
    return pd.DataFrame(rows)


def cluster_genes(embedding: ad.AnnData, labels: pd.Series, cluster: str) -> list[str]:
    """The distinct genes of one cluster (for enrichment or a subgraph)."""
    return list(gene_occurrences(embedding, labels, cluster)["gene"])


_LABEL = re.compile(r"^[0-9]+$")


def check_cluster_label(cluster: str) -> str:
    text = str(cluster).strip()
    if not _LABEL.match(text):
        raise ValidationError(f"A cluster is named by its number (0, 1, ...), not {cluster!r}.")
    return text
