"""Benchmark: the quick preset's seconds per epoch alone and beside a CPU-bound neighbour.

A shared machine is never idle. OpenMP threads that spin while they wait turn one busy
neighbour into a many-fold slowdown; every training process therefore waits passively
and uses the cores it may run on (musegnn_core/threads.py). This script measures that:
it trains through the real command line (``python -m musegnn_core train``, which applies
the thread settings before torch loads), first alone, then while a neighbour process
burns one core in a Python loop, and prints both figures and their ratio (target: at
most 2.5). Graphs are built once beforehand, so only epochs are timed (median seconds
of the epochs after the first).

    .venv/bin/python benchmarks/bench_threads.py [--epochs 5] [--datasets a,b] [--simulated]
        [--threads N] [--wait-policy active]

``--wait-policy active`` reproduces the old behaviour (spinning threads) for comparison;
``--threads`` sets MUSEGNN_THREADS for the training. Run it on an otherwise idle machine:
other processes make both figures (and their ratio) meaningless.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from musegnn_core.threads import configure_threads  # noqa: E402  (no torch)

configure_threads()  # this process builds the graphs

from musegnn_core.data.demo import fill_demo  # noqa: E402
from musegnn_core.data.importer import import_datasets  # noqa: E402
from musegnn_core.graphs.build import build_graphs  # noqa: E402
from musegnn_core.paths import shared_data_dir  # noqa: E402
from musegnn_core.runs import get_run  # noqa: E402
from musegnn_core.settings import make_config  # noqa: E402
from musegnn_core.threads import THREAD_COUNT_ENVS, thread_settings  # noqa: E402
from musegnn_core.workspace import Workspace  # noqa: E402

NEIGHBOUR = "while True:\n    pass\n"


def prepare(ws: Workspace, simulated: bool, datasets: list[str] | None) -> list[str]:
    """Import the shared atlas (or the simulated one) and build the quick preset's graphs."""
    shared = shared_data_dir()
    if simulated or shared is None:
        fill_demo(ws, prefer_simulated=True)
    else:
        import_datasets(ws, sorted((shared / "atlas").glob("*.h5ad")))
    names = datasets or ws.dataset_names()
    start = time.perf_counter()
    build_graphs(ws, names, make_config("quick", device="cpu").graph)
    print(f"graphs of {len(names)} datasets: {time.perf_counter() - start:.1f} s", flush=True)
    return names


def training_environment(threads: int | None, wait_policy: str | None) -> dict[str, str]:
    """This environment without thread settings, so the training's own rules apply."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", *THREAD_COUNT_ENVS)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if threads:
        env["MUSEGNN_THREADS"] = str(threads)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy.upper()
    return env


def seconds_per_epoch(ws: Workspace, names, epochs: int, run_name: str, env) -> float:
    command = [sys.executable, "-m", "musegnn_core", "train", "-w", str(ws.root), "--preset"]
    command += ["quick", "--epochs", str(epochs), "--device", "cpu", "--run-name", run_name]
    command += ["--datasets", ",".join(names)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
    seconds = get_run(ws, run_name).losses()["seconds"].tolist()
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def beside_neighbour(measure):
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
    try:
        time.sleep(1.0)  # let it reach full speed
        return measure()
    finally:
        neighbour.kill()
        neighbour.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--datasets", help="comma-separated names (default: all)")
    parser.add_argument("--simulated", action="store_true", help="use the simulated atlas")
    parser.add_argument("--threads", type=int, help="MUSEGNN_THREADS for the training")
    parser.add_argument("--wait-policy", choices=("passive", "active"), help="force a policy")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    env = training_environment(args.threads, args.wait_policy)
    applied = thread_settings(env)
    print(
        f"usable cores {len(os.sched_getaffinity(0))}; training with "
        f"OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', applied.get('OMP_WAIT_POLICY'))}, "
        f"OMP_NUM_THREADS={applied.get('OMP_NUM_THREADS')}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        datasets = args.datasets.split(",") if args.datasets else None
        names = prepare(ws, args.simulated, datasets)
        alone = seconds_per_epoch(ws, names, args.epochs, "alone", env)
        print(f"alone:             {alone:.2f} s/epoch", flush=True)
        loaded = beside_neighbour(lambda: seconds_per_epoch(ws, names, args.epochs, "busy", env))
        print(f"beside neighbour:  {loaded:.2f} s/epoch", flush=True)
    ratio = loaded / alone
    print(f"ratio:             {ratio:.2f} (target <= 2.5: {'met' if ratio <= 2.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
