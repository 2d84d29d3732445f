"""Benchmark: the GPU path in one call (under 8 minutes on one GPU), or a CPU smoke test.

What it measures, each part on its own (a part that fails is reported and the next runs):

1. the device (name, memory, torch and CUDA versions);
2. CS-CORE on the GPU against the CPU for the eight shared atlas datasets (their 1000
   most-counted genes after QC) and for one graph of 5,000 genes, with the largest
   difference between the two estimates;
3. the attention layer (forward and backward) on the device, edge by edge (the path a GPU
   takes today) against sparse products (the CPU path), with the largest difference;
4. the quick and paper presets' seconds per epoch (median after the first epoch), and the
   graph building before them, with peak GPU memory;
5. bf16 autocast against float32: the quick preset trained 20 epochs both ways from the
   same seed; each loss term must agree within ``BF16_RTOL`` of its float32 value plus
   ``BF16_ATOL``;
6. the quick preset end to end (graphs, 60 epochs, embeddings, UMAP, Leiden) in a fresh
   workspace;
7. a 2-process ``torchrun ... --distributed`` run when the machine has two GPUs.

On the GPU machine (no network): ``make gpu-bundle`` here prepares ``gpu-bundle/`` (the
wheels its Python lacks and the eight datasets); carry it and run::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu-bundle/wheels/*.whl
    PYTHONPATH=/tmp/site:. MUSEGNN_SHARED_DATA=gpu-bundle/data python3 benchmarks/bench_gpu.py \\
        --out $OUT/bench_gpu.json

``--smoke`` runs every part small on the simulated atlas on the CPU, skipping what needs a
GPU (CI runs it: tests/test_bench_gpu.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from musegnn_core.threads import configure_threads  # noqa: E402

configure_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from musegnn_core.data.demo import fill_demo  # noqa: E402
from musegnn_core.graphs import qc  # noqa: E402
from musegnn_core.graphs.cscore import cscore  # noqa: E402
from musegnn_core.model import attention  # noqa: E402
from musegnn_core.paths import shared_data_dir  # noqa: E402
from musegnn_core.settings import make_config  # noqa: E402
from musegnn_core.train import train  # noqa: E402
from musegnn_core.workspace import Workspace  # noqa: E402

#: bf16 against float32 after 20 epochs: |bf16 - fp32| <= BF16_RTOL * |fp32| + BF16_ATOL.
BF16_RTOL = 0.05
BF16_ATOL = 0.02
LOSS_TERMS = ("total", "reconstruction", "similarity", "contrastive")


class Bench:
    """Collects the rows of the report; each part runs guarded."""

    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.gpu = torch.cuda.is_available()
        self.device = "cuda" if self.gpu else "cpu"
        self.rows: list[dict] = []

    def add(self, part: str, item: str, value, note: str = "") -> None:
        self.rows.append({"part": part, "item": item, "value": value, "note": note})
        print(f"[{part}] {item}: {value} {note}".rstrip(), flush=True)

    def skip(self, part: str, why: str) -> None:
        self.add(part, "skipped", why)

    def run(self, part: str, action) -> None:
        start = time.perf_counter()
        try:
            action()
        except Exception as exc:  # a benchmark reports a broken part and goes on
            self.add(part, "FAILED", f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        self.add(part, "part seconds", round(time.perf_counter() - start, 1))

    def reset_peak(self) -> None:
        if self.gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_gb(self) -> float | None:
        return round(torch.cuda.max_memory_allocated() / 1024**3, 2) if self.gpu else None


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(action, repeats: int = 1) -> float:
    """Fastest of ``repeats`` runs after a warm-up (first-call set-up is not the cost)."""
    action()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


# ----------------------------------------------------------------------- data
def atlas_workspace(folder: Path, smoke: bool) -> Workspace:
    """The eight shared datasets (or, smoke, the simulated atlas) in a fresh workspace."""
    workspace = Workspace.open(folder)
    fill_demo(workspace, prefer_simulated=smoke or shared_data_dir() is None)
    return workspace


def top_counts(workspace: Workspace, name: str, n_genes: int):
    """Counts (cells x the ``n_genes`` most-counted genes after QC) and depths."""
    meta = workspace.dataset(name)
    adata = workspace.load_dataset(name)
    filtered, _ = qc.run_qc(adata, meta.modality, meta.species, qc.default_qc_config(meta.modality))
    totals = np.asarray(filtered.X.sum(axis=0)).ravel()
    keep = np.sort(np.argsort(-totals)[:n_genes])
    counts = filtered.X[:, keep]
    counts = counts.toarray() if hasattr(counts, "toarray") else np.asarray(counts)
    return counts.astype(np.float64), filtered.obs["n_counts"].to_numpy(np.float64)


# ----------------------------------------------------------------------- parts
def part_device(bench: Bench) -> None:
    bench.add("device", "torch", torch.__version__)
    if not bench.gpu:
        bench.add("device", "name", "no GPU (CPU only)")
        return
    props = torch.cuda.get_device_properties(0)
    bench.add("device", "name", torch.cuda.get_device_name(0))
    bench.add("device", "memory GB", round(props.total_memory / 1024**3, 1))
    bench.add("device", "CUDA", torch.version.cuda)
    bench.add("device", "GPUs", torch.cuda.device_count())


def part_cscore(bench: Bench, workspace: Workspace) -> None:
    n_genes = 150 if bench.smoke else 1000
    for name in workspace.dataset_names():
        counts, depth = top_counts(workspace, name, n_genes)
        cpu = timed(lambda c=counts, d=depth: cscore(c, d, device="cpu"))
        note = f"{counts.shape[0]} cells x {counts.shape[1]} genes; CPU {cpu:.2f} s"
        if bench.gpu:
            gpu = timed(lambda c=counts, d=depth: cscore(c, d, device="cuda"), repeats=3)
            diff = np.nanmax(
                np.abs(cscore(counts, depth, device="cpu").est - cscore(counts, depth).est)
            )
            note += f"; GPU {gpu:.3f} s; speed-up {cpu / gpu:.1f}x; max |est diff| {diff:.1e}"
        bench.add("cscore", name, note)
    big = 300 if bench.smoke else 5000
    largest = max(workspace.dataset_names(), key=lambda n: workspace.dataset(n).n_genes)
    counts, depth = top_counts(workspace, largest, big)
    bench.reset_peak()
    if bench.gpu:
        gpu = timed(lambda: cscore(counts, depth, device="cuda"))
        bench.add("cscore", f"{counts.shape[1]} genes on GPU ({largest})", f"{gpu:.2f} s")
        bench.add("cscore", "peak GPU memory GB", bench.peak_gb())
    start = time.perf_counter()
    cscore(counts, depth, device="cpu")
    cpu = time.perf_counter() - start
    bench.add("cscore", f"{counts.shape[1]} genes on CPU ({largest})", f"{cpu:.1f} s")


def part_attention(bench: Bench) -> None:
    """One ``AttentionConv`` (128 -> 2 heads x 32, layer 2 of ``quick``) on a graph of
    ``quick``'s size, each kernel path forced in turn."""
    n_genes, degree = (300, 10) if bench.smoke else (2500, 25)
    generator = torch.Generator().manual_seed(0)
    source = torch.arange(n_genes).repeat_interleave(degree)
    target = torch.randint(0, n_genes, (source.numel(),), generator=generator)
    edges = torch.unique(
        torch.cat([torch.stack([source, target]), torch.stack([target, source])], 1), dim=1
    )
    device = torch.device(bench.device)
    graph = attention.AttentionGraph.from_edge_index(edges.to(device), n_genes)
    torch.manual_seed(0)
    layer = attention.AttentionConv(128, 32, heads=2).to(device)
    x = torch.randn(n_genes, 128, device=device, requires_grad=True)
    bench.add("attention", "graph", f"{n_genes} genes, {graph.n_edges} directed edges")

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        out = layer(x, graph)
        out.square().mean().backward()
        return out.detach()

    outputs = {}
    default = attention.uses_sparse_kernels
    try:
        for path, sparse in (("edge by edge", False), ("sparse products", True)):
            attention.uses_sparse_kernels = lambda _x, sparse=sparse: sparse
            try:
                seconds = timed(step, repeats=5)
                outputs[path] = step()
                bench.add("attention", f"{path} forward+backward ms", round(seconds * 1e3, 2))
            except Exception as exc:  # e.g. a sparse kernel this device lacks
                bench.add("attention", f"{path} FAILED", f"{type(exc).__name__}: {exc}")
    finally:
        attention.uses_sparse_kernels = default
    if len(outputs) == 2:
        diff = (outputs["edge by edge"] - outputs["sparse products"]).abs().max().item()
        bench.add("attention", "max |output difference|", f"{diff:.1e}")


