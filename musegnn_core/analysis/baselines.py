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
import warnings
from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

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
def _normalised_adjacency(adjacency) -> sp.csr_matrix:
    """D^-1/2 (A + I) D^-1/2 as GCNConv's ``gcn_norm`` builds it (binary, self-loops kept)."""
    A = sp.csr_matrix(adjacency, dtype=np.float32, copy=True)
    A.data[:] = 1.0
    A = A.maximum(A.T).tolil()
    A.setdiag(1.0)
    A = sp.csr_matrix(A, dtype=np.float32)
    degree = np.asarray(A.sum(axis=1)).ravel()
    scale = sp.diags((1.0 / np.sqrt(degree)).astype(np.float32))
    return sp.csr_matrix(scale @ A @ scale, dtype=np.float32)


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

    with warnings.catch_warnings():  # torch.jit deprecation noise from the import
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch_geometric.nn import GAE, GCNConv

    from ..graphs.build import resolve_device

    _check_graphs(graphs)
    device = resolve_device(device)
    start = time.perf_counter()
    names = list(graphs)

    class _SymmetricSpmm(torch.autograd.Function):
        """Â @ h for a symmetric sparse Â: the backward pass reuses Â (no transpose)."""

        @staticmethod
        def forward(ctx, adj, h):
            ctx.save_for_backward(adj)
            return torch.sparse.mm(adj, h)

        @staticmethod
        def backward(ctx, grad):
            (adj,) = ctx.saved_tensors
            return None, torch.sparse.mm(adj, grad)

    class _GCNConv(GCNConv):
        def message_and_aggregate(self, adj_t, x):
            return _SymmetricSpmm.apply(adj_t, x)

    class _Encoder(torch.nn.Module):
        def __init__(self, in_channels: list[int]):
            super().__init__()
            self.first = torch.nn.ModuleList(GCNConv(c, 128, normalize=False) for c in in_channels)
            self.second = _GCNConv(128, 64, normalize=False)
            self.third = _GCNConv(64, 32, normalize=False)
            self.act = torch.nn.Mish()

        def forward(self, index: int, propagated_x, adj):
            first = self.first[index]
            h = self.act(first.lin(propagated_x) + first.bias)
            h = self.act(self.second(h, adj))
            return self.third(h, adj)

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        with limit_threads(threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            data = []
            for name in names:
                graph = graphs[name]
                norm = _normalised_adjacency(graph.adjacency)
                features = np.asarray(graph.features, dtype=np.float32)
                propagated = torch.from_numpy(np.asarray(norm @ features, dtype=np.float32))
                with warnings.catch_warnings():  # "sparse CSR support is in beta"
                    warnings.simplefilter("ignore", UserWarning)
                    adj = torch.sparse_csr_tensor(
                        torch.from_numpy(norm.indptr.astype(np.int64)),
                        torch.from_numpy(norm.indices.astype(np.int64)),
                        torch.from_numpy(norm.data),
                        size=norm.shape,
                        check_invariants=False,
                    )
                upper = sp.triu(sp.csr_matrix(graph.adjacency), k=1).tocoo()
                keep = upper.data != 0
                edges = torch.from_numpy(
                    np.vstack([upper.row[keep], upper.col[keep]]).astype(np.int64)
                )
                dense = torch.from_numpy(np.asarray(sp.csr_matrix(graph.adjacency).toarray() != 0))
                data.append((propagated.to(device), adj.to(device), edges, dense))

            model = GAE(_Encoder([int(np.asarray(graphs[n].features).shape[1]) for n in names]))
            model = model.to(device)
            optimiser = torch.optim.Adam(model.parameters(), lr=lr)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            model.train()
            losses: list[float] = []
            for _ in range(int(epochs)):
                optimiser.zero_grad()
                total = 0.0
                for index, (propagated, adj, edges, dense) in enumerate(data):
                    n = dense.shape[0]
                    if edges.shape[1] == 0 or n < 2:
                        continue
                    m = min(edges.shape[1], edges_per_step)
                    pick = torch.randperm(edges.shape[1], generator=generator)[:m]
                    pos = edges[:, pick]
                    candidates = torch.randint(0, n, (2, 2 * m), generator=generator)
                    free = ~dense[candidates[0], candidates[1]] & (candidates[0] != candidates[1])
                    neg = candidates[:, free][:, :m]
                    z = model.encode(index, propagated, adj)
                    logits = torch.cat(
                        [
                            model.decode(z, pos.to(device), sigmoid=False),
                            model.decode(z, neg.to(device), sigmoid=False),
                        ]
                    )
                    target = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])])
                    total = total + loss_fn(logits, target.to(device))
                if isinstance(total, float):  # no dataset has an edge: nothing to learn
                    break
                total.backward()
                optimiser.step()
                losses.append(round(float(total.detach()) / len(data), 5))

            model.eval()
            blocks = {}
            with torch.no_grad():
                for index, (name, (propagated, adj, _, _)) in enumerate(
                    zip(names, data, strict=True)
                ):
                    blocks[name] = model.encode(index, propagated, adj).cpu().numpy()
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
