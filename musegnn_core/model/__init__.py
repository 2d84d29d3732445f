"""MuSe-GNN model: configuration, pair statistics, losses and the torch module."""

from .attention import AttentionConv, AttentionGraph
from .config import ModelConfig, sharing_group
from .losses import (
    contrastive_loss,
    nt_xent_loss,
    reconstruction_loss,
    total_loss,
    weighted_similarity_loss,
)
from .module import (
    CosineEdgeDecoder,
    DatasetSpec,
    InnerProductDecoder,
    MLPEdgeDecoder,
    MuSeGNNModule,
    dense_target,
    edge_index_from_adjacency,
)
from .pairs import PairStats, compute_all_pair_stats, compute_pair_stats, resample_neighbours

__all__ = [
    "AttentionConv",
    "AttentionGraph",
    "CosineEdgeDecoder",
    "DatasetSpec",
    "InnerProductDecoder",
    "MLPEdgeDecoder",
    "ModelConfig",
    "MuSeGNNModule",
    "PairStats",
    "compute_all_pair_stats",
    "compute_pair_stats",
    "contrastive_loss",
    "dense_target",
    "edge_index_from_adjacency",
    "nt_xent_loss",
    "reconstruction_loss",
    "resample_neighbours",
    "sharing_group",
    "total_loss",
    "weighted_similarity_loss",
]
