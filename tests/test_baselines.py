"""Baseline embeddings: row layout, determinism, PCA by hand, GAE learns the graph."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from musegnn_core.analysis.baselines import (
    gae_embedding,
    pca_embedding,
    random_embedding,
)
from musegnn_core.analysis.metrics import auc_edges
from musegnn_core.errors import ValidationError
from tests.factories import FakeGraph


def community_graph(name, n_genes, n_cells, seed, info=None, n_communities=4):
    """Genes in communities that are co-expressed (features) and connected (edges)."""
    rng = np.random.default_rng(seed)
    community = np.arange(n_genes) % n_communities
    programs = rng.normal(size=(n_communities, n_cells))
    features = programs[community] + 0.5 * rng.normal(size=(n_genes, n_cells))
    same = community[:, None] == community[None, :]
    A = (same & (rng.random((n_genes, n_genes)) < 0.5)).astype(np.uint8)
    A = np.maximum(A, A.T)
    np.fill_diagonal(A, 1)
    genes = [f"G{(i * 7 + seed) % 97}_{i}" for i in range(n_genes)]
    return FakeGraph(name, genes, sp.csr_matrix(A), features.astype(np.float32), info or {})


@pytest.fixture
def graphs():
    return {
        "alpha": community_graph(
            "alpha", 40, 30, 0, {"tissue": "blood", "modality": "scrna", "species": "human"}
        ),
        "beta": community_graph("beta", 25, 60, 1),
        "tiny": community_graph("tiny", 12, 6, 2),  # fewer cells than 32 components
    }


def check_layout(adata, graphs, dim=32):
    n = sum(len(g.genes) for g in graphs.values())
    assert adata.shape == (n, dim) and adata.X.dtype == np.float32
    assert np.isfinite(adata.X).all()
    expected_genes = [gene for g in graphs.values() for gene in g.genes]
    expected_datasets = [name for name, g in graphs.items() for _ in g.genes]
    assert list(adata.obs["gene"]) == expected_genes
    assert list(adata.obs["dataset"]) == expected_datasets
    assert adata.obs_names.is_unique
    for column in ("tissue", "modality", "species"):
        assert column in adata.obs
    alpha = adata.obs[adata.obs["dataset"] == "alpha"].iloc[0]
    assert (alpha["tissue"], alpha["modality"], alpha["species"]) == ("blood", "scrna", "human")
    beta = adata.obs[adata.obs["dataset"] == "beta"].iloc[0]
    assert beta["tissue"] == "unknown" and beta["species"] == "unknown"


def test_random_embedding(graphs):
    a = random_embedding(graphs, seed=3)
    check_layout(a, graphs)
    assert a.uns["method"] == "random"
    np.testing.assert_array_equal(a.X, random_embedding(graphs, seed=3).X)
    assert not np.array_equal(a.X, random_embedding(graphs, seed=4).X)
    assert random_embedding(graphs, dim=8).shape[1] == 8


def test_pca_embedding_matches_hand_svd_and_clamps(graphs):
    a = pca_embedding(graphs, seed=0)
    check_layout(a, graphs)
    np.testing.assert_array_equal(a.X, pca_embedding(graphs, seed=0).X)
    # beta by hand: scale each cell (column) over genes (ddof 1), SVD, scores U S
    F = graphs["beta"].features.astype(np.float64)
    Z = (F - F.mean(0)) / F.std(0, ddof=1)
    Z = Z - Z.mean(0)  # PCA centres the genes (rows are the samples)
    U, S, _ = np.linalg.svd(Z, full_matrices=False)
    scores = U[:, :24] * S[:24]  # 25 genes: at most 24 components
    block = a.X[a.obs["dataset"].to_numpy() == "beta"]
    np.testing.assert_allclose(np.abs(block[:, :24]), np.abs(scores), atol=1e-4)
    assert np.all(block[:, 24:] == 0)
    # tiny: 6 cells -> 5 components, the rest zero columns
    tiny = a.X[a.obs["dataset"].to_numpy() == "tiny"]
    assert np.all(tiny[:, 5:] == 0) and np.any(tiny[:, :5] != 0)


def test_gae_embedding_learns_edges_and_is_seeded(graphs):
    import torch

    threads = torch.get_num_threads()
    a = gae_embedding(graphs, epochs=30, seed=0)
    assert torch.get_num_threads() == threads  # the one-thread setting is restored
    check_layout(a, graphs)
    loss = a.uns["baseline"]["loss"]
    assert len(loss) == 30 and loss[-1] < loss[0]
    assert a.uns["method"] == "gae" and a.uns["baseline"]["epochs"] == 30
    b = gae_embedding(graphs, epochs=30, seed=0)
    np.testing.assert_allclose(a.X, b.X, rtol=1e-5, atol=1e-5)
    c = gae_embedding(graphs, epochs=30, seed=1)
    assert not np.allclose(a.X, c.X)
    assert auc_edges(a, graphs) > 0.9
    assert auc_edges(a, graphs) > auc_edges(random_embedding(graphs), graphs)


def test_baselines_reject_bad_graphs(graphs):
    with pytest.raises(ValidationError):
        random_embedding({})
    broken = dict(graphs)
    g = graphs["beta"]
    broken["beta"] = FakeGraph("beta", g.genes[:-1], g.adjacency, g.features)
    for function in (pca_embedding, random_embedding, gae_embedding):
        with pytest.raises(ValidationError, match="beta"):
            function(broken)