def stop_after(workspace: Workspace, run: str, epochs: int):
    """A progress callback that asks the run to stop once ``epochs`` are done."""

    def callback(event) -> None:
        if event.phase == "training" and event.epoch >= epochs:
            (workspace.runs_dir / run / "STOP").touch()

    return callback


def epoch_seconds(workspace: Workspace, run: str) -> list[float]:
    import pandas as pd

    return pd.read_csv(workspace.runs_dir / run / "losses.csv")["seconds"].tolist()


def losses_at(workspace: Workspace, run: str, epoch: int) -> dict:
    import pandas as pd

    table = pd.read_csv(workspace.runs_dir / run / "losses.csv")
    return table[table.epoch == epoch].iloc[0][list(LOSS_TERMS)].to_dict()


def small(bench: Bench) -> dict:
    """Smoke runs use small graphs."""
    return {"n_genes": 150} if bench.smoke else {}


def part_presets(bench: Bench, workspace: Workspace) -> None:
    for preset, epochs in (("quick", 6), ("paper", 4)):
        if bench.smoke and preset == "paper":
            epochs = 2
        config = make_config(preset, device=bench.device, **small(bench))
        bench.reset_peak()
        start = time.perf_counter()
        run = f"bench-{preset}"
        train(workspace, config, run_name=run, callback=stop_after(workspace, run, epochs))
        wall = time.perf_counter() - start
        seconds = epoch_seconds(workspace, run)
        per_epoch = statistics.median(seconds[1:] or seconds)
        bench.add("presets", f"{preset} s/epoch", round(per_epoch, 3), f"median of {len(seconds)}")
        bench.add(
            "presets",
            f"{preset} graphs and set-up s",
            round(wall - sum(seconds), 1),
            "graph building on the device, data moved once",
        )
        if bench.gpu:
            bench.add("presets", f"{preset} peak GPU memory GB", bench.peak_gb())
        if preset == "paper":
            bench.add(
                "presets",
                "paper 2000 epochs, extrapolated h",
                round(per_epoch * 2000 / 3600, 2),
                f"{len(workspace.dataset_names())} datasets",
            )


