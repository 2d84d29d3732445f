"""Graphs built by a process pool are the graphs one process builds."""

from __future__ import annotations

import os

import numpy as np
import pytest

from musegnn_core.errors import ValidationError
from musegnn_core.graphs.pool import (
    GB,
    PoolPlan,
    memory_estimate,
    parse_workers,
    plan_pool,
    task_runner,
    worker_context,
)
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


def _blas_and_torch_threads(pause: float = 0.0) -> tuple:
    """A task: the thread counts of the process that runs it."""
    import time

    import torch
    from threadpoolctl import threadpool_info

    time.sleep(pause)
    blas = sorted({d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"})
    return os.getpid(), tuple(blas), torch.get_num_threads()


def _fail_on(value: int) -> int:
    if value == 2:
        raise ValueError("task 2 fails")
    return value


def _started(index: int, pause: float) -> tuple[int, float]:
    import time

    start = time.monotonic()
    time.sleep(pause)
    return index, start


def test_every_worker_runs_its_share_of_the_threads_and_this_process_is_one():
    from concurrent.futures import ProcessPoolExecutor

    from musegnn_core.graphs.pool import _start_worker

    # A helper (its BLAS was loaded by the forkserver with every core's threads).
    with ProcessPoolExecutor(1, worker_context(), initializer=_start_worker, initargs=(1,)) as ex:
        pid, blas, torch_threads = ex.submit(_blas_and_torch_threads).result()
    assert pid != os.getpid() and blas in ((), (1,)) and torch_threads == 1
    # This process computes too, at its share while the pool runs, and gets its own back.
    # At one thread per worker the helpers are threads of this process.
    before = _blas_and_torch_threads()[1:]
    plan = PoolPlan(workers=2, threads=1, memory_limit=8 * GB, largest_estimate=0)
    assert plan.in_threads and "in this process" in plan.describe()
    assert not PoolPlan(workers=2, threads=2, memory_limit=GB, largest_estimate=0).in_threads
    with task_runner(plan) as run:
        results = [r for r, _, _ in run(_blas_and_torch_threads, [(0.3,)] * 4)]
    assert {pid for pid, _, _ in results} == {os.getpid()}
    assert all(blas in ((), (1,)) and torch_threads == 1 for _, blas, torch_threads in results)
    assert _blas_and_torch_threads()[1:] == before


def test_helpers_are_never_forked_from_the_calling_process():
    import multiprocessing

    method = worker_context().get_start_method()
    forkserver = "forkserver" in multiprocessing.get_all_start_methods()
    assert method == ("forkserver" if forkserver else "spawn")


def test_results_keep_the_order_the_largest_tasks_start_first_and_errors_reach_the_caller():
    plan = PoolPlan(workers=2, threads=1, memory_limit=8 * GB, largest_estimate=0)
    costs = [1, 5, 2, 9, 3]
    with task_runner(plan) as run:
        results = [r for r, _, _ in run(_started, [(i, 0.5) for i in range(5)], costs)]
    assert [index for index, _ in results] == list(range(5))
    starts = {index: start for index, start in results}
    # 9 and 5 are taken first, 2 and 1 last (a task handed to a helper starts a little
    # after it is taken, so the middle one may start with them).
    assert max(starts[3], starts[1]) < min(starts[2], starts[0])
    with pytest.raises(ValueError, match="task 2 fails"), task_runner(plan) as run:
        list(run(_fail_on, [(i,) for i in range(4)]))


@pytest.mark.parametrize("cores", [2, 4])  # 1 thread per worker: threads; 2: processes
def test_pool_builds_the_same_graphs_as_one_process(tmp_path, monkeypatch, cores):
    monkeypatch.setattr("musegnn_core.graphs.pool.usable_cores", lambda: cores)
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
