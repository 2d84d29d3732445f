"""Analytic Pearson residuals (Lause, Berens & Kobak, Genome Biol. 2021) and HVGs.

The reference builds node features with Seurat's SCTransform v2, which is R only.
Analytic Pearson residuals are its closed-form equivalent: a negative binomial
model with a shared overdispersion ``theta`` and the rank-one mean

    mu_cg = n_c * p_g = (sum_g x_cg) * (sum_c x_cg) / (sum_cg x_cg)
    r_cg  = (x_cg - mu_cg) / sqrt(mu_cg + mu_cg^2 / theta),  clipped to +-clip

with ``clip = sqrt(n_cells)`` by default. Highly variable genes are the genes with
the largest variance of their clipped residuals. The numbers match scanpy's
``sc.experimental.pp.normalize_pearson_residuals`` and
``sc.experimental.pp.highly_variable_genes(flavor="pearson_residuals")``.

The residual matrix is dense even when the counts are sparse (a zero count has a
negative residual), so it is never materialised for all genes at once: genes are
processed in chunks of at most ``CHUNK_ELEMENTS`` values (16 MB of float64), which
keeps memory flat for 30k genes x 3k cells while staying vectorised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ValidationError

#: Values per working block (float64): about 16 MB, a few such arrays live at once.
CHUNK_ELEMENTS = 2**21


def check_parameters(theta: float, clip: float | None) -> None:
    """Reject parameters for which the residuals are undefined."""
    if not theta > 0:
        raise ValidationError(f"Pearson residuals need theta > 0, got {theta}.")
    if clip is not None and clip < 0:
        raise ValidationError(f"Pearson residuals need clip >= 0 or None, got {clip}.")


def as_columns(counts) -> sp.csc_matrix | np.ndarray:
    """Counts in a layout where slicing genes (columns) is cheap: CSC or a dense array."""
    if sp.issparse(counts):
        return sp.csc_matrix(counts)
    return np.asarray(counts)


def count_sums(counts) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-cell totals, per-gene totals and the grand total, in float64."""
    cell_sums = np.asarray(counts.sum(axis=1, dtype=np.float64)).ravel()
    gene_sums = np.asarray(counts.sum(axis=0, dtype=np.float64)).ravel()
    return cell_sums, gene_sums, float(gene_sums.sum())


def dense_columns(counts, columns: np.ndarray) -> np.ndarray:
    """The given gene columns as a dense float64 block (cells x len(columns))."""
    block = counts[:, columns]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return block.astype(np.float64, copy=False)


def residual_block(
    block: np.ndarray,
    cell_sums: np.ndarray,
    gene_sums: np.ndarray,
    total: float,
    theta: float,
    clip: float,
) -> np.ndarray:
    """Clipped Pearson residuals of one dense block of genes (float64, in place).

    Where the expected count is zero (a gene or cell with no counts at all) the
    count is zero too, and the residual is left at 0 instead of scanpy's NaN.
    In-place arithmetic keeps this at a handful of passes over the block.
    """
    mu = np.outer(cell_sums, gene_sums / total if total > 0 else gene_sums)
    scale = mu * mu
    scale /= theta
    scale += mu
    np.sqrt(scale, out=scale)
    block -= mu
    if cell_sums.min(initial=1.0) > 0 and gene_sums.min(initial=1.0) > 0:
        block /= scale
    else:
        np.divide(block, scale, out=block, where=scale > 0)
    return np.clip(block, -clip, clip, out=block)


