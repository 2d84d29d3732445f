"""Model and loss hyper-parameters: defined in :mod:`musegnn_core.settings`, kept here too.

Reference values: 32-d hidden width per head, 4 heads in layer 1 and 2 in layer 2,
32-d gene embedding, an MLP decoder on the rows of ``z z^T``, layers 2-3 shared
within a modality x tissue group, ``lambda_S = 1``, ``lambda_C = 0.01``, NT-Xent
temperature 0.07, 100 genes sampled per contrastive step, neighbours drawn once.
"""

from __future__ import annotations

from ..settings import DECODERS, SHARES, SIMILARITY_NORMALISATIONS, ModelConfig, sharing_group

__all__ = ["DECODERS", "SHARES", "SIMILARITY_NORMALISATIONS", "ModelConfig", "sharing_group"]
