"""Graphs built by a process pool are the graphs one process builds."""

from __future__ import annotations

import numpy as np
import pytest

from musegnn_core.errors import ValidationError
from musegnn_core.graphs.pool import GB, memory_estimate, parse_workers, plan_pool
from musegnn_core.workspace import Workspace


def test_the_pool_never_plans_beyond_cores_tasks_or_memory(monkeypatch):
    monkeypatch.setattr("musegnn_core.graphs.pool.usable_cores", lambda: 8)
    three = [1 * GB, 2 * GB, 3 * GB]
    assert plan_pool(three, "auto", memory_limit_gb=100).workers == 3  # tasks
    assert plan_pool(three * 4, "auto", memory_limit_gb=100).workers == 8  # cores
    assert plan_pool(three * 4, 4, memory_limit_gb=100).workers == 4  # asked
    # The three largest (3 + 3 + 3 GB) do not fit in 8 GB; two of them do.
    plan = plan_pool(three * 4, "auto", memory_limit_gb=8)
    assert plan.workers == 2 and plan.threads == 4 and plan.memory_limit == 8 * GB
    assert plan_pool(three, "auto", memory_limit_gb=2).workers == 1  # even one is over
    assert "memory limit 8.0 GB" in plan.describe()


def test_memory_estimate_grows_with_cells_and_genes():
    small = memory_estimate(1000, 20000, 1000, 10_000_000)
    assert memory_estimate(2000, 20000, 1000, 10_000_000) > small
    assert memory_estimate(1000, 20000, 2000, 10_000_000) > small
    # A dataset with fewer genes than asked for costs only its own.
    assert memory_estimate(1000, 500, 1000, 10_000_000) < small


@pytest.mark.parametrize("text", ["0", "-2", "many", ""])
def test_workers_is_auto_or_a_count(text):
    with pytest.raises(ValidationError, match="--workers takes 'auto'"):
        parse_workers(text)
    assert parse_workers("AUTO") == "auto" and parse_workers("3") == 3


def test_pool_builds_the_same_graphs_as_one_process(tmp_path):
    from musegnn_core.data.demo import fill_demo
    from musegnn_core.graphs.build import build_graphs, load_graph
    from musegnn_core.settings import make_config

    config = make_config("quick", n_genes=150).graph  # shared selection: both pool phases
    serial_ws = Workspace.open(tmp_path / "serial")
    _, names = fill_demo(serial_ws, prefer_simulated=True)
    names = names[:4]
    pooled_ws = Workspace.open(tmp_path / "pooled")
    fill_demo(pooled_ws, prefer_simulated=True)

    serial = build_graphs(serial_ws, names, config)
    pooled = build_graphs(pooled_ws, names, config, workers=2, memory_limit_gb=64)
    assert [s.fingerprint for s in serial] == [s.fingerprint for s in pooled]
    assert all(s.peak_memory_bytes > 0 and not s.cached for s in pooled)
    for s in serial:
        a, b = (
            load_graph(serial_ws, s.dataset, s.fingerprint),
            load_graph(pooled_ws, s.dataset, s.fingerprint),
        )
        assert a.genes == b.genes and a.original_genes == b.original_genes
        assert (a.adjacency != b.adjacency).nnz == 0
        np.testing.assert_array_equal(a.features, b.features)
    # Cached now: a second pooled call builds nothing.
    again = build_graphs(pooled_ws, names, config, workers=2, memory_limit_gb=64)
    assert all(s.cached for s in again)
