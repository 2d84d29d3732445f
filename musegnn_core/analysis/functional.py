"""Functional coherence of a joint gene embedding, measured against a gene-set library.

The paper's six metrics say nothing about biology. Two measures fill that gap:

* :func:`geneset_coherence_auroc`: do rows whose genes share a gene set sit closer
  (cosine similarity) than rows whose genes share none?
* :func:`function_prediction_auroc`: can a k-nearest-neighbour classifier on the
  embedding predict gene-set membership of genes it has not seen?

Both only use rows whose gene is annotated somewhere in the library: an unannotated gene
is unknown, not a negative. Rows of the same gene in different datasets never form a pair
in the first measure and never straddle a training/test split in the second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ValidationError
from .arrays import obs_column, unit_rows
from .metrics import binary_auc, limit_threads


def set_membership(genes: np.ndarray, gene_sets: Mapping[str, Sequence[str]]) -> sp.csr_matrix:
    """The genes x sets 0/1 matrix of ``genes`` (distinct names) in a library; a set's genes
    that are not among ``genes`` are ignored."""
    index = pd.Index(genes)
    gene_idx, set_idx = [], []
    for j, members in enumerate(gene_sets.values()):
        positions = index.get_indexer(pd.unique(np.asarray(list(members), dtype=str)))
        positions = positions[positions >= 0]
        gene_idx.append(positions)
        set_idx.append(np.full(positions.size, j))
    gi = np.concatenate(gene_idx) if gene_idx else np.zeros(0, int)
    sj = np.concatenate(set_idx) if set_idx else np.zeros(0, int)
    membership = sp.csr_matrix(
        (np.ones(gi.size, dtype=np.float32), (gi, sj)), shape=(len(genes), len(gene_sets))
    )
    membership.data[:] = 1.0
    return membership


def _annotation(
    adata: ad.AnnData, gene_sets: Mapping[str, Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, list[str]]:
    """Annotated rows, their gene index, the gene x set 0/1 matrix, and the set names.

    Returns ``(rows, row_gene, membership, set_names)``: ``rows`` the embedding rows whose
    gene is in at least one set, ``row_gene[i]`` the index of ``rows[i]``'s gene into the
    rows of ``membership`` (distinct annotated genes x sets).
    """
    if not gene_sets:
        raise ValidationError("The gene-set library is empty.")
    genes = obs_column(adata, "gene")
    unique, inverse = np.unique(genes, return_inverse=True)
    set_names = list(gene_sets)
    membership = set_membership(unique, gene_sets)
    annotated = np.flatnonzero(membership.getnnz(axis=1) > 0)
    remap = np.full(unique.size, -1)
    remap[annotated] = np.arange(annotated.size)
    rows = np.flatnonzero(remap[inverse] >= 0)
    return rows, remap[inverse[rows]], membership[annotated], set_names


PAIR_SCOPES = ("any", "within", "across")


def _pair_sample(
    n: int,
    valid,
    max_pairs: int,
    seed: int,
    max_rounds: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs ``(i, j)`` for which ``valid(i, j)`` holds: all of them when there are at
    most ``max_pairs`` candidate pairs, otherwise uniform draws (with replacement, seeded)
    in rounds of ``max_pairs`` until ``max_pairs`` valid pairs are collected."""
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
        keep = valid(i, j)
        return i[keep], j[keep]
    rng = np.random.default_rng(seed)
    found_i, found_j, count = [], [], 0
    for _ in range(max_rounds):
        i = rng.integers(0, n, size=max_pairs)
        j = rng.integers(0, n, size=max_pairs)
        keep = valid(i, j)
        found_i.append(i[keep])
        found_j.append(j[keep])
        count += int(keep.sum())
        if count >= max_pairs:
            break
    return np.concatenate(found_i)[:max_pairs], np.concatenate(found_j)[:max_pairs]


