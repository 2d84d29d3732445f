"""Benchmark: train MuSe-GNN on the eight shared atlas datasets.

Prints, per preset: graph building time, seconds per epoch, total time (UMAP and
clustering included), peak memory and the final loss terms. The ``paper`` preset's
2000 epochs take about an hour on a 2-core CPU, so by default it runs a few epochs and extrapolates.

    .venv/bin/python benchmarks/bench_train.py [--paper-epochs 3] [--device auto]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musegnn_core.data.importer import import_datasets
from musegnn_core.graphs.build import build_graphs
from musegnn_core.paths import shared_data_dir
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def measure(ws: Workspace, preset: str, epochs: int | None, device: str) -> dict:
    config = make_config(preset, epochs=epochs, device=device)
    phases: dict[str, float] = {}
    start = time.perf_counter()
    build_graphs(ws, config=config.graph)
    phases["graphs"] = time.perf_counter() - start

    marks = {}

    def on_event(event):
        marks.setdefault(event.phase, time.perf_counter())

    start = time.perf_counter()
    run = train(ws, config, run_name=f"bench-{preset}", callback=on_event)
    end = time.perf_counter()
    losses = run.losses()
    train_s = marks.get("embedding", end) - marks.get("training", start)
    return {
        "preset": preset,
        "epochs": config.epochs,
        "device": run.config()["device"],
        "graphs_s": phases["graphs"],
        "train_s": train_s,
        "s_per_epoch": float(losses["seconds"].median()),
        "embed_umap_leiden_s": end - marks.get("embedding", end),
        "total_s": end - start + phases["graphs"],
        "final": losses.iloc[-1][
            ["total", "reconstruction", "similarity", "contrastive"]
        ].to_dict(),
        "peak_gb": peak_rss_gb(),
        "run": run,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paper-epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    shared = shared_data_dir()
    if shared is None:
        print("No shared data folder: nothing to measure.")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        import_datasets(ws, sorted((shared / "atlas").glob("*.h5ad")))
        rows = [measure(ws, "quick", None, args.device)]
        if not args.skip_paper:
            rows.append(measure(ws, "paper", args.paper_epochs, args.device))
        for r in rows:
            print(f"\n[{r['preset']}] {r['epochs']} epochs on {r['device']}")
            print(
                f"  graphs {r['graphs_s']:.1f} s | training {r['train_s']:.1f} s "
                f"({r['s_per_epoch']:.2f} s/epoch) | embedding+UMAP+Leiden "
                f"{r['embed_umap_leiden_s']:.1f} s | total {r['total_s']:.1f} s"
            )
            print("  final losses: " + ", ".join(f"{k} {v:.4f}" for k, v in r["final"].items()))
            print(f"  peak resident memory so far: {r['peak_gb']:.2f} GB")
        if not args.skip_paper:
            paper = rows[-1]
            print(
                f"\npaper preset, 2000 epochs extrapolated: "
                f"{paper['s_per_epoch'] * 2000 / 3600:.1f} h on {paper['device']}"
            )
        print(
            f"quick preset total (graphs, training, UMAP, clustering): {rows[0]['total_s']:.0f} s;"
            " target < 300 s on the 2-core machine"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
