"""Small array helpers shared by the analysis modules (metrics, functional measures,
neighbours): one definition each, so that every measure reads an embedding the same way."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ..errors import ValidationError


def obs_column(adata: ad.AnnData, key: str) -> np.ndarray:
    """``adata.obs[key]`` as an array of strings; a clear error when the column is missing."""
    if key not in adata.obs:
        raise ValidationError(f"The embedding has no obs column {key!r}.")
    return adata.obs[key].astype(str).to_numpy()


def dense(matrix) -> np.ndarray:
    """A NumPy array of a dense or scipy-sparse matrix."""
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix)


def unit_rows(matrix, dtype=np.float64) -> np.ndarray:
    """Rows scaled to Euclidean length 1 (dot products are then cosines); zero rows stay zero."""
    X = np.asarray(dense(matrix), dtype=dtype)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def standard_rows(matrix, dtype=np.float64) -> np.ndarray:
    """Rows centred and scaled to length 1 (dot products are then Pearson correlations);
    constant rows become zero."""
    X = np.asarray(dense(matrix), dtype=dtype)
    return unit_rows(X - X.mean(axis=1, keepdims=True), dtype)
