"""Shared fixtures. Tests needing ../shared/data are marked with ``requires_shared_data``."""

from __future__ import annotations

import pytest

from musegnn_core.paths import shared_data_dir
from musegnn_core.threads import configure_threads

# Before any test imports torch: passive OpenMP waiting and the usable cores' thread count,
# for this process and, through the environment, every child process the tests start.
configure_threads()

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


@pytest.fixture(scope="session")
def trained_sim_workspace_template(tmp_path_factory):
    """A workspace with the simulated atlas and one small trained run named ``r``.

    Built once per test session; tests that change it must use ``trained_sim_workspace``,
    which hands out a private copy.
    """
    from musegnn_core.data.demo import fill_demo
    from musegnn_core.graphs.build import GraphConfig
    from musegnn_core.train import make_config, train
    from musegnn_core.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("trained-template") / "ws")
    fill_demo(ws, prefer_simulated=True)
    config = make_config(
        "quick", epochs=20, graph=GraphConfig(n_genes=150, selection="shared", edges_per_gene=30)
    )
    train(ws, config, run_name="r")
    return ws.root


@pytest.fixture
def trained_sim_workspace(trained_sim_workspace_template, tmp_path):
    """A private copy of the trained simulated workspace (path to its root)."""
    import shutil

    target = tmp_path / "ws"
    shutil.copytree(trained_sim_workspace_template, target)
    return target


@pytest.fixture
def app_frame(monkeypatch):
    """AppTest runs every page inside app.py's frame, as a running server does.

    Our pages live in a folder named ``pages``, so Streamlit runs an app the old multipage
    way (a page's script alone, without app.py) until app.py's ``st.navigation`` turns that
    off: once per server, but on every AppTest run (it resets the switch before each run).
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    class FramedPagesManager(PagesManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "uses_pages_directory", PagesManager.uses_pages_directory)
    monkeypatch.setattr(app_test, "PagesManager", FramedPagesManager)
