"""Benchmark: build the graphs of all eight shared atlas datasets.

Prints seconds per dataset and per stage (QC, HVG or SPARK-X, features, CS-CORE), graph
statistics, peak memory, and CS-CORE's speed against a plain NumPy implementation of the
same estimator on the same input. Run: ``.venv/bin/python benchmarks/bench_graphs.py``.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cscore_numpy_reference import cscore_numpy

from musegnn_core.graphs import qc
from musegnn_core.graphs.build import GraphConfig, build_graph
from musegnn_core.graphs.cscore import cscore
from musegnn_core.graphs.orthologs import default_ortholog_table_path
from musegnn_core.metadata import DatasetMeta
from musegnn_core.paths import shared_data_dir


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def time_cscore_pair(graph, adata, meta) -> tuple[float, float]:
    """Seconds of the torch and the NumPy CS-CORE on the graph's own genes and depths."""
    filtered, _ = qc.run_qc(adata, meta.modality, meta.species, qc.default_qc_config(meta.modality))
    columns = pd.Index(filtered.var_names).get_indexer(graph.original_genes)
    counts = filtered.X[:, columns].toarray().astype(np.float64)
    depth = filtered.obs["n_counts"].to_numpy(np.float64)
    return best_of(lambda: cscore(counts, depth, device="cpu")), best_of(
        lambda: cscore_numpy(counts, depth)
    )


def best_of(action, repeats: int = 3) -> float:
    """Fastest of a few runs after a warm-up: first-call set-up is not the estimator's cost."""
    action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    shared = shared_data_dir()
    if shared is None:
        print("No shared data folder (../shared/data or $MUSEGNN_SHARED_DATA): nothing to measure.")
        return 1
    config = GraphConfig()
    table = default_ortholog_table_path()
    rows, total_start = [], time.perf_counter()
    for path in sorted((shared / "atlas").glob("*.h5ad")):
        adata = ad.read_h5ad(path)
        meta = DatasetMeta(**{k: str(v) for k, v in adata.uns["dataset"].items()})
        start = time.perf_counter()
        graph = build_graph(adata, meta, config, table)
        seconds = time.perf_counter() - start
        t = graph.info["timings"]
        torch_s, numpy_s = time_cscore_pair(graph, adata, meta)
        rows.append(
            {
                "dataset": meta.name,
                "cells": graph.info["n_cells"],
                "genes": graph.n_genes,
                "edges": graph.info["n_edges"],
                "density": round(graph.info["density"], 3),
                "qc_s": t["qc"],
                "hvg_s": t.get("hvg", 0.0),
                "sparkx_s": t.get("sparkx", 0.0),
                "features_s": t["features"],
                "cscore_s": t["cscore"],
                "total_s": round(seconds, 3),
                "cscore_torch_s": round(torch_s, 3),
                "cscore_numpy_s": round(numpy_s, 3),
                "numpy/torch": round(numpy_s / torch_s, 2),
            }
        )
    total = time.perf_counter() - total_start
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(frame.to_string(index=False))
    build_total = frame["total_s"].sum()
    print(
        f"\nall eight graphs: {build_total:.1f} s of building "
        f"({total:.1f} s with the CS-CORE comparison runs); target < 120 s"
    )
    print(
        f"stages: QC {frame.qc_s.sum():.2f} s, HVG {frame.hvg_s.sum():.2f} s, "
        f"SPARK-X {frame.sparkx_s.sum():.2f} s, features {frame.features_s.sum():.2f} s, "
        f"CS-CORE {frame.cscore_s.sum():.2f} s"
    )
    print(
        f"CS-CORE NumPy/torch time ratio over all eight: "
        f"{frame.cscore_numpy_s.sum() / frame.cscore_torch_s.sum():.2f} (>= 1 means torch is "
        "at least as fast)"
    )
    print(f"peak resident memory: {peak_rss_gb():.2f} GB; target < 4 GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
