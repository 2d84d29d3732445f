"""The node features the encoder reads, from a graph's gene x cell residuals."""

from __future__ import annotations

import numpy as np


def principal_inputs(features: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """Gene x component scores ``U S`` of the residuals' top ``n_components`` axes.

    Layer 1 maps a gene's cells linearly (``x W``), so feeding ``U S`` instead of
    ``x = U S V^T`` is the same layer with weights ``V^T W`` when no axis is dropped;
    dropping the small axes keeps what most cells share and leaves out per-cell noise,
    and the layer's cost no longer grows with the number of cells. 0, or at least as
    many components as the matrix has, returns the residuals unchanged (the reference).
    Seeded randomised SVD with fixed signs, so a run and its resume see the same inputs.
    """
    features = np.asarray(features, dtype=np.float32)
    if n_components <= 0 or n_components >= min(features.shape):
        return features
    from sklearn.utils.extmath import randomized_svd

    u, s, _ = randomized_svd(
        features.astype(np.float64), n_components, n_iter=4, random_state=seed
    )
    return (u * s).astype(np.float32)
