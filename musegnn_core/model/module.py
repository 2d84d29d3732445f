"""The MuSe-GNN encoder/decoder stack as a pure torch module (no training loop, no I/O).

For dataset t in sharing group g (defaults in brackets)::

    h1 = Mish(GN_t(TConv_t(n_cells_t -> hidden, heads1)(x, A)))        # [128 wide] per dataset
    h2 = Mish(GN_g(TConv_g(hidden*heads1 -> hidden, heads2)(h1, A)))   # [64 wide] shared in g
    z  = TConv_g(hidden*heads2 -> d)(h2, A) + TConv'_g(hidden*heads1 -> d)(h1, A)  # [d = 32]
    logits = D_t(z z^T)          # MLP n_t -> n_t -> n_t -> n_t on rows, or z z^T itself,
                                 # or a_t cos(z_u, z_v) + b_t (learned scale and bias)

``TConv`` is PyG ``TransformerConv`` with its defaults (concat, root weight, no beta,
no dropout), computed by :class:`~.attention.AttentionConv`; ``GN`` is ``GraphNorm`` over
the whole graph. Layer 1, its norm and the decoder belong to the dataset; everything else
to its group. Parameter counts match the reference: layer 1 + norm = 512 C + 896 for C
cells, one group = 58,048.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch_geometric.nn import GraphNorm

from ..errors import ValidationError
from .attention import AttentionConv, AttentionGraph
from .config import ModelConfig


@dataclass
class DatasetSpec:
    """What the module needs to know about one dataset."""

    name: str
    n_cells: int
    n_genes: int
    group: str
    #: Each gene's position in the run's gene vocabulary (names matched across datasets);
    #: needed by ``shared_gene_vectors``.
    gene_ids: np.ndarray | None = None


class MLPEdgeDecoder(nn.Module):
    """Reference decoder: ``Linear(n,n)-Mish-Linear(n,n)-Mish-Linear(n,n)`` on rows of z z^T.

    Row u of the output holds the logits of gene u's n possible edges (not symmetrised).
    """

    def __init__(self, n_genes: int) -> None:
        super().__init__()
        self.n_genes = n_genes
        self.mlp = nn.Sequential(
            nn.Linear(n_genes, n_genes),
            nn.Mish(),
            nn.Linear(n_genes, n_genes),
            nn.Mish(),
            nn.Linear(n_genes, n_genes),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(z @ z.T)


class InnerProductDecoder(nn.Module):
    """Parameter-free decoder: logits = z z^T."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ z.T

    def edge_logits(self, z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Logits of the gene pairs ``pairs`` (2 x P): ``<z_u, z_v>`` (index_select: a
        deterministic backward on a CPU with several threads)."""
        return (z.index_select(0, pairs[0]) * z.index_select(0, pairs[1])).sum(dim=1)


class CosineEdgeDecoder(nn.Module):
    """Logits = ``scale * cos(z_u, z_v) + bias`` with a learned scale and bias per dataset.

    A bias-free inner product cannot make most of n genes' pairwise scores negative in
    32 dimensions, so on a sparse graph it predicts "edge" for most non-edges. The bias
    sets the graph's base rate; the scale lets the cosine range [-1, 1] span confident
    logits. Both are per dataset because densities differ between graphs.
    """

    def __init__(self, scale: float = 10.0, bias: float = -5.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(scale))))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = nn.functional.normalize(z, dim=1, eps=1e-8)
        return self.log_scale.exp() * (u @ u.T) + self.bias

    def edge_logits(self, z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Logits of the gene pairs ``pairs`` (2 x P)."""
        # Normalised once per gene, not once per pair: a graph has 20-40 times more
        # scored pairs than genes. index_select, not u[pairs]: its backward (index_add)
        # is deterministic on a CPU with several threads; advanced indexing's is not.
        u = nn.functional.normalize(z, dim=1, eps=1e-8)
        cos = (u.index_select(0, pairs[0]) * u.index_select(0, pairs[1])).sum(dim=1)
        return self.log_scale.exp() * cos + self.bias


#: Shared gene vectors start small beside layer 1's normalised output (unit scale), so the
#: cell features lead at first and the vectors grow only where graphs agree.
GENE_VECTOR_INIT_STD = 0.1


class _DatasetLayers(nn.Module):
    def __init__(self, n_cells: int, n_genes: int, config: ModelConfig) -> None:
        super().__init__()
        width = config.hidden * config.heads1
        self.conv = AttentionConv(n_cells, config.hidden, heads=config.heads1)
        self.norm = GraphNorm(width)
        if config.decoder == "mlp":
            self.decoder = MLPEdgeDecoder(n_genes)
        elif config.decoder == "cosine":
            self.decoder = CosineEdgeDecoder()
        else:
            self.decoder = InnerProductDecoder()


class _GroupLayers(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width1 = config.hidden * config.heads1
        width2 = config.hidden * config.heads2
        self.conv = AttentionConv(width1, config.hidden, heads=config.heads2)
        self.norm = GraphNorm(width2)
        self.out = AttentionConv(width2, config.embedding_dim, heads=1)
        self.residual = AttentionConv(width1, config.embedding_dim, heads=1)


def _safe_keys(names: list[str], prefix: str) -> dict[str, str]:
    """Distinct ModuleDict keys (no dots, never empty, never an attribute name)."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        if name in keys:
            continue
        base = f"{prefix}_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        key, k = base, 1
        while key in used:
            key, k = f"{base}_{k}", k + 1
        used.add(key)
        keys[name] = key
    return keys


class MuSeGNNModule(nn.Module):
    """Per-dataset first layers and decoders, per-group shared layers 2-3.

    Datasets are addressed by their position ``i`` in ``specs``.
    """

    def __init__(self, specs: list[DatasetSpec], config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or ModelConfig()
        if not specs:
            raise ValidationError("The model needs at least one dataset.")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValidationError("Dataset names must be unique.")
        for s in specs:
            if s.n_cells < 1 or s.n_genes < 1:
                raise ValidationError(
                    f"Dataset {s.name!r} needs at least one cell and one gene "
                    f"(has {s.n_cells} cells, {s.n_genes} genes)."
                )
        self.config = config
        self.specs = list(specs)
        groups = [s.group if config.share == "group" else "global" for s in specs]
        self._groups = groups
        dataset_keys = _safe_keys(names, "d")
        group_keys = _safe_keys(list(dict.fromkeys(groups)), "g")
        self._dataset_key = [dataset_keys[n] for n in names]
        self._group_key = [group_keys[g] for g in groups]
        self.datasets = nn.ModuleDict(
            {dataset_keys[s.name]: _DatasetLayers(s.n_cells, s.n_genes, config) for s in specs}
        )
        self.groups = nn.ModuleDict({key: _GroupLayers(config) for key in group_keys.values()})
        self.act = nn.Mish()
        self.gene_vectors = None
        if config.shared_gene_vectors:
            if any(s.gene_ids is None or len(s.gene_ids) != s.n_genes for s in specs):
                raise ValidationError("Shared gene vectors need every dataset's gene ids.")
            n_vocabulary = 1 + max(int(np.max(s.gene_ids, initial=-1)) for s in specs)
            self.gene_vectors = nn.Embedding(n_vocabulary, config.hidden * config.heads1)
            nn.init.normal_(self.gene_vectors.weight, std=GENE_VECTOR_INIT_STD)
            for key, s in zip(self._dataset_key, specs, strict=True):
                self.register_buffer(
                    f"ids_{key}", torch.as_tensor(s.gene_ids, dtype=torch.long), persistent=False
                )

    def __len__(self) -> int:
        return len(self.specs)

    def group_of(self, i: int) -> str:
        """The sharing group of dataset ``i`` (``"global"`` when ``share="global"``)."""
        return self._groups[i]

    def dataset_module(self, i: int) -> nn.Module:
        return self.datasets[self._dataset_key[i]]

    def group_module(self, i: int) -> nn.Module:
        return self.groups[self._group_key[i]]

    def encode(
        self, i: int, x: torch.Tensor, edge_index: torch.Tensor | AttentionGraph
    ) -> torch.Tensor:
        """Gene embeddings (n_i x embedding_dim) of dataset ``i`` from its features and edges
        (a ``2 x E`` edge list, or the :class:`AttentionGraph` prepared from it)."""
        spec = self.specs[i]
        if x.dim() != 2 or x.shape != (spec.n_genes, spec.n_cells):
            raise ValueError(
                f"Dataset {spec.name!r} expects features of shape "
                f"({spec.n_genes}, {spec.n_cells}), got {tuple(x.shape)}"
            )
        if not isinstance(edge_index, AttentionGraph):
            edge_index = AttentionGraph.from_edge_index(edge_index, spec.n_genes)
        d = self.dataset_module(i)
        g = self.group_module(i)
        h1 = self.act(d.norm(d.conv(x, edge_index)))
        if self.gene_vectors is not None:
            h1 = h1 + self.gene_vectors(getattr(self, f"ids_{self._dataset_key[i]}"))
        h2 = self.act(g.norm(g.conv(h1, edge_index)))
        return g.out(h2, edge_index) + g.residual(h1, edge_index)

    def decode(self, i: int, z: torch.Tensor) -> torch.Tensor:
        """Edge logits (n_i x n_i) of dataset ``i``."""
        return self.dataset_module(i).decoder(z)

    def decode_pairs(self, i: int, z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Edge logits of the gene pairs ``pairs`` (2 x P) of dataset ``i``.

        Only for the pairwise decoders (``inner``, ``cosine``); the reference MLP decoder
        maps whole rows of ``z z^T`` and has no per-pair form.
        """
        decoder = self.dataset_module(i).decoder
        if not hasattr(decoder, "edge_logits"):
            raise ValidationError("The MLP decoder scores whole rows; use dense reconstruction.")
        return decoder.edge_logits(z, pairs)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Layer-1 convs and norms of every dataset, then every group's shared layers."""
        for d in self.datasets.values():
            yield from d.conv.parameters()
            yield from d.norm.parameters()
        if self.gene_vectors is not None:
            yield from self.gene_vectors.parameters()
        yield from self.groups.parameters()

    def dataset_encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Layer-1 parameters only (the reference's first optimiser)."""
        for d in self.datasets.values():
            yield from d.conv.parameters()
            yield from d.norm.parameters()

    def group_parameters(self) -> Iterator[nn.Parameter]:
        """Shared-layer parameters only (the reference's second optimiser)."""
        yield from self.groups.parameters()

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Decoder parameters (empty with ``decoder="inner"``)."""
        for d in self.datasets.values():
            yield from d.decoder.parameters()


def edge_index_from_adjacency(adjacency) -> torch.Tensor:
    """``2 x E`` long tensor of the nonzeros of a (sparse or dense) adjacency, self-loops kept."""
    coo = sp.coo_matrix(adjacency)
    keep = coo.data != 0
    rows = coo.row[keep].astype(np.int64)
    cols = coo.col[keep].astype(np.int64)
    return torch.from_numpy(np.stack([rows, cols]))


def dense_target(adjacency) -> torch.Tensor:
    """Dense float32 0/1 reconstruction target of a (sparse or dense) adjacency."""
    a = adjacency.toarray() if sp.issparse(adjacency) else np.asarray(adjacency)
    return torch.from_numpy((a != 0).astype(np.float32))


def undirected_edges(adjacency) -> torch.Tensor:
    """``2 x E`` long tensor with each undirected edge once (``u < v``), self-loops left out."""
    coo = sp.triu(sp.coo_matrix(adjacency) + sp.coo_matrix(adjacency).T, k=1).tocoo()
    keep = coo.data != 0
    return torch.from_numpy(np.stack([coo.row[keep], coo.col[keep]]).astype(np.int64))
