"""The six embedding metrics of the MuSe-GNN paper, as its reference benchmark defines them.

The reference (``benchmark/benchmark metrics.py``) clusters the (gene, dataset) rows of a
joint embedding with Leiden (resolution 1, 15-neighbour graph on the 32-d embedding) and
scores six things, all "higher is better" and in [0, 1]:

``asw``
    scib ``silhouette_batch`` over the *common genes*: per Leiden cluster the mean of
    1 - |silhouette of the dataset label|, averaged over clusters. Clusters holding one
    dataset only (or one row per dataset) are skipped, as in scib; no eligible cluster
    gives NaN.
``auc``
    Per dataset, the ROC AUC of the cosine similarity of the L2-normalised rows for the
    graph's adjacency, over all n² entries including the diagonal (self-loops), averaged
    over datasets. The reference scores sigmoid(cosine); the sigmoid is monotone so the
    AUC is the same.
``ilisi``
    scib ``ilisi_graph`` over the common genes: median iLISI scaled as (iLISI - 1)/(B - 1).
    See :func:`ilisi` for the one simplification.
``gc``
    scib ``graph_connectivity`` over the common genes: per cluster, the largest connected
    component of the 15-NN connectivity graph (restricted to the cluster's common-gene
    rows) over the cluster size; mean over clusters.
``cgr``
    Common gene ratio over all rows: sum_c (|c|/N)(1 - |unique genes in c|/|c|).
``no``
    Neighbours overlap over all rows: per cluster, the mean Jaccard index of the graph
    neighbour sets (gene names, self-loop included as the adjacency has it) over all
    ordered row pairs from different datasets; then the cluster-size-weighted sum
    (weights |c|/N). A cluster without cross-dataset pairs adds 0, and two rows with
    empty neighbour sets have Jaccard 0 (the reference divides by zero there).

"Common genes" are the genes present in every dataset of the embedding. When there is
none, the genes present in at least half of the datasets are used instead and the result
says so (``common_gene_rule``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ValidationError
from .arrays import dense, obs_column, unit_rows
from .clusters import cluster_embedding

#: Result keys of the six metrics, in the paper's order.
METRICS = ("asw", "auc", "ilisi", "gc", "cgr", "no")
#: Display names of the six metrics.
METRIC_LABELS = {
    "asw": "ASW (batch)",
    "auc": "AUC (graph edges)",
    "ilisi": "iLISI",
    "gc": "Graph connectivity",
    "cgr": "Common gene ratio",
    "no": "Neighbours overlap",
}
RULE_ALL = "all datasets"
RULE_HALF = "at least half of the datasets (no gene is in all)"
RULE_NONE = "none (no gene is in at least half of the datasets)"
#: Below this many genes in every dataset, the at-least-half set is used instead.
MIN_COMMON_GENES = 10

#: Rows per block when forming the intersections of one cluster (bounds memory).
_NO_CHUNK = 2048


# ----------------------------------------------------------------- helpers
@contextmanager
def limit_threads(threads: int | None = 1) -> Iterator[None]:
    """Cap the BLAS and OpenMP thread pools (threadpoolctl) inside the block.

    The evaluation and the baselines run many small BLAS calls (ARPACK, kNN, per-cluster
    products). With two threads on a two-core machine, any other busy process makes each
    call wait for the descheduled thread: measured with another job running, PCA of the
    eight graphs took 16 s with two threads and 0.8-1.7 s with one, and one thread is no
    slower on an idle machine at these sizes. ``None`` or 0 leaves the pools alone.
    """
    if not threads:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads)):
        yield


def _pairs_below(positive: np.ndarray, negative: np.ndarray) -> float:
    """Sum over (positive, negative) score pairs of [negative < positive] + [equal] / 2.

    Both classes sorted by value (a direct sort, several times faster than the indirect
    sort a joint ranking needs), then each positive located among the negatives.
    """
    negative = np.sort(negative)
    positive = np.sort(positive)
    below = np.searchsorted(negative, positive, side="left")
    up_to = np.searchsorted(negative, positive, side="right")
    return float(below.sum(dtype=np.int64)) + 0.5 * float((up_to - below).sum(dtype=np.int64))


#: Weighted AUCs with at most this many distinct weights count pairs per weight class.
_FEW_WEIGHTS = 8


def binary_auc(y: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float:
    """ROC AUC (Mann-Whitney, ties counted half), optionally weighted; NaN with one class.

    Same value as :func:`sklearn.metrics.roc_auc_score` (with ``sample_weight``), faster
    on the million-entry vectors of :func:`auc_edges` and the edge AUCs of
    :mod:`~musegnn_core.analysis.coherence`: with no weights, or few distinct ones (as
    there: 1 on the diagonal, 2 off it), the pairs are counted from each class sorted on
    its own.
    """
    y = np.asarray(y).astype(bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64).ravel()
    if not np.isnan(score).any():
        if weight is None:
            return _auc_by_weight_class(y, score, [(1.0, np.ones(y.size, dtype=bool))])
        levels = np.unique(weight)
        if levels.size <= _FEW_WEIGHTS:
            classes = [(w, weight == w) for w in levels if w != 0]
            return _auc_by_weight_class(y, score, classes)
    weight = np.ones(y.size) if weight is None else weight
    order = np.argsort(score)  # ties are grouped by value below, so no stable sort
    y, score, weight = y[order], score[order], weight[order]
    starts = np.r_[0, np.flatnonzero(np.diff(score)) + 1] if score.size else np.zeros(0, int)
    if starts.size == 0:
        return float("nan")
    positive = np.add.reduceat(np.where(y, weight, 0.0), starts)
    negative = np.add.reduceat(np.where(y, 0.0, weight), starts)
    total_pos, total_neg = positive.sum(), negative.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    below = np.cumsum(negative) - negative  # negative weight strictly below each score
    return float((positive * (below + 0.5 * negative)).sum() / (total_pos * total_neg))


def _auc_by_weight_class(y, score, classes) -> float:
    """AUC from (weight, member mask) classes: each pair of classes counted on its own."""
    total_pos = sum(w * np.count_nonzero(y & members) for w, members in classes)
    total_neg = sum(w * np.count_nonzero(~y & members) for w, members in classes)
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    pairs = sum(
        w_pos * w_neg * _pairs_below(score[y & pos], score[~y & neg])
        for w_pos, pos in classes
        for w_neg, neg in classes
    )
    return float(pairs / (total_pos * total_neg))


# ----------------------------------------------------------------- metrics
def asw_batch(X: np.ndarray, batch, labels) -> float:
    """scib ``silhouette_batch``: mean over clusters of mean(1 - |silhouette(batch)|).

    Clusters with a single batch, or as many batches as rows, are skipped as in scib;
    NaN when no cluster is left.
    """
    from sklearn.metrics import silhouette_samples

    X = np.asarray(X, dtype=np.float64)
    batch = np.asarray(batch).astype(str)
    labels = np.asarray(labels).astype(str)
    scores = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        n_batches = len(np.unique(batch[idx]))
        if n_batches == 1 or n_batches == idx.size:
            continue
        sil = silhouette_samples(X[idx], batch[idx], metric="euclidean")
        scores.append(float(np.mean(1.0 - np.abs(sil))))
    return float(np.mean(scores)) if scores else float("nan")


def auc_edges(embedding: ad.AnnData, graphs: Mapping[str, Any], include_diagonal=True) -> float:
    """Mean over datasets of the ROC AUC of row cosine similarity for the graph's edges.

    For each graph, the embedding rows of that dataset are matched to the graph's nodes by
    gene name; all n² (gene, gene) entries are scored, the diagonal included as in the
    reference (``include_diagonal=False`` leaves it out). Datasets absent from the
    embedding, or whose graph has one class only, are skipped; NaN when none is left.
    """
    X = dense(embedding.X)
    genes = obs_column(embedding, "gene")
    datasets = obs_column(embedding, "dataset")
    aucs = []
    for name, graph in graphs.items():
        rows = np.flatnonzero(datasets == str(name))
        if rows.size < 2:
            continue
        positions = pd.Index(list(graph.genes)).get_indexer(genes[rows])
        keep = positions >= 0
        rows, positions = rows[keep], positions[keep]
        if rows.size < 2:
            continue
        Z = unit_rows(X[rows])
        similarity = Z @ Z.T
        truth = dense(sp.csr_matrix(graph.adjacency)[positions][:, positions]) != 0
        # Both matrices are symmetric (the adjacency is symmetrised, as the reference's
        # graphs are): the upper triangle with off-diagonal entries counted twice gives the
        # AUC of all n² entries in half the work.
        truth = truth | truth.T
        upper = np.triu_indices(rows.size, k=0 if include_diagonal else 1)
        weight = np.where(upper[0] == upper[1], 1.0, 2.0)
        auc = binary_auc(truth[upper], similarity[upper], weight)
        if math.isfinite(auc):
            aucs.append(auc)
    return float(np.mean(aucs)) if aucs else float("nan")


def _simpson_index(
    distances: np.ndarray,
    neighbour_batch: np.ndarray,
    n_batches: int,
    perplexity: float,
    tol: float = 1e-5,
    max_iter: int = 50,
) -> np.ndarray:
    """Simpson's index per row after the perplexity calibration of harmony/scib.

    A vectorised copy of ``compute_simpson_index``: per row, a binary search on the
    Gaussian precision beta (start 1, doubling/halving until bracketed, then bisection,
    at most 50 steps, stop when |H - log(perplexity)| <= tol), then
    sum_b (sum of P over neighbours in batch b)². Distances are shifted by their row
    minimum first, which leaves P and H unchanged and avoids exp underflow.
    """
    n, _ = distances.shape
    D = distances - distances.min(axis=1, keepdims=True)
    log_u = math.log(perplexity)

    def h_beta(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        P = np.exp(-D * beta[:, None])
        total = P.sum(axis=1)
        safe = np.where(total > 0, total, 1.0)
        H = np.where(total > 0, np.log(safe) + beta * (D * P).sum(axis=1) / safe, 0.0)
        return H, P / safe[:, None]

    beta = np.ones(n)
    beta_min = np.full(n, -np.inf)
    beta_max = np.full(n, np.inf)
    H, P = h_beta(beta)
    diff = H - log_u
    active = np.abs(diff) > tol
    for _ in range(max_iter):
        if not active.any():
            break
        up = active & (diff > 0)
        down = active & ~(diff > 0)
        beta_min[up] = beta[up]
        beta[up] = np.where(np.isinf(beta_max[up]), beta[up] * 2, (beta[up] + beta_max[up]) / 2)
        beta_max[down] = beta[down]
        beta[down] = np.where(
            np.isinf(beta_min[down]), beta[down] / 2, (beta[down] + beta_min[down]) / 2
        )
        H_new, P_new = h_beta(beta)
        H[active], P[active] = H_new[active], P_new[active]
        diff = H - log_u
        active &= np.abs(diff) > tol
    onehot = np.zeros((n, n_batches))
    rows = np.repeat(np.arange(n), neighbour_batch.shape[1])
    np.add.at(onehot, (rows, neighbour_batch.ravel()), P.ravel())
    simpson = (onehot**2).sum(axis=1)
    simpson[P.sum(axis=1) == 0] = np.nan
    return simpson


def ilisi(X: np.ndarray, batch, k0: int = 90, scale: bool = True) -> float:
    """scib-like iLISI: median over rows of 1/Simpson's index of the batch labels.

    Each row's ``k = min(k0, n - 1)`` nearest other rows (Euclidean, scikit-learn) are
    weighted by a Gaussian kernel calibrated to perplexity floor(k/3) (scib's default for
    k0 = 90 is 30), as in harmony's and scib's ``compute_simpson_index``. Scaled, the
    result is (median - 1)/(B - 1): 0 when every neighbourhood holds one dataset, 1 when
    all B datasets are evenly mixed. NaN with fewer than two batches.

    Simplification: scib's ``ilisi_graph(type_='embed')`` takes the k0 nearest rows by
    shortest-path distance on the 15-NN connectivity graph (a compiled helper); here they
    are the k0 nearest rows in the embedding itself, as harmony's ``compute_lisi`` and
    scib-metrics' ``ilisi_knn`` do. With fewer than about perplexity rows per dataset the
    calibration must reach into other datasets, so even a perfectly separated embedding
    scores above 0 on a handful of rows.
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float64)
    codes, uniques = pd.factorize(np.asarray(batch).astype(str))
    n_batches = len(uniques)
    n = X.shape[0]
    if n_batches < 2 or n < 2:
        return float("nan")
    k = int(min(k0, n - 1))
    perplexity = max(math.floor(k / 3), 1)
    distances, indices = NearestNeighbors(n_neighbors=k).fit(X).kneighbors()
    simpson = _simpson_index(distances, codes[indices], n_batches, perplexity)
    with np.errstate(divide="ignore", invalid="ignore"):
        lisi = 1.0 / simpson
    if not np.isfinite(lisi).any():
        return float("nan")
    median = float(np.nanmedian(lisi[np.isfinite(lisi)]))
    return (median - 1.0) / (n_batches - 1) if scale else median


