"""Which genes are like gene X: nearest (gene, dataset) rows by cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import ValidationError
from .arrays import unit_rows


def _query_rows(embedding: ad.AnnData, gene: str) -> np.ndarray:
    rows = np.flatnonzero(embedding.obs["gene"].astype(str).to_numpy() == gene)
    if rows.size == 0:
        raise ValidationError(
            f"Gene {gene!r} is not in this run's embedding (names are human "
            "symbols; mouse genes appear under their human ortholog)."
        )
    return rows


def nearest_genes(
    embedding: ad.AnnData, gene: str, top: int = 20, datasets: Sequence[str] | None = None
) -> pd.DataFrame:
    """The ``top`` rows most similar to any instance of ``gene`` (its own rows excluded).

    ``datasets`` restricts the candidates. Each row's score is its best cosine similarity
    to one of the query gene's instances; ``closest_instance`` names that instance's dataset.
    """
    if top < 1:
        raise ValidationError("top must be at least 1.")
    X = unit_rows(embedding.X, dtype=np.float32)
    query = _query_rows(embedding, gene)
    obs = embedding.obs
    candidates = obs["gene"].astype(str).to_numpy() != gene
    if datasets:
        unknown = sorted(set(datasets) - set(obs["dataset"].astype(str)))
        if unknown:
            raise ValidationError(f"Unknown dataset {unknown[0]!r} for this run.")
        candidates &= obs["dataset"].astype(str).isin(datasets).to_numpy()
    similarity = X[query] @ X[candidates].T  # instances x candidates
    best = similarity.argmax(axis=0)
    score = similarity.max(axis=0)
    order = np.argsort(-score, kind="stable")[:top]
    idx = np.flatnonzero(candidates)[order]
    return pd.DataFrame(
        {
            "gene": obs["gene"].astype(str).to_numpy()[idx],
            "dataset": obs["dataset"].astype(str).to_numpy()[idx],
            "cosine": score[order].round(4),
            "closest_instance": obs["dataset"].astype(str).to_numpy()[query][best[order]],
        }
    )


def gene_instances(embedding: ad.AnnData, gene: str) -> pd.DataFrame:
    """The same gene in each dataset and how close its instances sit (cosine matrix)."""
    X = unit_rows(embedding.X, dtype=np.float32)
    query = _query_rows(embedding, gene)
    names = embedding.obs["dataset"].astype(str).to_numpy()[query]
    return pd.DataFrame((X[query] @ X[query].T).round(4), index=names, columns=names)