def chunk_starts(n_cols: int, n_cells: int) -> range:
    """Start indices of the gene chunks, each at most CHUNK_ELEMENTS values."""
    step = max(1, CHUNK_ELEMENTS // max(n_cells, 1))
    return range(0, n_cols, step)


def iter_residuals(
    counts, columns: np.ndarray, theta: float, clip: float | None
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (position in ``columns``, residual block) chunk by chunk.

    The model (cell and gene totals) always uses *all* genes of ``counts``, so the
    residuals of a gene subset equal the matching columns of the full matrix.
    """
    check_parameters(theta, clip)
    counts = as_columns(counts)
    n_cells = counts.shape[0]
    clip = float(np.sqrt(n_cells)) if clip is None else float(clip)
    cell_sums, gene_sums, total = count_sums(counts)
    step = chunk_starts(len(columns), n_cells).step
    for start in chunk_starts(len(columns), n_cells):
        cols = columns[start : start + step]
        block = dense_columns(counts, cols)
        yield (
            slice(start, start + len(cols)),
            residual_block(block, cell_sums, gene_sums[cols], total, theta, clip),
        )


def pearson_residuals(counts, theta: float = 100, clip: float | None = None) -> np.ndarray:
    """Dense cells x genes float32 matrix of clipped analytic Pearson residuals.

    ``counts`` are raw counts (cells x genes), sparse or dense; ``clip`` defaults to
    sqrt(n_cells) as in scanpy. Genes with no counts get residual 0 (scanpy: NaN).
    """
    n_cells, n_genes = counts.shape
    out = np.empty((n_cells, n_genes), dtype=np.float32)
    for where, block in iter_residuals(counts, np.arange(n_genes), theta, clip):
        out[:, where] = block
    return out


def residual_variances(counts, theta: float = 100, clip: float | None = None) -> np.ndarray:
    """Per-gene variance (ddof 0) of the clipped Pearson residuals, float64.

    Like scanpy, genes with zero total counts are left out of the model and get
    variance 0, so they never outrank an expressed gene.
    """
    counts = as_columns(counts)
    gene_sums = np.asarray(counts.sum(axis=0, dtype=np.float64)).ravel()
    expressed = np.flatnonzero(gene_sums > 0)
    variances = np.zeros(counts.shape[1], dtype=np.float64)
    for where, block in iter_residuals(counts, expressed, theta, clip):
        variances[expressed[where]] = block.var(axis=0)
    return variances


def rank_genes_pearson(
    adata: ad.AnnData, theta: float = 100, clip: float | None = None
) -> pd.Series:
    """Residual variance of every expressed gene, sorted from most to least variable."""
    variances = residual_variances(adata.X, theta=theta, clip=clip)
    expressed = np.asarray(adata.X.sum(axis=0, dtype=np.float64)).ravel() > 0
    series = pd.Series(
        variances, index=pd.Index(adata.var_names, dtype=str), name="residual_variance"
    )
    series = series[expressed]
    order = np.argsort(-series.to_numpy(), kind="stable")
    return series.iloc[order]


def select_hvgs_pearson(
    adata: ad.AnnData, n_genes: int = 1000, theta: float = 100, clip: float | None = None
) -> list[str]:
    """Names of the ``n_genes`` genes with the largest Pearson residual variance.

    Ordered from most to least variable. Only expressed genes (total count > 0) are
    candidates, so a dataset with fewer of them than ``n_genes`` returns them all
    (the graph then has fewer nodes; the model supports variable graph sizes).
    """
    if n_genes < 1:
        raise ValidationError(f"The number of highly variable genes must be >= 1, got {n_genes}.")
    ranked = rank_genes_pearson(adata, theta=theta, clip=clip)
    return ranked.index[:n_genes].tolist()


def node_features(
    adata: ad.AnnData, genes: Sequence[str], theta: float = 100, clip: float | None = None
) -> np.ndarray:
    """Genes x cells float32 Pearson residuals: the node features of one graph.

    MuSe-GNN's node i is a gene and its feature vector is that gene's residual across
    the dataset's cells (the reference: SCTransform ``scale.data`` of the 1000 HVGs),
    so the feature width is the number of cells. Residuals use the model fitted on all
    genes of ``adata``, as SCTransform does, then keep the rows of ``genes`` in order.
    """
    index = pd.Index(adata.var_names).get_indexer(list(genes))
    if (index < 0).any():
        missing = [g for g, i in zip(genes, index, strict=True) if i < 0]
        raise ValidationError(
            f"{len(missing)} requested genes are not in the dataset, e.g. {missing[:5]}."
        )
    out = np.empty((len(index), adata.n_obs), dtype=np.float32)
    for where, block in iter_residuals(adata.X, index, theta, clip):
        out[where, :] = block.T
    return out