def graph_connectivity(connectivities, labels) -> float:
    """scib ``graph_connectivity``: mean over clusters of largest component / cluster size.

    Components are taken on the graph restricted to each cluster (edges between clusters
    dropped), all clusters at once. NaN for no rows.
    """
    from scipy.sparse.csgraph import connected_components

    labels = np.asarray(labels).astype(str)
    codes, uniques = pd.factorize(labels)
    if codes.size == 0:
        return float("nan")
    graph = sp.coo_matrix(connectivities)
    if graph.shape != (codes.size, codes.size):
        raise ValidationError(
            f"The connectivity matrix is {graph.shape}, expected {(codes.size, codes.size)}."
        )
    inside = (codes[graph.row] == codes[graph.col]) & (graph.data != 0)
    graph = sp.csr_matrix(
        (np.ones(int(inside.sum())), (graph.row[inside], graph.col[inside])), shape=graph.shape
    )
    _, component = connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(component)
    owner = np.zeros(sizes.size, dtype=np.int64)
    owner[component] = codes
    largest = np.zeros(len(uniques))
    np.maximum.at(largest, owner, sizes)
    return float(np.mean(largest / np.bincount(codes, minlength=len(uniques))))


def common_gene_ratio(genes, labels) -> float:
    """sum_c (|c|/N)(1 - unique genes in c/|c|) = (N - distinct (cluster, gene) pairs)/N."""
    frame = pd.DataFrame(
        {"gene": np.asarray(genes).astype(str), "label": np.asarray(labels).astype(str)}
    )
    if frame.empty:
        return float("nan")
    return float((len(frame) - len(frame.drop_duplicates())) / len(frame))


