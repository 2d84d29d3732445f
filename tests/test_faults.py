"""Faults: real processes killed with SIGKILL at chosen moments lose no work.

A training process is killed while building a graph (mid-write of a file), in the
middle of writing a checkpoint, just after a checkpoint, while computing the final
embedding, and (started as the app starts it) from outside at an arbitrary instant. Each time: the run reads as ``stopped`` (also through
the pages' ``jobs.training_status``, which is what an app restarted at that moment
shows), its last complete checkpoint loads with ``weights_only=True``, resuming finishes
the run with an unbroken loss history, and the catalog, datasets and the other run are
byte-identical. An import killed mid-write leaves nothing that looks like a dataset, and
the leftovers of killed writes are swept once stale.

The precise moments are reached by the child itself: it wraps the write it must die in
(``scipy.sparse.save_npz``, ``torch.save``...) so that it writes half the bytes and then
sends itself SIGKILL. The last kill comes from outside, from this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from musegnn_core import jobs
from musegnn_core.data.importer import import_datasets
from musegnn_core.errors import ValidationError
from musegnn_core.graphs.build import GraphConfig, build_graphs, graph_infos, load_graph
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.runs import Run, get_run, list_runs, process_start
from musegnn_core.storage import STALE_AFTER_SECONDS, file_lock
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace
from tests.factories import make_counts, write_h5ad

DATASETS = ["sim_scrna_human_blood_a", "sim_scrna_human_blood_b"]
GRAPHS = GraphConfig(n_genes=150, selection="shared", edges_per_gene=30)
TIMEOUT = 300  # seconds for one child; the 2-core test machine is often shared
#: Children train tiny graphs: one thread each, so that they do not spin against each other.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

CHILD = r"""
import io, os, signal, sys
import musegnn_core.train as train_module
from musegnn_core.graphs.build import GraphConfig
from musegnn_core.workspace import Workspace

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def half_then_die(write, path):
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    die()

fault, calls = os.environ["FAULT"], []
if fault == "graph-write":  # the second graph's adjacency: half written, then killed
    import scipy.sparse as sp
    real_save_npz = sp.save_npz
    def save_npz(file, matrix, compressed=True):
        calls.append(file)
        if len(calls) == 2:
            half_then_die(lambda b: real_save_npz(b, matrix, compressed=compressed), file)
        return real_save_npz(file, matrix, compressed=compressed)
    sp.save_npz = save_npz
elif fault == "checkpoint-write":  # the second checkpoint: half written, then killed
    import torch
    real_save = torch.save
    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:
            half_then_die(lambda b: real_save(obj, b), f)
        return real_save(obj, f, *args, **kwargs)
    torch.save = save
elif fault == "after-checkpoint":  # the second checkpoint is in place; losses/status are not
    real_write_losses = train_module.write_losses
    def write_losses(run, history):
        calls.append(1)
        if len(calls) == 2:
            die()
        return real_write_losses(run, history)
    train_module.write_losses = write_losses
elif fault == "embedding":  # every epoch done, killed while computing UMAP and clusters
    train_module.add_umap_and_clusters = lambda adata, config: die()

config = train_module.make_config(
    "quick",
    epochs=int(os.environ["EPOCHS"]),
    checkpoint_every=int(os.environ["EVERY"]),
    graph=GraphConfig(n_genes=150, selection="shared", edges_per_gene=30),
)
train_module.train(
    Workspace.open(os.environ["WS"]), config, datasets=os.environ["DATASETS"].split(","),
    run_name=os.environ["RUN"],
)
"""


# ------------------------------------------------------------------ helpers
def digest(path: Path) -> dict[str, str]:
    """Hashes of a file or of every file under a folder (relative names)."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not (p.name.endswith(".lock") and p.stat().st_size == 0)
    }


def untouched_parts(root: Path) -> dict[str, dict[str, str]]:
    """What no training may change: catalog, workspace info, datasets, the other run."""
    parts = ("catalog.json", "catalog.csv", "workspace.json", "datasets", "runs/r")
    return {part: digest(root / part) for part in parts}


def start_child(root: Path, run: str, fault: str, epochs: int, every: int) -> subprocess.Popen:
    env = {
        **os.environ,
        **ONE_THREAD,
        "PYTHONPATH": str(PROJECT_ROOT),
        "WS": str(root),
        "RUN": run,
        "FAULT": fault,
        "EPOCHS": str(epochs),
        "EVERY": str(every),
        "DATASETS": ",".join(DATASETS),
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen) -> None:
    _, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode == -signal.SIGKILL, err[-3000:]


