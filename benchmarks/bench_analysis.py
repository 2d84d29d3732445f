"""Benchmark: the analysis of a trained run on the shared atlas.

Times ``evaluate`` (MuSe-GNN and all baselines, Hallmark and GO BP), one enrichment call,
clustering at a new resolution (first and cached), and co-expression subgraphs of a gene and
of a cluster, then prints the evaluation table. Trains a quick-preset run first when the
workspace has none.

    .venv/bin/python benchmarks/bench_analysis.py [--workspace WS] [--run RUN]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musegnn_core.analysis.clusters import cluster_genes, run_clustering
from musegnn_core.analysis.enrich import enrich_libraries, run_background
from musegnn_core.analysis.evaluate import (
    default_gene_set_paths,
    evaluate_run,
    load_embedding,
    run_graphs,
)
from musegnn_core.analysis.subgraph import coexpression_subgraph
from musegnn_core.data.demo import fill_demo
from musegnn_core.paths import shared_data_dir
from musegnn_core.runs import get_run, list_runs
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace


def timed(label: str, action):
    start = time.perf_counter()
    result = action()
    print(f"{label:48s} {time.perf_counter() - start:8.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="a workspace with the shared atlas (default: new)")
    parser.add_argument("--run", help="run to analyse (default: the newest completed one)")
    args = parser.parse_args()
    if shared_data_dir() is None:
        sys.exit("The shared data (../shared/data or $MUSEGNN_SHARED_DATA) is not present.")
    root = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp()) / "ws"
    ws = Workspace.open(root)
    if not ws.datasets():
        fill_demo(ws)
    done = [r for r in list_runs(ws) if r.embeddings_path.exists()]
    if args.run:
        run = get_run(ws, args.run)
    elif done:
        run = done[0]
    else:
        run = timed("train (quick preset)", lambda: train(ws, make_config("quick")))
    print(f"run {run.name} in {ws.root}")

    table = timed("evaluate: MuSe-GNN + every baseline", lambda: evaluate_run(ws, run.name))
    embedding = load_embedding(run)
    graphs = run_graphs(ws, run)
    background = run_background(ws, run)
    labels = run_clustering(run, embedding).labels
    genes = cluster_genes(embedding, labels, "0")
    paths = default_gene_set_paths()
    timed(
        f"enrich cluster 0 ({len(genes)} genes), Hallmark + GO BP",
        lambda: enrich_libraries(genes, paths, background),
    )
    timed("enrich cluster 0, Hallmark only", lambda: enrich_libraries(genes, paths[:1], background))
    for resolution in (0.4, 0.4):
        timed(
            f"clusters at resolution {resolution}",
            lambda r=resolution: run_clustering(run, embedding, r),
        )
    gene = str(embedding.obs["gene"].value_counts().index[0])
    timed(f"subgraph of {gene}", lambda: coexpression_subgraph(graphs, [gene]))
    timed("subgraph of cluster 0", lambda: coexpression_subgraph(graphs, genes))
    print()
    print(table.round(3).to_string())
    print(f"common genes: {'; '.join(table.attrs['common_gene_rule'])}")


if __name__ == "__main__":
    main()
