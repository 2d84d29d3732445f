"""Benchmark: the eight shared atlas datasets' graphs built in one process and by the pool.

Imports ``../shared/data/atlas`` into fresh workspaces and builds every graph (the quick
preset's graph settings unless ``--preset`` says otherwise) serially and with
``build_graphs(workers=...)``, back to back, ``--repeats`` times. Each build runs in a fresh
process of its own (imports done before the clock starts), so that one build's memory
and warm caches do not count for the next. Prints both wall times, each dataset's build
seconds, the pool's peak memory against the limit it states, and checks that the pool's
graphs are identical to the serial ones. Wall times on a shared machine depend on its
load: the load average is printed beside them.

Run: ``.venv/bin/python benchmarks/bench_graph_pool.py [--workers auto|N]
[--memory-limit-gb X] [--preset quick|paper|default] [--repeats N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musegnn_core.threads import configure_threads

configure_threads()

import numpy as np  # noqa: E402

from musegnn_core.data.demo import fill_demo  # noqa: E402
from musegnn_core.graphs.build import (  # noqa: E402
    GraphConfig,
    build_graphs,
    load_graph,
    plan_graph_pool,
)
from musegnn_core.graphs.pool import GB, parse_workers  # noqa: E402
from musegnn_core.paths import shared_data_dir  # noqa: E402
from musegnn_core.settings import PRESETS  # noqa: E402
from musegnn_core.workspace import Workspace  # noqa: E402


def load_text() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def graph_config(preset: str) -> GraphConfig:
    return GraphConfig() if preset == "default" else PRESETS[preset].graph


def build_once(args: argparse.Namespace) -> int:
    """One build in this process; prints its measurements as one JSON line."""
    workspace = Workspace(args.one)
    config = graph_config(args.preset)
    pool = {}
    plan = None
    if args.mode == "pool":
        pool = {"workers": args.workers, "memory_limit_gb": args.memory_limit_gb}
        names = workspace.dataset_names()
        plan = plan_graph_pool(
            workspace,
            [workspace.dataset(n) for n in names],
            config,
            parse_workers(args.workers),
            args.memory_limit_gb,
        )

    def cpu_seconds() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        helpers = resource.getrusage(resource.RUSAGE_CHILDREN)  # forked helpers, reaped
        return own.ru_utime + own.ru_stime + helpers.ru_utime + helpers.ru_stime

    cpu = cpu_seconds()
    start = time.perf_counter()
    summaries = build_graphs(workspace, None, config, **pool)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # Each task reports the peak of the process that computed it: this one's or a
    # helper's (a forked helper's resident pages include those it shares with this one).
    helper = max((s.peak_memory_bytes for s in summaries), default=0)
    out = {
        "seconds": seconds,
        "cpu": cpu,
        "datasets": {s.dataset: s.seconds for s in summaries},
        "fingerprints": {s.dataset: s.fingerprint for s in summaries},
        "own_peak": own,
        "helper_peak": helper,
    }
    if plan is not None:
        out["plan"] = plan.describe()
        out["workers"] = plan.workers
        out["in_threads"] = plan.in_threads
        out["limit"] = plan.memory_limit
    print(json.dumps(out))
    return 0


def run_one(root: Path, mode: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--one", str(root), "--mode", mode]
    command += ["--preset", args.preset, "--workers", str(args.workers)]
    if args.memory_limit_gb:
        command += ["--memory-limit-gb", str(args.memory_limit_gb)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_graphs(a: Workspace, b: Workspace, fingerprints: dict) -> bool:
    same = True
    for name, fingerprint in fingerprints.items():
        x, y = load_graph(a, name, fingerprint), load_graph(b, name, fingerprint)
        same &= x.genes == y.genes and (x.adjacency != y.adjacency).nnz == 0
        same &= bool(np.array_equal(x.features, y.features))
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--memory-limit-gb", type=float)
    parser.add_argument("--preset", choices=("default", *PRESETS), default="quick")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("serial", "pool"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return build_once(args)
    if shared_data_dir() is None:
        print("No shared data folder (../shared/data or $MUSEGNN_SHARED_DATA): nothing to measure.")
        return 1
    print(f"graph settings: {args.preset}; usable cores {len(os.sched_getaffinity(0))}")
    same, rows = True, []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            results = {}
            for mode in ("serial", "pool") if repeat % 2 == 0 else ("pool", "serial"):
                root = Path(tmp) / f"{mode}-{repeat}"
                fill_demo(Workspace.open(root))
                before = load_text()
                results[mode] = run_one(root, mode, args)
                results[mode]["load"] = f"{before} -> {load_text()}"
            serial, pooled = results["serial"], results["pool"]
            helpers = 0 if pooled["in_threads"] else pooled["workers"] - 1
            peak = pooled["own_peak"] + helpers * pooled["helper_peak"]
            rows.append((serial["seconds"], pooled["seconds"]))
            print(
                f"rep {repeat + 1}: serial {serial['seconds']:.1f} s (load {serial['load']}), "
                f"pool {pooled['seconds']:.1f} s (load {pooled['load']}): "
                f"speed-up {serial['seconds'] / pooled['seconds']:.2f}x"
            )
            print(
                f"  CPU seconds: serial {serial['cpu']:.1f}, pool {pooled['cpu']:.1f} "
                "(helper processes from a forkserver are not counted)"
            )
            print(f"  pool plan: {pooled['plan']}")
            print(
                f"  pool peak memory, all its processes together (at most): {peak / GB:.2f} GB "
                f"(this process {pooled['own_peak'] / GB:.2f} GB + "
                f"{helpers} helper process(es) x {pooled['helper_peak'] / GB:.2f} GB); "
                f"limit {pooled['limit'] / GB:.1f} GB: "
                f"{'within' if peak <= pooled['limit'] else 'OVER'}"
            )
            if repeat == 0:
                print(f"  {'dataset':45s} {'serial s':>9s} {'pool s':>7s}")
                for name, seconds in serial["datasets"].items():
                    print(f"  {name:45s} {seconds:9.1f} {pooled['datasets'][name]:7.1f}")
            same &= serial["fingerprints"] == pooled["fingerprints"] and same_graphs(
                Workspace(Path(tmp) / f"serial-{repeat}"),
                Workspace(Path(tmp) / f"pool-{repeat}"),
                serial["fingerprints"],
            )
    if len(rows) > 1:
        s, p = (sorted(x) for x in zip(*rows, strict=True))
        print(f"median of {len(rows)}: serial {s[len(s) // 2]:.1f} s, pool {p[len(p) // 2]:.1f} s")
    print(f"graphs identical to the serial build: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