def geneset_coherence_auroc(
    adata: ad.AnnData,
    gene_sets: Mapping[str, Sequence[str]],
    seed: int = 0,
    max_pairs: int = 200_000,
    pairs: str = "any",
) -> float:
    """AUROC of row cosine similarity for "the two genes share a gene set".

    Pairs of rows whose genes are both annotated in the library; positive when the genes
    share at least one set, negative when they share none; pairs of the same gene name
    are left out. ``pairs``: ``"any"`` (rows of any datasets, the default), ``"within"``
    (same dataset only) or ``"across"`` (different datasets only). All pairs are scored
    when there are at most ``max_pairs`` candidates, otherwise ``max_pairs`` valid pairs
    are drawn uniformly (with replacement, seeded by ``seed``). 0.5 is chance; NaN when
    either class is empty.
    """
    if pairs not in PAIR_SCOPES:
        raise ValidationError(f"pairs must be one of {PAIR_SCOPES}, not {pairs!r}.")
    rows, row_gene, membership, _ = _annotation(adata, gene_sets)
    n = rows.size
    if n < 2:
        return float("nan")
    datasets = obs_column(adata, "dataset")[rows]

    def valid(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        keep = row_gene[i] != row_gene[j]
        if pairs == "within":
            keep &= datasets[i] == datasets[j]
        elif pairs == "across":
            keep &= datasets[i] != datasets[j]
        return keep

    i, j = _pair_sample(n, valid, max_pairs, seed)
    if i.size == 0:
        return float("nan")
    with limit_threads(1):
        Z = unit_rows(adata.X[rows])
        shared = np.asarray(
            membership[row_gene[i]].multiply(membership[row_gene[j]]).getnnz(axis=1) > 0
        )
        similarity = np.einsum("ij,ij->i", Z[i], Z[j])
    return binary_auc(shared, similarity)


def _eligible_sets(
    membership: sp.csr_matrix,
    set_names: list[str],
    min_set_size: int,
    max_sets: int | None,
    seed: int,
) -> np.ndarray:
    """Indices of the sets to predict: enough members and enough non-members, seeded pick."""
    n_genes = membership.shape[0]
    sizes = np.asarray(membership.getnnz(axis=0))
    eligible = np.flatnonzero((sizes >= min_set_size) & (n_genes - sizes >= min_set_size))
    if max_sets is not None and eligible.size > max_sets:
        order = np.argsort(np.asarray(set_names, dtype=object)[eligible].astype(str), kind="stable")
        rng = np.random.default_rng(seed)
        eligible = np.sort(rng.choice(eligible[order], size=max_sets, replace=False))
    return eligible


def function_prediction_table(
    adata: ad.AnnData,
    gene_sets: Mapping[str, Sequence[str]],
    k: int = 15,
    folds: int = 5,
    min_set_size: int = 10,
    max_sets: int | None = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """Per gene set, the cross-validated AUROC of kNN membership prediction.

    Universe: rows whose gene is annotated in the library. Eligible sets have at least
    ``min_set_size`` member genes and as many non-member genes in the universe; when more
    than ``max_sets`` are eligible, ``max_sets`` are drawn with ``seed``. Folds group rows
    by gene name (each distinct gene goes to one fold, seeded shuffle), so a gene's rows
    from other datasets never help predict it. Each test row is scored by the fraction of
    its ``k`` nearest training rows (cosine) that belong to the set, which is
    ``KNeighborsClassifier(k, weights='uniform', metric='cosine').predict_proba``; the
    neighbours are found once per fold and shared by all sets. The AUROC of each set is
    computed on the pooled out-of-fold scores.

    Columns: ``gene_set``, ``n_genes`` (members in the universe), ``n_rows``, ``auroc``.
    """
    from sklearn.neighbors import NearestNeighbors

    columns = ["gene_set", "n_genes", "n_rows", "auroc"]
    rows, row_gene, membership, set_names = _annotation(adata, gene_sets)
    chosen = _eligible_sets(membership, set_names, min_set_size, max_sets, seed)
    n_genes = membership.shape[0]
    if chosen.size == 0 or n_genes < 2:
        return pd.DataFrame(columns=columns)
    Z = unit_rows(adata.X[rows])
    labels = membership[:, chosen].toarray()[row_gene].astype(np.float32)  # rows x sets

    n_folds = int(min(max(folds, 2), n_genes))
    rng = np.random.default_rng(seed)
    gene_fold = np.empty(n_genes, dtype=np.int64)
    gene_fold[rng.permutation(n_genes)] = np.arange(n_genes) % n_folds
    row_fold = gene_fold[row_gene]
    scores = np.zeros_like(labels)
    for fold in range(n_folds):
        test = np.flatnonzero(row_fold == fold)
        train = np.flatnonzero(row_fold != fold)
        if test.size == 0 or train.size == 0:
            continue
        n_nb = int(min(k, train.size))
        with limit_threads(1):  # see metrics.limit_threads
            _, nbrs = NearestNeighbors(n_neighbors=n_nb).fit(Z[train]).kneighbors(Z[test])
        scores[test] = labels[train[nbrs]].mean(axis=1)

    records = []
    for col, set_index in enumerate(chosen):
        y = labels[:, col] > 0
        records.append(
            {
                "gene_set": set_names[set_index],
                "n_genes": int(membership[:, set_index].nnz),
                "n_rows": int(y.sum()),
                "auroc": binary_auc(y, scores[:, col]),
            }
        )
    return pd.DataFrame.from_records(records, columns=columns)


def function_prediction_auroc(
    adata: ad.AnnData,
    gene_sets: Mapping[str, Sequence[str]],
    k: int = 15,
    folds: int = 5,
    min_set_size: int = 10,
    max_sets: int | None = 50,
    seed: int = 0,
) -> float:
    """Mean over eligible gene sets of :func:`function_prediction_table`'s AUROC (NaN if none)."""
    table = function_prediction_table(
        adata, gene_sets, k=k, folds=folds, min_set_size=min_set_size, max_sets=max_sets, seed=seed
    )
    values = table["auroc"].to_numpy(dtype=float) if len(table) else np.zeros(0)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")
