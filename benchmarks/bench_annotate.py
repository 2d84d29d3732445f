"""Benchmark: naming the clusters of a run over the eight shared datasets, and its report.

Times :func:`musegnn_core.analysis.annotate.run_annotations` with Hallmark + GO BP (the
default libraries of a run on real data): computed from scratch (``recompute``), then the
cached re-read, then the self-contained HTML report. The run must exist (train one with
``python -m musegnn_core train --workspace WS --preset quick``); by default the newest
completed run of the workspace is used.

    .venv/bin/python benchmarks/bench_annotate.py --workspace WS [--run RUN] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musegnn_core.analysis.annotate import run_annotations
from musegnn_core.analysis.evaluate import default_gene_set_paths
from musegnn_core.report import write_report
from musegnn_core.runs import get_run, list_runs
from musegnn_core.workspace import Workspace


def seconds(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ws = Workspace.open(args.workspace, create=False)
    if args.run:
        run = get_run(ws, args.run)
    else:
        done = [r for r in list_runs(ws) if r.status().get("state") == "completed"]
        if not done:
            print("error: no completed run in this workspace; train one first", file=sys.stderr)
            return 2
        run = done[0]
    libraries = default_gene_set_paths()
    if not libraries:
        print("error: the shared Hallmark and GO BP libraries are not present", file=sys.stderr)
        return 2
    config = run.config()
    print(
        f"run {run.name}: {len(config.get('datasets', []))} datasets, libraries "
        f"{', '.join(p.name for p in libraries)}"
    )
    fresh = []
    for _ in range(args.repeat):
        took, result = seconds(lambda: run_annotations(ws, run, None, libraries, recompute=True))
        assert not result.cached
        fresh.append(took)
    cached = []
    for _ in range(10 * args.repeat):
        took, result = seconds(lambda: run_annotations(ws, run, None, libraries))
        assert result.cached
        cached.append(took)
    named = sum(c["labelled_by"] == "terms" for c in result.clusters)
    print(
        f"{len(result.clusters)} clusters, {named} named by a term, "
        f"{len(result.clusters) - named} by their hub genes"
    )
    print(
        f"annotate (computed)   median {statistics.median(fresh):6.2f} s  max {max(fresh):6.2f} s"
    )
    print(
        f"annotate (cached)     median {statistics.median(cached):6.3f} s  max {max(cached):6.3f} s"
    )
    with tempfile.TemporaryDirectory() as folder:
        took, path = seconds(lambda: write_report(ws, run.name, Path(folder) / "report.html"))
        size = path.stat().st_size / 2**20
    print(f"report                {took:6.2f} s  ({size:.1f} MB)")
    for record in result.clusters[:8]:
        print(f"  {record['cluster']:>3} {record['label']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
