"""Regression: a run trained at a Leiden resolution the explore pages once refused (20)
opened on none of them. One range now holds everywhere, and a run's own resolution is read
from its clusters (scanpy's uns['leiden']['params'])."""

from __future__ import annotations

import json

import pytest

from musegnn_core.analysis.clusters import cluster_embedding
from musegnn_core.runs import get_run
from musegnn_core.settings import LEIDEN_RESOLUTION_RANGE, make_config
from musegnn_core.workspace import Workspace
from tests.factories import open_app_page

# Every page inside app.py's frame (which draws the run picker), as the server runs it.
pytestmark = pytest.mark.usefixtures("app_frame")

EXPLORE_PAGES = (
    "pages/3_Embedding.py",
    "pages/4_Clusters.py",
    "pages/5_Enrichment.py",
    "pages/6_Coexpression.py",
    "pages/7_Benchmark.py",
)


def test_training_accepts_the_range_the_explore_pages_accept():
    low, high = LEIDEN_RESOLUTION_RANGE
    assert make_config("quick", leiden_resolution=20).leiden_resolution == 20
    assert make_config("quick", leiden_resolution=high).leiden_resolution == high
    assert make_config("quick", leiden_resolution=low).leiden_resolution == low


@pytest.fixture
def run_at_20(trained_sim_workspace, monkeypatch):
    """Run "r" as if trained with resolution 20: its settings and its own clusters."""
    ws = Workspace.open(trained_sim_workspace, create=False)
    run = get_run(ws, "r")
    config = run.config()
    config["train"]["leiden_resolution"] = 20.0
    run.config_path.write_text(json.dumps(config))
    embedding = run.embedding()
    cluster_embedding(embedding, resolution=20.0, seed=0)
    embedding.write_h5ad(run.embeddings_path)
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    return run


def test_a_run_trained_at_resolution_20_opens_on_every_explore_page(run_at_20):
    assert run_at_20.trained_resolution() == 20.0
    for page in EXPLORE_PAGES:
        at = open_app_page(page)
        errors = [e.value for e in at.error]
        assert not errors, (page, errors)
        assert not any("Resolution must be between" in w.value for w in at.warning), page
        assert at.sidebar.selectbox(key="run_picker").value == "r", page
        assert at.query_params["run"] == "r" and float(at.query_params["res"]) == 20.0, page