def neighbour_incidence(adata: ad.AnnData, graphs: Mapping[str, Any]) -> sp.csr_matrix:
    """Rows x vocabulary 0/1 matrix: the graph neighbours (by gene name) of each row.

    Row r (gene g of dataset t) holds g's neighbours in graph t, the self-loop included
    when the adjacency has one. Rows whose dataset has no graph, or whose gene is not a
    node of it, are empty.
    """
    genes = obs_column(adata, "gene")
    datasets = obs_column(adata, "dataset")
    vocabulary = pd.Index(sorted({str(g) for graph in graphs.values() for g in graph.genes}))
    blocks, order = [], []
    for name, graph in graphs.items():
        rows = np.flatnonzero(datasets == str(name))
        positions = pd.Index(list(graph.genes)).get_indexer(genes[rows])
        keep = positions >= 0
        if not keep.any():
            continue
        node_vocab = vocabulary.get_indexer([str(g) for g in graph.genes])
        to_vocab = sp.csr_matrix(
            (np.ones(node_vocab.size), (np.arange(node_vocab.size), node_vocab)),
            shape=(node_vocab.size, vocabulary.size),
        )
        adjacency = sp.csr_matrix(graph.adjacency)[positions[keep]]
        adjacency.data = (adjacency.data != 0).astype(np.float64)
        adjacency.eliminate_zeros()
        blocks.append(adjacency @ to_vocab)
        order.append(rows[keep])
    shape = (adata.n_obs, vocabulary.size)
    if not blocks:
        return sp.csr_matrix(shape, dtype=np.float64)
    stacked = sp.vstack(blocks).tocoo()
    placed = np.concatenate(order)[stacked.row]
    incidence = sp.csr_matrix((stacked.data, (placed, stacked.col)), shape=shape)
    incidence.data[:] = 1.0
    return incidence


