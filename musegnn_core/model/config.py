"""Model and loss hyper-parameters (defaults: the MuSe-GNN reference code).

Reference values: 32-d hidden width per head, 4 heads in layer 1 and 2 in layer 2,
32-d gene embedding, an MLP decoder on the rows of ``z z^T``, layers 2-3 shared
within a modality x tissue group, ``lambda_S = 1``, ``lambda_C = 0.01``, NT-Xent
temperature 0.07, 100 genes sampled per contrastive step, neighbours drawn once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ValidationError

DECODERS = ("mlp", "inner")
SIMILARITY_NORMALISATIONS = ("count", "weight")
SHARES = ("group", "global")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a positive integer, not {value!r}.")


def _non_negative_float(name: str, value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValidationError(f"{name} must be a finite number >= 0, not {value!r}.")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and loss settings of MuSe-GNN.

    ``hidden`` is the width of one attention head in layers 1 and 2 (layer 1 is
    ``hidden * heads1`` wide, layer 2 ``hidden * heads2``). ``decoder`` is ``"mlp"``
    (reference: an n -> n MLP on the rows of ``z z^T``, one per dataset) or
    ``"inner"`` (logits = ``z z^T``, no parameters). ``share`` is ``"group"``
    (layers 2-3 shared within a modality x tissue group, as the reference code) or
    ``"global"`` (one shared stack for all datasets).
    """

    hidden: int = 32
    heads1: int = 4
    heads2: int = 2
    embedding_dim: int = 32
    decoder: str = "mlp"
    share: str = "group"
    lambda_similarity: float = 1.0
    similarity_normalisation: str = "count"
    lambda_contrastive: float = 0.01
    temperature: float = 0.07
    contrastive_samples: int = 100
    resample_neighbours: bool = False

    def __post_init__(self) -> None:
        for name in ("hidden", "heads1", "heads2", "embedding_dim", "contrastive_samples"):
            _positive_int(name, getattr(self, name))
        if self.decoder not in DECODERS:
            raise ValidationError(f"decoder must be one of {DECODERS}, not {self.decoder!r}.")
        if self.similarity_normalisation not in SIMILARITY_NORMALISATIONS:
            raise ValidationError(
                "similarity_normalisation must be 'count' (reference) or 'weight', not "
                f"{self.similarity_normalisation!r}."
            )
        if self.share not in SHARES:
            raise ValidationError(f"share must be one of {SHARES}, not {self.share!r}.")
        _non_negative_float("lambda_similarity", self.lambda_similarity)
        _non_negative_float("lambda_contrastive", self.lambda_contrastive)
        _non_negative_float("temperature", self.temperature)
        if self.temperature == 0:
            raise ValidationError("temperature must be > 0, not 0.")
        if not isinstance(self.resample_neighbours, bool):
            raise ValidationError(
                f"resample_neighbours must be True or False, not {self.resample_neighbours!r}."
            )


def sharing_group(tissue: str, modality: str, share: str = "group") -> str:
    """Key of the parameter-sharing group of a dataset.

    ``"global"`` puts every dataset in one group; ``"group"`` gives
    ``"{modality}_{tissue}"`` (the reference's technique x tissue key).
    """
    if share not in SHARES:
        raise ValidationError(f"share must be one of {SHARES}, not {share!r}.")
    if share == "global":
        return "global"
    return f"{modality}_{tissue}"
