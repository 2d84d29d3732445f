"""Graph attention as the model uses it: PyG's ``TransformerConv``, computed faster.

Per head, target ``i`` attends over its incoming edges ``j -> i``::

    out_i = sum_j softmax_j(q_i . k_j / sqrt(C)) v_j + W_skip x_i

PyG computes this edge by edge: it gathers ``q_i``, ``k_j`` and ``v_j`` for every edge,
multiplies and scatters back, several passes over an ``edges x channels`` array in each
direction, which is most of a training epoch. On a CPU the same function is three sparse
matrix products per head (MKL's CSR kernels): the scores are the sampled product
``Q K^T`` at the edges, the output is ``A V`` with ``A`` the attention weights in the
graph's sparsity, and the backward pass is the same three products, two of them with the
transposed graph. A layer's forward and backward take about a third of PyG's time.

Elsewhere (a GPU, or half precision) the layer runs edge by edge as PyG does; both paths
are checked against ``TransformerConv`` itself in the tests.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.nn import TransformerConv


def _row_pointers(rows: torch.Tensor, n_nodes: int) -> torch.Tensor:
    pointers = torch.zeros(n_nodes + 1, dtype=torch.long, device=rows.device)
    pointers[1:] = torch.cumsum(torch.bincount(rows, minlength=n_nodes), 0)
    return pointers


@dataclass(frozen=True)
class AttentionGraph:
    """A graph's directed edges in the two layouts attention needs, prepared once.

    ``edge_index`` (sources in row 0, targets in row 1) is ordered by target, then
    source: the CSR layout of the matrix whose row ``i`` holds target ``i``'s incoming
    edges. ``by_source`` reorders per-edge values into the transposed layout.
    """

    edge_index: torch.Tensor
    n_nodes: int
    target_pointers: torch.Tensor
    source_pointers: torch.Tensor
    targets_by_source: torch.Tensor
    by_source: torch.Tensor

    @classmethod
    def from_edge_index(cls, edge_index: torch.Tensor, n_nodes: int) -> AttentionGraph:
        """From a ``2 x E`` edge list without repeated edges, in any order."""
        edge_index = edge_index[:, torch.argsort(edge_index[1] * n_nodes + edge_index[0])]
        source, target = edge_index[0], edge_index[1]
        by_source = torch.argsort(source * n_nodes + target)
        return cls(
            edge_index=edge_index.contiguous(),
            n_nodes=int(n_nodes),
            target_pointers=_row_pointers(target, n_nodes),
            source_pointers=_row_pointers(source, n_nodes),
            targets_by_source=target[by_source].contiguous(),
            by_source=by_source,
        )

    @property
    def n_edges(self) -> int:
        return self.edge_index.shape[1]

    def _csr(self, pointers, columns, values) -> torch.Tensor:
        with warnings.catch_warnings():  # "CSR support is in beta": measured and tested here
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                pointers, columns, values, (self.n_nodes, self.n_nodes), check_invariants=False
            )

    def by_target_matrix(self, values: torch.Tensor) -> torch.Tensor:
        """Sparse matrix with ``values`` (in edge order) at (target, source)."""
        return self._csr(self.target_pointers, self.edge_index[0], values.contiguous())

    def by_source_matrix(self, values: torch.Tensor) -> torch.Tensor:
        """Sparse matrix with ``values`` (in edge order) at (source, target)."""
        return self._csr(self.source_pointers, self.targets_by_source, values[self.by_source])

    def sampled_products(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """``left_i . right_j`` for every edge ``j -> i``, in edge order."""
        pattern = self.by_target_matrix(left.new_zeros(self.n_edges))
        return torch.sparse.sampled_addmm(pattern, left, right.T, beta=0.0).values()


def edge_softmax(scores: torch.Tensor, target: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Softmax of per-edge ``scores`` (E x heads) over each target's incoming edges.

    Shifted by each target's maximum, a constant per target through which no gradient
    flows (as PyG's ``softmax``).
    """
    heads = scores.shape[1]
    peak = scores.new_full((n_nodes, heads), float("-inf")).scatter_reduce(
        0, target.unsqueeze(1).expand_as(scores), scores.detach(), "amax"
    )
    weights = (scores - peak.index_select(0, target)).exp()
    total = weights.new_zeros(n_nodes, heads).index_add_(0, target, weights) + 1e-16
    return weights / total.index_select(0, target)


