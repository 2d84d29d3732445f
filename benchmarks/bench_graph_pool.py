"""Benchmark: the eight shared atlas datasets' graphs built in one process and by the pool.

Imports ``../shared/data/atlas`` into two fresh workspaces, builds every graph (default
graph settings) serially in one, and with ``build_graphs(workers=...)`` in the other;
prints both wall times, each dataset's build seconds, the workers' peak memory against the
limit the pool states, and checks that the graphs are identical. Wall times on a shared
machine depend on its load: the load average is printed beside them.

Run: ``.venv/bin/python benchmarks/bench_graph_pool.py [--workers auto|N] [--memory-limit-gb X]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musegnn_core.threads import configure_threads

configure_threads()

import numpy as np  # noqa: E402

from musegnn_core.data.demo import fill_demo  # noqa: E402
from musegnn_core.graphs.build import GraphConfig, build_graphs, load_graph  # noqa: E402
from musegnn_core.graphs.pool import GB, parse_workers  # noqa: E402
from musegnn_core.paths import shared_data_dir  # noqa: E402
from musegnn_core.workspace import Workspace  # noqa: E402


def load_text() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed_build(workspace: Workspace, config: GraphConfig, **pool) -> tuple[float, list]:
    start = time.perf_counter()
    summaries = build_graphs(workspace, None, config, **pool)
    return time.perf_counter() - start, summaries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--memory-limit-gb", type=float)
    args = parser.parse_args()
    if shared_data_dir() is None:
        print("No shared data folder (../shared/data or $MUSEGNN_SHARED_DATA): nothing to measure.")
        return 1
    config = GraphConfig()
    with tempfile.TemporaryDirectory() as tmp:
        serial_ws, pooled_ws = Workspace.open(Path(tmp) / "a"), Workspace.open(Path(tmp) / "b")
        fill_demo(serial_ws)
        fill_demo(pooled_ws)
        names = serial_ws.dataset_names()
        print(f"{len(names)} datasets; usable cores {len(os.sched_getaffinity(0))}")
        print(f"load average before: {load_text()}")
        serial_s, serial = timed_build(serial_ws, config)
        print(f"serial: {serial_s:.1f} s (load average after: {load_text()})")
        from musegnn_core.graphs.build import plan_graph_pool

        plan = plan_graph_pool(
            pooled_ws,
            [pooled_ws.dataset(n) for n in names],
            config,
            parse_workers(args.workers),
            args.memory_limit_gb,
        )
        print(f"pool plan: {plan.describe()}")
        pooled_s, pooled = timed_build(
            pooled_ws, config, workers=args.workers, memory_limit_gb=args.memory_limit_gb
        )
        print(f"pool:   {pooled_s:.1f} s (load average after: {load_text()})")
        print(f"speed-up {serial_s / pooled_s:.2f}x")
        print(f"{'dataset':45s} {'serial s':>9s} {'pool s':>7s} {'worker peak GB':>15s}")
        for a, b in zip(serial, pooled, strict=True):
            print(
                f"{a.dataset:45s} {a.seconds:9.1f} {b.seconds:7.1f} {b.peak_memory_bytes / GB:15.2f}"
            )
        peaks = sorted((s.peak_memory_bytes for s in pooled), reverse=True)
        worst = sum(peaks[: plan.workers])
        print(
            f"largest {plan.workers} worker peaks together: {worst / GB:.2f} GB "
            f"(limit {plan.memory_limit / GB:.1f} GB): {'within' if worst <= plan.memory_limit else 'OVER'}"
        )
        same = True
        for s in serial:
            x = load_graph(serial_ws, s.dataset, s.fingerprint)
            y = load_graph(pooled_ws, s.dataset, s.fingerprint)
            same &= x.genes == y.genes and (x.adjacency != y.adjacency).nnz == 0
            same &= bool(np.array_equal(x.features, y.features))
        print(f"graphs identical to the serial build: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
