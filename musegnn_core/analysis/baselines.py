"""Baseline gene embeddings on the same graphs and genes as a MuSe-GNN run.

Each function returns an AnnData laid out like the joint embedding: one row per
(gene, dataset) in graph order, ``X`` float32 (rows x 32), ``obs`` columns ``gene``,
``dataset``, ``tissue``, ``modality``, ``species`` (from ``graph.info`` when it has them,
otherwise ``"unknown"``), row names ``"<dataset>:<gene>"``, and ``uns['method']``.

* :func:`pca_embedding`: per dataset, ``sc.pp.scale`` of the gene x cell Pearson
  residuals then PCA, as the reference benchmark.
* :func:`gae_embedding`: a graph autoencoder (torch-geometric ``GAE`` with GCN layers).
* :func:`random_embedding`: standard normal rows, the floor every method must beat.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import ValidationError
from .metrics import limit_threads

#: Default number of GAE epochs: about 11 s for the eight real 1000-gene graphs on two idle
#: CPU cores, 0.1 s per epoch after 2 s of set-up (the reference trains 2000 epochs at
#: lr 1e-4; see :func:`gae_embedding`).
GAE_EPOCHS = 100


def _check_graphs(graphs: Mapping[str, Any]) -> None:
    if not graphs:
        raise ValidationError("No graphs were given: build the dataset graphs first.")
    for name, graph in graphs.items():
        n = len(graph.genes)
        if n == 0:
            raise ValidationError(f"The graph of {name} has no genes.")
        if graph.adjacency.shape != (n, n):
            raise ValidationError(
                f"The graph of {name} has {n} genes but a {graph.adjacency.shape} adjacency."
            )
        features = np.asarray(graph.features)
        if features.ndim != 2 or features.shape[0] != n:
            raise ValidationError(
                f"The graph of {name} has {n} genes but features of shape {features.shape}."
            )


def embedding_adata(
    graphs: Mapping[str, Any], blocks: Mapping[str, np.ndarray], method: str
) -> ad.AnnData:
    """Stack per-dataset ``genes x dim`` blocks into the joint-embedding row layout."""
    X, records, names = [], [], []
    for name, graph in graphs.items():
        block = np.asarray(blocks[name], dtype=np.float32)
        info = getattr(graph, "info", None) or {}
        meta = {key: str(info.get(key) or "unknown") for key in ("tissue", "modality", "species")}
        for gene in graph.genes:
            records.append({"gene": str(gene), "dataset": str(name), **meta})
            names.append(f"{name}:{gene}")
        X.append(block)
    obs = pd.DataFrame.from_records(records, index=names)
    for column in obs.columns:
        obs[column] = obs[column].astype("category")
    adata = ad.AnnData(X=np.vstack(X).astype(np.float32), obs=obs)
    adata.uns["method"] = method
    return adata


# --------------------------------------------------------------------- PCA
def _scaled(features: np.ndarray) -> np.ndarray:
    """``sc.pp.scale`` of a genes x cells AnnData: each cell (column) to mean 0, sd 1."""
    X = np.asarray(features, dtype=np.float64)
    mean = X.mean(axis=0)
    std = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    std[~(std > 0)] = 1.0
    return (X - mean) / std


def pca_embedding(graphs: Mapping[str, Any], n_components: int = 32, seed: int = 0) -> ad.AnnData:
    """Per dataset, PCA of the scaled gene x cell residual matrix (the genes are the samples).

    Components are clamped to ``min(n_genes, n_cells) - 1``; missing ones are zero columns
    so every row has ``n_components`` values. ARPACK, seeded, signs fixed by scikit-learn.
    """
    from sklearn.decomposition import PCA

    _check_graphs(graphs)
    start = time.perf_counter()
    blocks = {}
    for name, graph in graphs.items():
        X = _scaled(graph.features)
        out = np.zeros((X.shape[0], n_components), dtype=np.float32)
        n_comp = int(min(n_components, min(X.shape) - 1))
        if n_comp >= 1:
            solver = "arpack" if n_comp < min(X.shape) - 1 else "full"
            pca = PCA(n_components=n_comp, svd_solver=solver, random_state=seed)
            with limit_threads(1):  # ARPACK's many small BLAS calls: see limit_threads
                out[:, :n_comp] = pca.fit_transform(X)
        blocks[name] = out
    adata = embedding_adata(graphs, blocks, "pca")
    adata.uns["baseline"] = {"n_components": n_components, "seed": seed}
    adata.uns["seconds"] = round(time.perf_counter() - start, 3)
    return adata


# --------------------------------------------------------------------- GAE
def gae_embedding(
    graphs: Mapping[str, Any],
    epochs: int = GAE_EPOCHS,
    seed: int = 0,
    device: str = "cpu",
    lr: float = 1e-3,
    edges_per_step: int = 10_000,
    threads: int | None = 1,
) -> ad.AnnData:
    """Graph autoencoder baseline: torch-geometric ``GAE`` with GCN layers, 32-d.

    Encoder as the reference: per dataset ``GCNConv(n_cells -> 128) + Mish``, then shared
    ``GCNConv(128 -> 64) + Mish -> GCNConv(64 -> 32)``; inner-product decoder. Trained
    jointly (one Adam step per epoch on the summed loss of all datasets), Adam ``lr`` 1e-3.
    ``uns['baseline']['loss']`` keeps the mean loss per dataset of each epoch.

    ``threads``: torch CPU threads and BLAS/OpenMP pools during the call (restored
    afterwards; ``None`` leaves them alone). One by default: with two threads, a second busy process on a
    two-core machine makes every small op wait on the other thread (eight real graphs,
    100 epochs: 67 s with two threads against 17 s with one while another job ran).

    Differences from the reference, each deliberate:

    * loss: BCE-with-logits on the inner products z_i·z_j (the reference applies a second
      sigmoid before BCE-with-logits, which flattens its gradients);
    * per epoch and dataset, ``edges_per_step`` graph edges (all if fewer) and as many
      random non-edges, sampled with the seed, instead of the dense n x n matrix: the
      dense BCE costs about 0.2 s per 1000-gene graph per step on two cores;
    * ``epochs`` defaults to :data:`GAE_EPOCHS` = 100 (reference: 2000 at lr 1e-4), about
      11 s for the eight real graphs on two CPU cores (150 epochs: 16 s). On those graphs
      the edge AUC hardly moves with training (0.84 untrained, 0.83-0.84 at 60-150
      epochs): Â-smoothing alone makes neighbours similar;
    * the first layer's propagation of the constant input, Â X, is computed once; the layer
      is then ``lin(ÂX) + bias`` with the ``GCNConv``'s own weights, which equals
      ``GCNConv(X, Â)`` exactly (propagation is linear) and saves a 128-wide sparse
      product per dataset per step.
    """
    import torch

    from ..device import resolve_device
    from .gae import encode_all, gae_graph, make_gae, train_gae

    _check_graphs(graphs)
    device = resolve_device(device)
    start = time.perf_counter()
    names = list(graphs)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        with limit_threads(threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            data = [gae_graph(graphs[name], device) for name in names]
            model = make_gae([int(np.asarray(graphs[n].features).shape[1]) for n in names], device)
            losses = train_gae(model, data, epochs, lr, edges_per_step, generator, device)
            blocks = dict(zip(names, encode_all(model, data), strict=True))
    finally:
        torch.set_num_threads(previous_threads)
    adata = embedding_adata(graphs, blocks, "gae")
    adata.uns["baseline"] = {
        "epochs": int(epochs),
        "seed": seed,
        "lr": lr,
        "device": device,
        "loss": np.asarray(losses, dtype=np.float32),
    }
    adata.uns["seconds"] = round(time.perf_counter() - start, 3)
    return adata


# ------------------------------------------------------------------ random
def random_embedding(graphs: Mapping[str, Any], dim: int = 32, seed: int = 0) -> ad.AnnData:
    """Independent standard normal rows (``numpy.random.default_rng(seed)``, graph order)."""
    _check_graphs(graphs)
    rng = np.random.default_rng(seed)
    blocks = {
        name: rng.standard_normal((len(graph.genes), dim)).astype(np.float32)
        for name, graph in graphs.items()
    }
    adata = embedding_adata(graphs, blocks, "random")
    adata.uns["baseline"] = {"dim": dim, "seed": seed}
    return adata