def assert_resumes_to_completion(ws: Workspace, name: str, epochs: int) -> Run:
    config = make_config("quick", epochs=epochs, graph=GRAPHS)
    run = train(ws, config, run_name=name, resume=True)
    status = run.status()
    assert status["state"] == "completed", status
    assert list(run.losses()["epoch"]) == list(range(1, epochs + 1))
    assert torch.load(run.checkpoint_path, weights_only=True)["epoch"] == epochs
    assert run.embeddings_path.exists()
    return run


def assert_reads_as_stopped(ws: Workspace, name: str) -> dict:
    run = get_run(ws, name)
    status = run.status()
    assert status["state"] == "stopped", status
    assert "killed or crashed" in status["note"]
    page = jobs.training_status(ws, name)  # what the app shows, even just restarted
    assert page["state"] == "stopped" and page["resumable"], page
    return status


@pytest.fixture
def ws(trained_sim_workspace) -> Workspace:
    """A private copy of the simulated atlas with a completed run 'r'."""
    return Workspace.open(trained_sim_workspace)


# ------------------------------------------------------------------ training
@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "epochs", "every", "checkpoint_epoch"),
    [
        ("checkpoint-write", 8, 2, 2),  # second checkpoint (epoch 4) half written
        ("after-checkpoint", 8, 2, 4),  # second checkpoint (epoch 4) complete
        ("embedding", 6, 3, 6),  # all epochs done, final checkpoint written
    ],
)
def test_training_killed_at_a_write(ws, fault, epochs, every, checkpoint_epoch, one_torch_thread):
    before = untouched_parts(ws.root)
    finish(start_child(ws.root, "k", fault, epochs, every))
    status = assert_reads_as_stopped(ws, "k")
    run = get_run(ws, "k")
    checkpoint = torch.load(run.checkpoint_path, weights_only=True)
    assert checkpoint["epoch"] == checkpoint_epoch
    assert status["epoch"] >= checkpoint["epoch"] - (fault == "after-checkpoint")
    assert not run.embeddings_path.exists()
    leftovers = [p.name for p in run.root.iterdir() if p.name.startswith(".tmp-")]
    if fault == "checkpoint-write":  # the half-written bytes never carried the real name
        assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-checkpoint.pt.")
    else:
        assert leftovers == []
    assert untouched_parts(ws.root) == before
    assert_resumes_to_completion(ws, "k", epochs)
    assert untouched_parts(ws.root) == before