def neighbours_overlap(adata: ad.AnnData, graphs: Mapping[str, Any], labels) -> float:
    """Cluster-size-weighted mean Jaccard of graph neighbour sets across datasets.

    Vectorised as the method notes suggest: with B the row x vocabulary incidence
    (:func:`neighbour_incidence`), intersections are B_c B_cᵀ within each cluster c,
    Jaccard = ∩ / (deg_a + deg_b - ∩) (0 where both sets are empty), averaged over the
    ordered pairs (a, b) of c from different datasets, weighted by |c|/N and summed.
    """
    labels = np.asarray(labels).astype(str)
    datasets = obs_column(adata, "dataset")
    if labels.size != adata.n_obs:
        raise ValidationError(f"{labels.size} labels for {adata.n_obs} rows.")
    if labels.size == 0:
        return float("nan")
    incidence = neighbour_incidence(adata, graphs)
    degree = np.asarray(incidence.getnnz(axis=1), dtype=np.float64)
    total = 0.0
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if rows.size < 2:
            continue
        block = incidence[rows]
        block_t = block.T.tocsr()
        ds = datasets[rows]
        jaccard_sum, pairs = 0.0, 0
        for start in range(0, rows.size, _NO_CHUNK):
            part = slice(start, start + _NO_CHUNK)
            inter = (block[part] @ block_t).toarray()
            union = degree[rows[part]][:, None] + degree[rows][None, :] - inter
            jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            cross = ds[part][:, None] != ds[None, :]
            jaccard_sum += float(jaccard[cross].sum())
            pairs += int(cross.sum())
        if pairs:
            total += rows.size / labels.size * jaccard_sum / pairs
    return float(total)