def part_bf16(bench: Bench, workspace: Workspace) -> None:
    if not bench.gpu:
        bench.skip("bf16", "bf16 autocast runs on CUDA only")
        return
    losses = {}
    for mixed in (False, True):
        run = f"bench-{'bf16' if mixed else 'fp32'}"
        config = make_config("quick", device="cuda", epochs=40, mixed_precision=mixed)
        bench.reset_peak()
        train(workspace, config, run_name=run, callback=stop_after(workspace, run, 20))
        losses[mixed] = losses_at(workspace, run, 20)
        seconds = epoch_seconds(workspace, run)
        bench.add(
            "bf16",
            f"{'bf16' if mixed else 'fp32'} s/epoch, peak GB",
            f"{statistics.median(seconds[1:]):.3f}, {bench.peak_gb()}",
        )
    agree = True
    for term in LOSS_TERMS:
        a, b = losses[False][term], losses[True][term]
        ok = abs(b - a) <= BF16_RTOL * abs(a) + BF16_ATOL
        agree &= ok
        bench.add(
            "bf16", f"epoch 20 {term}", f"fp32 {a:.4f} bf16 {b:.4f}", "ok" if ok else "DIFFER"
        )
    bench.add("bf16", "agree", agree, f"within {BF16_RTOL:.0%} + {BF16_ATOL}")


def part_end_to_end(bench: Bench, folder: Path) -> None:
    start = time.perf_counter()
    workspace = atlas_workspace(folder, bench.smoke)
    epochs = 3 if bench.smoke else None
    config = make_config("quick", device=bench.device, epochs=epochs, **small(bench))
    bench.reset_peak()
    run = train(workspace, config, run_name="end-to-end")
    status = run.status()
    bench.add(
        "end to end",
        f"quick, {config.epochs} epochs",
        f"{time.perf_counter() - start:.1f} s",
        f"state {status.get('state')}, {status.get('n_clusters')} clusters; import included",
    )
    if bench.gpu:
        bench.add("end to end", "peak GPU memory GB", bench.peak_gb())


def part_torchrun(bench: Bench, workspace: Workspace) -> None:
    if torch.cuda.device_count() < 2:
        bench.skip("torchrun", f"{torch.cuda.device_count()} GPU(s): needs 2")
        return
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = (
        [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    )
    command = [*launcher, "--standalone", "--nproc-per-node", "2", "-m", "musegnn_core", "train"]
    command += ["--workspace", str(workspace.root), "--preset", "quick", "--epochs", "10"]
    command += ["--device", "cuda", "--run-name", "bench-2gpu", "--distributed"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        bench.add("torchrun", "FAILED", done.stderr[-1500:])
        return
    seconds = epoch_seconds(workspace, "bench-2gpu")
    bench.add("torchrun", "2 GPUs quick s/epoch", round(statistics.median(seconds[1:]), 3))
    bench.add("torchrun", "wall s", round(time.perf_counter() - start, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small, on the simulated atlas")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    bench = Bench(args.smoke)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = atlas_workspace(Path(tmp) / "ws", args.smoke)
        bench.add("data", "datasets", len(workspace.dataset_names()))
        bench.run("device", lambda: part_device(bench))
        bench.run("cscore", lambda: part_cscore(bench, workspace))
        bench.run("attention", lambda: part_attention(bench))
        bench.run("presets", lambda: part_presets(bench, workspace))
        bench.run("bf16", lambda: part_bf16(bench, workspace))
        bench.run("end to end", lambda: part_end_to_end(bench, Path(tmp) / "fresh"))
        bench.run("torchrun", lambda: part_torchrun(bench, workspace))
    bench.add("total", "seconds", round(time.perf_counter() - started, 1))
    print("\n| part | item | value | note |\n| --- | --- | --- | --- |")
    for row in bench.rows:
        print(f"| {row['part']} | {row['item']} | {row['value']} | {row['note']} |")
    if args.out:
        args.out.write_text(json.dumps(bench.rows, indent=1, default=str))
    return 1 if any(row["item"] == "FAILED" for row in bench.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
