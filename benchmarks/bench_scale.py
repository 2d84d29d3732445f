"""Benchmark: training time and memory as the atlas grows, on 1 and several CPU processes.

For each atlas size (simulated datasets from :func:`musegnn_core.data.simulate.scaled_config`,
and with ``--real`` the sixteen datasets of ``../shared/data/atlas`` and ``atlas-extra``)
it builds the graphs once (the process pool), then trains the quick preset for a few epochs
with one process (``python -m musegnn_core train``) and with ``torchrun --nproc-per-node P
... --distributed``, each process given an equal share of the cores. It prints seconds per
epoch (median of the epochs after the first, from ``losses.csv``), the peak resident memory of
each training process (its ``VmHWM``, read while it runs) and the speed-up over one process.

Run on an idle machine (figures on a busy one say little; the load average is printed)::

    .venv/bin/python benchmarks/bench_scale.py                       # 8, 32, 64 x 1, 2
    .venv/bin/python benchmarks/bench_scale.py --sizes 8 --epochs 2  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from musegnn_core.threads import configure_threads, usable_cores  # noqa: E402

configure_threads()

import pandas as pd  # noqa: E402

from musegnn_core.data.importer import import_datasets  # noqa: E402
from musegnn_core.data.simulate import (  # noqa: E402
    scaled_config,
    simulate_atlas,
    write_simulated_atlas,
)
from musegnn_core.graphs.build import build_graphs  # noqa: E402
from musegnn_core.paths import shared_data_dir  # noqa: E402
from musegnn_core.settings import make_config  # noqa: E402
from musegnn_core.workspace import Workspace  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")


def peak_kb(pid: int) -> int:
    """``VmHWM`` (peak resident set) of a live process, in kB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def run_watched(command: list[str], env: dict, ranks_are_children: bool) -> tuple[int, list[int]]:
    """Run ``command``; return its exit code and each training process's peak memory (kB)."""
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peaks: dict[int, int] = {}
    while process.poll() is None:
        pids = children(process.pid) if ranks_are_children else [process.pid]
        for pid in pids:
            peaks[pid] = max(peaks.get(pid, 0), peak_kb(pid))
        time.sleep(0.25)
    if process.returncode != 0:
        print(process.stderr.read()[-2000:], file=sys.stderr)
    return process.returncode, sorted(peaks.values(), reverse=True)


def make_workspace(folder: Path, size: int | str, cells: int) -> Workspace:
    workspace = Workspace.open(folder)
    if size == "real":
        shared = shared_data_dir()
        files = sorted(
            str(p) for d in ("atlas", "atlas-extra") for p in (shared / d).glob("*.h5ad")
        )
    else:
        atlas = simulate_atlas(seed=0, config=scaled_config(size, n_cells=cells))
        files = [
            str(p) for p in write_simulated_atlas(atlas, folder / "source") if p.suffix == ".h5ad"
        ]
    import_datasets(workspace, files)
    return workspace


def train_command(workspace: Workspace, processes: int, epochs: int, n_genes: int) -> list[str]:
    args = ["train", "--workspace", str(workspace.root), "--preset", "quick"]
    args += ["--epochs", str(epochs), "--n-genes", str(n_genes), "--run-name", f"p{processes}"]
    if processes == 1:
        return [sys.executable, "-m", "musegnn_core", *args]
    return [
        str(TORCHRUN),
        "--standalone",
        "--nproc-per-node",
        str(processes),
        "-m",
        "musegnn_core",
        *args,
        "--distributed",
    ]


def seconds_per_epoch(workspace: Workspace, run: str) -> float:
    seconds = pd.read_csv(workspace.runs_dir / run / "losses.csv")["seconds"].tolist()
    return statistics.median(seconds[1:] or seconds)


def paper_scale(gpu_json: Path, datasets: int = 82, epochs: int = 2000) -> str:
    """A paper-scale run (82 datasets x 2000 epochs) per GPU from bench_gpu.py's paper preset
    figure: an epoch is one step per dataset, so its time grows with the datasets."""
    rows = json.loads(gpu_json.read_text())
    values = {(r["part"], r["item"]): r["value"] for r in rows}
    per_epoch = values.get(("presets", "paper s/epoch"))
    measured = values.get(("data", "datasets"))
    device = values.get(("device", "name"), "unknown device")
    if not per_epoch or not measured:
        return f"{gpu_json}: no paper preset figure to extrapolate from"
    hours = float(per_epoch) / int(measured) * datasets * epochs / 3600
    return (
        f"paper scale on {device}: {per_epoch} s/epoch for {measured} datasets -> about "
        f"{hours:.1f} h for {datasets} datasets x {epochs} epochs on one such device "
        f"(W of them: about {hours:.1f}/W h, the same epochs with W-fold batches)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,32,64", help="simulated dataset counts")
    parser.add_argument("--processes", default="1,2", help="training process counts")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cells", type=int, default=300, help="cells per simulated dataset")
    parser.add_argument("--n-genes", type=int, default=300, help="genes per graph")
    parser.add_argument("--real", action="store_true", help="also the 16 shared datasets")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads per training process (default: the usable cores shared among them)",
    )
    parser.add_argument(
        "--gpu-json",
        type=Path,
        help="bench_gpu.py --out of a GPU run: extrapolate a paper-scale run from it",
    )
    args = parser.parse_args()
    if args.gpu_json:
        print(paper_scale(args.gpu_json))
    sizes: list[int | str] = [int(x) for x in args.sizes.split(",") if x]
    if args.real and shared_data_dir() is not None:
        sizes.append("real")
    processes = [int(x) for x in args.processes.split(",")]
    cores = usable_cores()
    print(f"usable cores {cores}; load average {os.getloadavg()[0]:.1f} at the start")
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            workspace = make_workspace(Path(tmp) / "ws", size, args.cells)
            n = len(workspace.dataset_names())
            start = time.perf_counter()
            build_graphs(
                workspace, None, make_config("quick", n_genes=args.n_genes).graph, workers="auto"
            )
            graphs_s = time.perf_counter() - start
            for count in processes:
                threads = str(args.threads or max(1, cores // count))
                env = {**os.environ, "MUSEGNN_THREADS": threads, "OMP_NUM_THREADS": threads}
                command = train_command(workspace, count, args.epochs, args.n_genes)
                code, peaks = run_watched(command, env, ranks_are_children=count > 1)
                if code != 0:
                    print(f"{size} datasets, {count} process(es): failed (exit {code})")
                    continue
                rows.append(
                    {
                        "datasets": n,
                        "processes": count,
                        "graphs_s": round(graphs_s, 1),
                        "s_per_epoch": round(seconds_per_epoch(workspace, f"p{count}"), 3),
                        "peak_gb_per_rank": round(max(peaks) / 1024**2, 2) if peaks else None,
                        "load": round(os.getloadavg()[0], 1),
                    }
                )
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    if table.empty:
        return 1
    single = table[table.processes == 1].set_index("datasets")["s_per_epoch"]
    table["speed_up"] = [
        round(single[d] / s, 2) if d in single else None
        for d, s in zip(table.datasets, table.s_per_epoch, strict=True)
    ]
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