def common_genes(
    adata: ad.AnnData, min_fraction: float = 0.5, min_genes: int = MIN_COMMON_GENES
) -> tuple[list[str], float, str]:
    """Genes to use for ASW, iLISI and GC: ``(genes, fraction_used, note)``.

    The genes present in every dataset (``fraction_used`` 1.0, note ``"all datasets"``).
    When there is none, or fewer than ``min_genes`` (a handful of genes gives one or two
    clusters and silhouettes of nothing), the genes present in at least
    ``ceil(min_fraction x datasets)`` datasets, never fewer than two, if that set is
    larger (``fraction_used`` = ``min_fraction``, the note says so). An empty list when
    even that finds nothing.
    """
    genes = obs_column(adata, "gene")
    datasets = obs_column(adata, "dataset")
    pairs = pd.DataFrame({"gene": genes, "dataset": datasets}).drop_duplicates()
    n_datasets = pairs["dataset"].nunique()
    if n_datasets == 0:
        return [], 1.0, RULE_NONE
    counts = pairs.groupby("gene").size()
    in_all = sorted(counts.index[counts == n_datasets])
    needed = max(math.ceil(min_fraction * n_datasets - 1e-9), min(2, n_datasets))
    enough = sorted(counts.index[counts >= needed])
    if in_all and (len(in_all) >= min_genes or len(enough) <= len(in_all)):
        return in_all, 1.0, RULE_ALL
    if in_all:
        return (
            enough,
            float(min_fraction),
            f"at least {needed} of {n_datasets} datasets (only {len(in_all)} "
            f"gene{'s' if len(in_all) > 1 else ''} in all, fewer than {min_genes})",
        )
    if min_fraction == 0.5:
        note = RULE_HALF if enough else RULE_NONE
    else:
        note = (
            f"at least {needed} of {n_datasets} datasets (no gene is in all)"
            if enough
            else f"none (no gene is in at least {needed} of {n_datasets} datasets)"
        )
    return enough, float(min_fraction), note


