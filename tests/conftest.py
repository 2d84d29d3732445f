"""Shared fixtures. Tests needing ../shared/data are marked with ``requires_shared_data``."""

from __future__ import annotations

import pytest

from musegnn_core.paths import shared_data_dir

SHARED = shared_data_dir()

requires_shared_data = pytest.mark.skipif(
    SHARED is None, reason="shared real data (../shared/data or $MUSEGNN_SHARED_DATA) not present"
)


@pytest.fixture
def shared_data():
    """Path to the shared real-data folder; only use in tests marked ``requires_shared_data``."""
    assert SHARED is not None
    return SHARED


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP contention on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
