"""The graph-autoencoder baseline's torch module (see :func:`baselines.gae_embedding`).

Imports torch and torch-geometric at module level, so :mod:`musegnn_core.analysis.baselines`
imports this module only when the GAE baseline runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

with warnings.catch_warnings():  # torch.jit deprecation noise from the import
    warnings.simplefilter("ignore", DeprecationWarning)
    from torch_geometric.nn import GAE, GCNConv


def normalised_adjacency(adjacency) -> sp.csr_matrix:
    """D^-1/2 (A + I) D^-1/2 as GCNConv's ``gcn_norm`` builds it (binary, self-loops kept)."""
    A = sp.csr_matrix(adjacency, dtype=np.float32, copy=True)
    A.data[:] = 1.0
    A = A.maximum(A.T).tolil()
    A.setdiag(1.0)
    A = sp.csr_matrix(A, dtype=np.float32)
    degree = np.asarray(A.sum(axis=1)).ravel()
    scale = sp.diags((1.0 / np.sqrt(degree)).astype(np.float32))
    return sp.csr_matrix(scale @ A @ scale, dtype=np.float32)


class SymmetricSpmm(torch.autograd.Function):
    """Â @ h for a symmetric sparse Â: the backward pass reuses Â (no transpose)."""

    @staticmethod
    def forward(ctx, adj, h):
        ctx.save_for_backward(adj)
        return torch.sparse.mm(adj, h)

    @staticmethod
    def backward(ctx, grad):
        (adj,) = ctx.saved_tensors
        return None, torch.sparse.mm(adj, grad)


class SymmetricGCNConv(GCNConv):
    """``GCNConv`` on a pre-normalised symmetric sparse Â (see :class:`SymmetricSpmm`)."""

    def message_and_aggregate(self, adj_t, x):
        return SymmetricSpmm.apply(adj_t, x)


class GAEEncoder(torch.nn.Module):
    """Per dataset ``GCNConv(n_cells -> 128) + Mish``, then shared ``GCNConv(128 -> 64) +
    Mish -> GCNConv(64 -> 32)``, as the reference.

    The first layer's propagation of the constant input, Â X, is computed once by the
    caller; the layer is then ``lin(ÂX) + bias`` with the ``GCNConv``'s own weights, which
    equals ``GCNConv(X, Â)`` exactly (propagation is linear).
    """

    def __init__(self, in_channels: list[int]):
        super().__init__()
        self.first = torch.nn.ModuleList(GCNConv(c, 128, normalize=False) for c in in_channels)
        self.second = SymmetricGCNConv(128, 64, normalize=False)
        self.third = SymmetricGCNConv(64, 32, normalize=False)
        self.act = torch.nn.Mish()

    def forward(self, index: int, propagated_x, adj):
        first = self.first[index]
        h = self.act(first.lin(propagated_x) + first.bias)
        h = self.act(self.second(h, adj))
        return self.third(h, adj)


@dataclass
class GAEGraph:
    """One dataset's graph as the GAE uses it."""

    propagated: torch.Tensor  # Â X, genes x cells, on the device
    adj: torch.Tensor  # Â as a sparse CSR tensor, on the device
    edges: torch.Tensor  # upper-triangle edges, 2 x m (CPU)
    dense: torch.Tensor  # A != 0, n x n bool (CPU), to draw non-edges


def gae_graph(graph, device: str) -> GAEGraph:
    norm = normalised_adjacency(graph.adjacency)
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
    edges = torch.from_numpy(np.vstack([upper.row[keep], upper.col[keep]]).astype(np.int64))
    dense = torch.from_numpy(np.asarray(sp.csr_matrix(graph.adjacency).toarray() != 0))
    return GAEGraph(propagated.to(device), adj.to(device), edges, dense)


def make_gae(in_channels: list[int], device: str) -> GAE:
    return GAE(GAEEncoder(in_channels)).to(device)


def sampled_logits(
    model: GAE,
    index: int,
    graph: GAEGraph,
    edges_per_step: int,
    generator: torch.Generator,
    device: str,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Logits and targets of ``edges_per_step`` edges (all if fewer) and as many random
    non-edges of one graph; None when it has no edge to learn from."""
    n = graph.dense.shape[0]
    if graph.edges.shape[1] == 0 or n < 2:
        return None
    m = min(graph.edges.shape[1], edges_per_step)
    pick = torch.randperm(graph.edges.shape[1], generator=generator)[:m]
    pos = graph.edges[:, pick]
    candidates = torch.randint(0, n, (2, 2 * m), generator=generator)
    free = ~graph.dense[candidates[0], candidates[1]] & (candidates[0] != candidates[1])
    neg = candidates[:, free][:, :m]
    z = model.encode(index, graph.propagated, graph.adj)
    logits = torch.cat(
        [
            model.decode(z, pos.to(device), sigmoid=False),
            model.decode(z, neg.to(device), sigmoid=False),
        ]
    )
    target = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])])
    return logits, target.to(device)


def train_gae(
    model: GAE,
    data: list[GAEGraph],
    epochs: int,
    lr: float,
    edges_per_step: int,
    generator: torch.Generator,
    device: str,
) -> list[float]:
    """One Adam step per epoch on the summed loss of all graphs; the mean loss per epoch."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    losses: list[float] = []
    for _ in range(int(epochs)):
        optimiser.zero_grad()
        total = 0.0
        for index, graph in enumerate(data):
            sampled = sampled_logits(model, index, graph, edges_per_step, generator, device)
            if sampled is not None:
                total = total + loss_fn(*sampled)
        if isinstance(total, float):  # no dataset has an edge: nothing to learn
            break
        total.backward()
        optimiser.step()
        losses.append(round(float(total.detach()) / len(data), 5))
    return losses


@torch.no_grad()
def encode_all(model: GAE, data: list[GAEGraph]) -> list[np.ndarray]:
    model.eval()
    return [
        model.encode(index, graph.propagated, graph.adj).cpu().numpy()
        for index, graph in enumerate(data)
    ]