def evaluate_embedding(
    adata: ad.AnnData,
    graphs: Mapping[str, Any],
    resolution: float = 1.0,
    seed: int = 0,
    n_neighbors: int = 15,
    min_fraction: float = 0.5,
    threads: int | None = 1,
) -> dict:
    """The six metrics of one joint embedding, plus their mean and what they were run on.

    Clusters a copy of the embedding (``adata`` is left as it is; any ``obs['leiden']``
    in it is ignored so that every method is clustered the same way). Keys: the six of
    :data:`METRICS`; ``mean_of_six`` (NaN if any metric is undefined) and
    ``mean_of_defined`` (the mean of those that are); ``undefined_metrics``; ``n_rows``;
    ``n_clusters``; ``n_common_genes``; ``n_common_rows``; ``common_gene_rule``;
    ``common_gene_fraction``; ``resolution``; ``seed``; ``seconds``. ``threads``: see
    :func:`limit_threads`.
    """
    with limit_threads(threads):
        return _evaluate(adata, graphs, resolution, seed, n_neighbors, min_fraction)


def _evaluate(adata, graphs, resolution, seed, n_neighbors, min_fraction) -> dict:
    start = time.perf_counter()
    X = np.asarray(dense(adata.X), dtype=np.float32)
    if X.ndim != 2 or X.shape[0] != adata.n_obs:
        raise ValidationError("The embedding matrix must have one row per (gene, dataset).")
    if not np.isfinite(X).all():
        raise ValidationError("The embedding holds NaN or infinite values.")
    obs = pd.DataFrame(
        {"gene": obs_column(adata, "gene"), "dataset": obs_column(adata, "dataset")},
        index=[str(i) for i in range(adata.n_obs)],
    )
    work = ad.AnnData(X=X, obs=obs)
    cluster_embedding(work, resolution=resolution, n_neighbors=n_neighbors, seed=seed)
    labels = work.obs["leiden"].astype(str).to_numpy()
    genes = obs["gene"].to_numpy()
    batch = obs["dataset"].to_numpy()

    common, fraction, rule = common_genes(work, min_fraction)
    mask = np.isin(genes, common)
    if mask.sum() >= 2:
        asw = asw_batch(X[mask], batch[mask], labels[mask])
        lisi = ilisi(X[mask], batch[mask])
        connectivities = sp.csr_matrix(work.obsp["connectivities"])[mask][:, mask]
        gc = graph_connectivity(connectivities, labels[mask])
    else:
        asw = lisi = gc = float("nan")
    values = {
        "asw": asw,
        "auc": auc_edges(work, graphs),
        "ilisi": lisi,
        "gc": gc,
        "cgr": common_gene_ratio(genes, labels),
        "no": neighbours_overlap(work, graphs, labels),
    }
    values = {k: float(v) for k, v in values.items()}
    defined = [v for v in values.values() if math.isfinite(v)]
    undefined = [k for k, v in values.items() if not math.isfinite(v)]
    return {
        **values,
        "mean_of_six": float(np.mean(list(values.values()))) if not undefined else float("nan"),
        "mean_of_defined": float(np.mean(defined)) if defined else float("nan"),
        "undefined_metrics": undefined,
        "n_rows": int(adata.n_obs),
        "n_clusters": len(np.unique(labels)),
        "n_common_genes": len(common),
        "n_common_rows": int(mask.sum()),
        "common_gene_rule": rule,
        "common_gene_fraction": fraction,
        "resolution": float(resolution),
        "seed": int(seed),
        "seconds": round(time.perf_counter() - start, 3),
    }


def minmax_scaled_means(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Per method, the mean of its six metrics after min-max scaling each metric over methods.

    The method notes ask for this beside the raw mean because the paper's overall score is
    unverified. A metric on which all methods tie, or that is undefined for some method,
    is left out for everyone.
    """
    names = list(results)
    if not names:
        return {}
    table = pd.DataFrame({m: [float(results[n][m]) for n in names] for m in METRICS}, index=names)
    usable = [m for m in METRICS if table[m].notna().all() and table[m].max() > table[m].min()]
    if not usable:
        return {n: float("nan") for n in names}
    scaled = (table[usable] - table[usable].min()) / (table[usable].max() - table[usable].min())
    return {n: float(scaled.loc[n].mean()) for n in names}