@pytest.mark.slow
def test_app_training_killed_from_outside(ws, one_torch_thread, monkeypatch):
    """A training started as the app starts it (a detached job), killed -9 from outside.

    The kill comes at whatever instant the first checkpoint has been reported: between
    epochs, inside one, or while a file is written.
    """
    for name, value in ONE_THREAD.items():  # the job inherits the app's environment
        monkeypatch.setenv(name, value)
    before = untouched_parts(ws.root)
    overrides = {"epochs": 30, "n_genes": 150, "selection": "shared", "edges_per_gene": 30}
    name = jobs.start_training(
        ws, datasets=DATASETS, preset="quick", overrides=overrides, run_name="job"
    )
    run = Run(ws.runs_dir / name)
    deadline = time.monotonic() + TIMEOUT
    # Past the first checkpoint (the quick preset writes one every 10 epochs).
    while run.raw_status().get("checkpoint_epoch", 0) < 10:
        assert time.monotonic() < deadline, jobs.read_log(ws, name)
        assert jobs.training_status(ws, name)["state"] in ("starting", "running")
        time.sleep(0.05)
    # While it lives, the run reads as running, to the core and to the pages.
    assert run.status()["state"] == "running"
    assert jobs.training_status(ws, name)["state"] == "running"
    os.kill(jobs.read_job(ws, name)["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while jobs.training_status(ws, name)["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # A freshly opened workspace (the app after a restart) sees the same.
    status = assert_reads_as_stopped(Workspace.open(ws.root), name)
    checkpoint = torch.load(run.checkpoint_path, weights_only=True)
    assert checkpoint["epoch"] in (10, 20, 30) and checkpoint["epoch"] <= status["epoch"]
    assert [row["epoch"] for row in checkpoint["history"]] == list(
        range(1, checkpoint["epoch"] + 1)
    )
    assert untouched_parts(ws.root) == before
    assert_resumes_to_completion(ws, name, 30)
    assert untouched_parts(ws.root) == before


@pytest.mark.slow
def test_training_killed_while_writing_a_graph(ws, one_torch_thread):
    """Killed mid-write of the second graph: no run, no graph that looks complete."""
    before = untouched_parts(ws.root)
    graphs_before = graph_infos(ws)
    finish(start_child(ws.root, "g", "graph-write", epochs=4, every=2))
    assert "g" not in [r.name for r in list_runs(ws)]
    assert not (ws.runs_dir / "g" / "status.json").exists()
    partial = [
        folder
        for name in DATASETS
        for folder in (ws.graphs_dir / name).iterdir()
        if folder.is_dir() and not (folder / "graph.json").exists()
    ]
    assert len(partial) == 1, partial
    assert [p.name for p in partial[0].iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(ValidationError, match="No graph built"):
        load_graph(ws, partial[0].parent.name, partial[0].name)
    # The pages still show that dataset's previous complete graph, not the partial one.
    assert graph_infos(ws)[partial[0].parent.name] == graphs_before[partial[0].parent.name]
    assert untouched_parts(ws.root) == before
    # Training again rebuilds that graph completely, then trains.
    run = train(ws, make_config("quick", epochs=2, graph=GRAPHS), datasets=DATASETS, run_name="g")
    assert run.status()["state"] == "completed"
    assert {p.name for p in partial[0].iterdir()} == {
        "adjacency.npz",
        "features.npy",
        "genes.tsv",
        "graph.json",
    }
    assert untouched_parts(ws.root) == before


# ------------------------------------------------------------------ run state
def test_status_of_dead_and_recycled_pids(tmp_path):
    """'running' is believed only while the recorded process is the one alive."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = Run(tmp_path / "runs" / "a")
    run.root.mkdir(parents=True)
    run.write_status(state="running", pid=dead.pid, epoch=3)
    assert run.status()["state"] == "stopped"
    assert run.raw_status()["state"] == "running"  # the file itself is left as it was

    run.write_status(state="running", pid=os.getpid())  # this very process: alive
    assert run.raw_status()["pid_start"] == process_start(os.getpid())
    assert run.status()["state"] == "running"

    # The pid is alive, but it is another process than the one that wrote the status
    # (the pid was recycled, e.g. after the machine restarted).
    run.write_status(state="running", pid=os.getpid(), pid_start="another-boot:12345")
    assert run.status()["state"] == "stopped"

    # A status written before start times were recorded still works on the pid alone.
    status = run.raw_status()
    del status["pid_start"]
    run.status_path.write_text(json.dumps(status))
    assert run.status()["state"] == "running"
    for state in ("completed", "failed", "stopped"):
        run.write_status(state=state, pid=dead.pid)
        assert run.status()["state"] == state


LEADER_EXITS = r"""
import ctypes, fcntl, os, sys, threading, time
handle = open(os.environ["LOCK"], "a+")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
threading.Thread(target=time.sleep, args=(120,)).start()
print("locked", flush=True)
ctypes.CDLL(None).syscall(int(os.environ["SYS_EXIT"]), 0)  # only the main thread ends
"""


@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine not in ("x86_64", "aarch64"),
    reason="raw exit syscall of one thread: Linux x86_64/aarch64 only",
)
def test_a_dying_process_counts_as_alive_until_its_last_thread_is_gone(tmp_path):
    """A killed process's main thread turns zombie before its other threads have exited,
    and until then its files stay open: the training lock is still held. Reading such a
    run as stopped would offer a resume that fails with 'already running'."""
    lock = tmp_path / "training.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", LEADER_EXITS],
        env={
            **os.environ,
            "LOCK": str(lock),
            "SYS_EXIT": "60" if os.uname().machine == "x86_64" else "93",
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 30
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        run = Run(tmp_path / "runs" / "a")
        run.root.mkdir(parents=True)
        run.write_status(state="running", pid=child.pid)
        with file_lock(lock, blocking=False) as free:
            assert free is False  # the zombie's remaining thread still holds the lock...
        assert run.status()["state"] == "running"  # ...so the run is not stopped yet
    finally:
        child.kill()
        child.wait(timeout=60)
    assert run.status()["state"] == "stopped"
    with file_lock(lock, blocking=False) as free:
        assert free is True


# ------------------------------------------------------------------ imports
IMPORT_CHILD = r"""
import os, signal, sys
import anndata as ad
from musegnn_core.data.importer import import_datasets
from musegnn_core.workspace import Workspace

fault = os.environ["FAULT"]
if fault == "dataset-write":  # the dataset file: half written, then killed
    real = ad.AnnData.write_h5ad
    def write_h5ad(self, path, **kwargs):
        real(self, path, **kwargs)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    ad.AnnData.write_h5ad = write_h5ad
elif fault == "catalog-write":  # dataset file in place; killed before the catalog update
    Workspace._write_catalog = lambda self, entries: os.kill(os.getpid(), signal.SIGKILL)
import_datasets(Workspace.open(os.environ["WS"]), [os.environ["FILE"]])
"""


@pytest.mark.parametrize("fault", ["dataset-write", "catalog-write"])
def test_import_killed_mid_way(tmp_path, fault):
    ws = Workspace.open(tmp_path / "ws")
    import_datasets(ws, [write_h5ad(make_counts(), tmp_path / "first.h5ad")])
    before = {p: digest(ws.root / p) for p in ("catalog.json", "catalog.csv", "workspace.json")}
    source = write_h5ad(make_counts(seed=1), tmp_path / "second.h5ad")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "WS": str(ws.root)}
    child = subprocess.run(
        [sys.executable, "-c", IMPORT_CHILD],
        env={**env, "FAULT": fault, "FILE": str(source)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    ws = Workspace.open(ws.root)
    assert {p: digest(ws.root / p) for p in before} == before
    assert ws.dataset_names() == ["first"]  # nothing new is listed...
    leftovers = [p.name for p in ws.datasets_dir.iterdir() if p.name != "first.h5ad"]
    if fault == "dataset-write":
        # ...and the half-written file never got a dataset's name.
        assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-second.h5ad.")
    else:
        assert leftovers == ["second.h5ad"]  # complete, but not in the catalog
    # Importing again works and gives a complete dataset.
    import_datasets(ws, [source])
    assert ws.dataset_names() == ["first", "second"]
    assert ws.load_dataset("second").shape == (60, 40)


def test_stale_leftovers_of_killed_writes_are_swept(tmp_path):
    """Temporary files and staging folders of killed writes go once stale, not before."""
    ws = Workspace.open(tmp_path / "ws")
    upload = ws.root / ".tmp-upload-abc123"  # the Data page's staging folder
    upload.mkdir()
    (upload / "pbmc.h5ad").write_bytes(b"half an upload")
    partial = ws.datasets_dir / ".tmp-x.h5ad.123.h5ad"
    partial.write_bytes(b"half a dataset")
    fresh = ws.root / ".tmp-upload-fresh"  # an upload being staged right now
    fresh.mkdir()
    (fresh / "new.h5ad").write_bytes(b"arriving")
    old = time.time() - STALE_AFTER_SECONDS - 60
    for path in (upload, upload / "pbmc.h5ad", partial, fresh):
        os.utime(path, (old, old))  # 'fresh' itself is old, but a file in it is new
    Workspace.open(ws.root)
    assert not upload.exists() and not partial.exists()
    assert (fresh / "new.h5ad").exists()
    assert (ws.root / "catalog.json").exists() and ws.datasets_dir.is_dir()


def test_interrupted_rebuild_leaves_no_graph_that_looks_complete(ws, monkeypatch):
    """An interrupted --force rebuild, rmtree having removed the adjacency first."""
    import musegnn_core.graphs.build as build

    build_graphs(ws, DATASETS[:1], GRAPHS)
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        adjacency = Path(path) / "adjacency.npz"
        if adjacency.exists():
            adjacency.unlink()  # rmtree's order is the directory's order: any file first
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(build.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        build_graphs(ws, DATASETS[:1], GRAPHS, force=True)
    monkeypatch.undo()
    for folder in (ws.graphs_dir / DATASETS[0]).iterdir():
        if (folder / "graph.json").exists():
            assert (folder / "adjacency.npz").exists(), "a graph.json without its data"
