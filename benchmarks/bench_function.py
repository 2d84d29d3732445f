"""Benchmark: what the embedding knows about gene function, and what it costs.

Trains a preset end to end on the shared atlas (``--extra`` adds ``atlas-extra``: sixteen
datasets), printing the time split (graphs, training, embedding + UMAP + Leiden), peak
memory, then ``evaluate`` against every baseline on the same graphs: the gene-level table
(coherence within and unified per library, split by datasets holding both genes and by the
size of the smallest set a pair shares, and with every set weighing the same; edge AUC per
dataset, same-gene alignment) and the paper's six metrics.

    .venv/bin/python benchmarks/bench_function.py [--preset quick] [--epochs N] [--extra]
        [--workspace DIR] [--run NAME]   # an existing run is scored, not retrained
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from musegnn_core.analysis.evaluate import evaluate_run
from musegnn_core.data.importer import import_datasets
from musegnn_core.graphs.build import build_graphs
from musegnn_core.paths import shared_data_dir
from musegnn_core.runs import run_folder
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def fill(ws: Workspace, extra: bool) -> None:
    shared = shared_data_dir()
    if shared is None:
        sys.exit("error: the shared data folder (../shared/data) is not here.")
    folders = [shared / "atlas"] + ([shared / "atlas-extra"] if extra else [])
    existing = set(ws.dataset_names())
    files = [str(p) for f in folders for p in sorted(f.glob("*.h5ad")) if p.stem not in existing]
    if files:
        import_datasets(ws, files)


def train_timed(ws: Workspace, preset: str, epochs: int | None, name: str) -> dict:
    config = make_config(preset, epochs=epochs)
    start = time.perf_counter()
    build_graphs(ws, config=config.graph)
    graphs_s = time.perf_counter() - start
    marks: dict[str, float] = {}

    def on_event(event) -> None:
        marks.setdefault(event.phase, time.perf_counter())

    start = time.perf_counter()
    run = train(ws, config, run_name=name, callback=on_event)
    end = time.perf_counter()
    losses = run.losses()
    return {
        "graphs (s)": graphs_s,
        "training (s)": marks.get("embedding", end) - marks.get("training", start),
        "seconds per epoch (median)": float(losses["seconds"].median()),
        "embedding + UMAP + Leiden (s)": end - marks.get("embedding", end),
        "end to end (s)": graphs_s + end - start,
        "peak resident memory (GB)": peak_rss_gb(),
        "final losses": losses.iloc[-1][["reconstruction", "similarity", "contrastive"]]
        .round(4)
        .to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="/tmp/musegnn-bench-function")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--run", help="score this existing run instead of training")
    parser.add_argument("--extra", action="store_true", help="add the eight atlas-extra datasets")
    args = parser.parse_args()
    ws = Workspace.open(args.workspace)
    fill(ws, args.extra)
    name = args.run or f"bench-{args.preset}{'-16' if args.extra else ''}"
    if args.run is None or not run_folder(ws, name).embeddings_path.exists():
        cost = train_timed(ws, args.preset, args.epochs, name)
        print(f"== {args.preset} on {len(ws.dataset_names())} datasets, run {name}")
        for key, value in cost.items():
            print(f"{key:32s} {value if isinstance(value, dict) else round(value, 2)}")
    start = time.perf_counter()
    table = evaluate_run(ws, name)
    print(f"\nevaluate (all baselines): {time.perf_counter() - start:.1f} s")
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(3).to_string())


if __name__ == "__main__":
    main()