class SparseAttention(torch.autograd.Function):
    """Attention of queries, keys and values (each heads x n x C) over an
    :class:`AttentionGraph`, as sparse products forwards and backwards."""

    @staticmethod
    def forward(ctx, query, key, value, graph: AttentionGraph):
        scale = 1.0 / math.sqrt(query.shape[2])
        heads = range(query.shape[0])
        scores = torch.stack([graph.sampled_products(query[h], key[h]) for h in heads], 1)
        weights = edge_softmax(scores * scale, graph.edge_index[1], graph.n_nodes)
        out = torch.stack([graph.by_target_matrix(weights[:, h]) @ value[h] for h in heads])
        ctx.save_for_backward(query, key, value, weights)
        ctx.graph, ctx.scale = graph, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, weights = ctx.saved_tensors
        graph, scale = ctx.graph, ctx.scale
        heads = range(query.shape[0])
        grad_out = grad_out.contiguous()
        grad_weights = torch.stack(
            [graph.sampled_products(grad_out[h], value[h]) for h in heads], 1
        )
        grad_value = torch.stack(
            [graph.by_source_matrix(weights[:, h]) @ grad_out[h] for h in heads]
        )
        # Softmax backward: w * (g - sum over the target's edges of w * g).
        target = graph.edge_index[1]
        weighted = weights * grad_weights
        per_target = weighted.new_zeros(graph.n_nodes, weights.shape[1]).index_add_(
            0, target, weighted
        )
        grad_scores = (weighted - weights * per_target.index_select(0, target)) * scale
        grad_query = torch.stack(
            [graph.by_target_matrix(grad_scores[:, h]) @ key[h] for h in heads]
        )
        grad_key = torch.stack(
            [graph.by_source_matrix(grad_scores[:, h]) @ query[h] for h in heads]
        )
        return grad_query, grad_key, grad_value, None


def attention_by_edges(query, key, value, graph: AttentionGraph) -> torch.Tensor:
    """The same attention edge by edge (any device, any precision): n x heads x C."""
    source, target = graph.edge_index[0], graph.edge_index[1]
    n, heads, channels = query.shape
    scores = (query.index_select(0, target) * key.index_select(0, source)).sum(-1)
    weights = edge_softmax(scores / math.sqrt(channels), target, n)
    messages = value.index_select(0, source) * weights.unsqueeze(-1)
    return messages.new_zeros(n, heads, channels).index_add_(0, target, messages)


def uses_sparse_kernels(x: torch.Tensor) -> bool:
    """Sparse products where they were measured to pay: CPU, single or double precision."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


class AttentionConv(TransformerConv):
    """PyG's ``TransformerConv`` in the configuration the model uses (concatenated heads,
    root weight, no beta gate, no edge features, no dropout), computed faster.

    The same parameters under the same names (checkpoints load either way) and the same
    function; the four projections run as one matrix product, and the attention as sparse
    products on a CPU (:class:`SparseAttention`), edge by edge elsewhere.
    """

    def forward(self, x: torch.Tensor, graph: AttentionGraph | torch.Tensor) -> torch.Tensor:
        if not isinstance(graph, AttentionGraph):
            graph = AttentionGraph.from_edge_index(graph, x.shape[0])
        heads, channels = self.heads, self.out_channels
        projections = (self.lin_query, self.lin_key, self.lin_value, self.lin_skip)
        weight = torch.cat([p.weight for p in projections])
        bias = torch.cat([p.bias for p in projections])
        query, key, value, skip = nn.functional.linear(x, weight, bias).split(
            heads * channels, dim=1
        )
        n = x.shape[0]
        query, key, value = (t.reshape(n, heads, channels) for t in (query, key, value))
        if uses_sparse_kernels(x):
            per_head = (t.transpose(0, 1).contiguous() for t in (query, key, value))
            out = SparseAttention.apply(*per_head, graph).transpose(0, 1)
        else:
            out = attention_by_edges(query, key, value, graph)
        return out.reshape(n, heads * channels) + skip
