"""Which torch device a computation runs on (graph building, training, baselines)."""

from __future__ import annotations

from .errors import ValidationError


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is available, else ``"cpu"``; a clear error when
    ``"cuda"`` is asked for without a GPU. Imports torch only when called."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValidationError("CUDA was requested but no GPU is available; use --device cpu.")
    return device
