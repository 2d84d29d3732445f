"""Concurrency: browser sessions and the CLI sharing one workspace, as parallel processes.

- Two ``train`` commands started together: exactly one trains; the other exits with
  status 2 and says a training is already running; the app's start is refused too. Once
  the training is killed with SIGKILL its lock is free again.
- Two sessions of one app server (threads of one process) training at once: one is told.
- A reader process parsing catalog.json, workspace.json and status.json as fast as it can
  while a writer process imports, deletes and reports progress: it never sees a partial
  file (and the same reader does catch a naive writer, so the check has teeth).
- Processes importing at the same instant: different datasets all end up in the catalog;
  of two importing the same name, one wins, the other is told, nothing is torn.
- Two processes building the same graphs at once both succeed with one complete graph.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anndata as ad
import pytest

from musegnn_core import jobs
from musegnn_core.errors import WorkspaceError
from musegnn_core.graphs.build import GraphConfig
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.runs import Run
from musegnn_core.storage import file_lock
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace
from tests.factories import make_counts, write_h5ad

DATASETS = ["sim_scrna_human_blood_a", "sim_scrna_human_blood_b"]
GRAPHS = GraphConfig(n_genes=150, selection="shared", edges_per_gene=30)
TIMEOUT = 300  # seconds; the 2-core test machine is often shared with other work
#: Children train tiny graphs: one thread each, so that they do not spin against each other.
ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}


def python(code: str, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**ENV, **{k: str(v) for k, v in env.items()}},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "musegnn_core", *map(str, args)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, timeout=TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def ws(trained_sim_workspace) -> Workspace:
    return Workspace.open(trained_sim_workspace)


# ------------------------------------------------------------------ one training
@pytest.mark.slow
def test_two_train_commands_one_trains_other_is_told(ws, one_torch_thread):
    common = ["-w", ws.root, "--datasets", ",".join(DATASETS), "--epochs", "400"]
    common += ["--n-genes", "150", "--selection", "shared", "--max-neighbours", "30"]
    first, second = (
        cli("train", *common, "--run-name", "one"),
        cli("train", *common, "--run-name", "two"),
    )
    processes = {"one": first, "two": second}
    # The loser stops at once; the winner trains on (400 epochs).
    wait_until(lambda: any(p.poll() is not None for p in processes.values()), what="a loser")
    [loser] = [name for name, p in processes.items() if p.poll() is not None]
    [winner] = [name for name in processes if name != loser]
    _, err = processes[loser].communicate()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert processes[loser].returncode == 2, err
    assert len(errors) == 1 and "already running" in errors[0], err
    assert not (ws.runs_dir / loser).exists()

    run = Run(ws.runs_dir / winner)
    wait_until(
        lambda: run.raw_status().get("epoch", 0) >= 1 or processes[winner].poll() is not None,
        what="the winner's first epoch",
    )
    assert processes[winner].poll() is None, processes[winner].communicate()[1][-2000:]
    assert run.status()["state"] == "running"
    # A browser session asking the app to train is refused while the CLI trains.
    with pytest.raises(WorkspaceError, match="already running"):
        jobs.start_training(ws, datasets=DATASETS, preset="quick", run_name="page")
    with file_lock(ws.root / "training.lock", blocking=False) as free:
        assert free is False

    os.kill(processes[winner].pid, signal.SIGKILL)
    processes[winner].communicate(timeout=TIMEOUT)
    assert processes[winner].returncode == -signal.SIGKILL
    # The dead holder's lock is released by the OS: training works again at once.
    with file_lock(ws.root / "training.lock", blocking=False) as free:
        assert free is True
    assert run.status()["state"] == "stopped"
    after = train(ws, make_config("quick", epochs=2, graph=GRAPHS), datasets=DATASETS)
    assert after.status()["state"] == "completed"


def test_two_sessions_of_one_server(ws, one_torch_thread):
    """Two threads of one process (two browser sessions) train at once: one is told."""
    holding = threading.Event()
    release = threading.Event()
    outcome: dict[str, object] = {}

    def hold(event):
        if event.phase == "training" and not holding.is_set():
            holding.set()
            release.wait(TIMEOUT)

    def first_session():
        try:
            config = make_config("quick", epochs=2, graph=GRAPHS)
            outcome["first"] = train(ws, config, datasets=DATASETS, run_name="s1", callback=hold)
        except BaseException as exc:  # reported below
            outcome["first"] = exc

    thread = threading.Thread(target=first_session)
    thread.start()
    try:
        assert holding.wait(TIMEOUT), outcome
        with pytest.raises(WorkspaceError, match=r"already running.*s1"):
            train(ws, make_config("quick", epochs=2, graph=GRAPHS), run_name="s2")
    finally:
        release.set()
        thread.join(TIMEOUT)
    assert isinstance(outcome["first"], Run), outcome
    assert outcome["first"].status()["state"] == "completed"
    assert not (ws.runs_dir / "s2").exists()


# ------------------------------------------------------------------ reads and writes
READER = r"""
import json, os, sys, time
from pathlib import Path
paths = [Path(p) for p in os.environ["PATHS"].split(os.pathsep)]
stop = Path(os.environ["STOP"])
reads = bad = 0
examples = []
deadline = time.monotonic() + float(os.environ.get("SECONDS", "1e9"))
Path(os.environ["READY"]).touch()
while not stop.exists() and time.monotonic() < deadline:
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        reads += 1
        try:
            json.loads(text)
        except ValueError:
            bad += 1
            examples.append(text[:80])
    if bad and os.environ.get("FIRST_BAD"):
        break
print(json.dumps({"reads": reads, "bad": bad, "examples": examples[:3]}))
"""

WRITER = r"""
import os, sys, time
from pathlib import Path
from musegnn_core.data.importer import ImportOptions, import_datasets
from musegnn_core.runs import Run
from musegnn_core.workspace import Workspace
ws = Workspace.open(os.environ["WS"])
run = Run(ws.runs_dir / "live")
while not Path(os.environ["READY"]).exists():
    time.sleep(0.01)
writes = 0
for i in range(int(os.environ["ROUNDS"])):
    import_datasets(ws, [os.environ["FILE"]], ImportOptions(name=f"d{i}"))
    for epoch in range(20):
        run.write_status(state="running", pid=os.getpid(), epoch=epoch, losses={"total": 1.0 / (epoch + 1)})
        writes += 1
    ws.update_info(note=f"round {i}")
    if i % 2:
        ws.delete_dataset(f"d{i}")
    writes += 4
print(writes)
"""


def test_readers_never_see_partial_writes(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    source = write_h5ad(make_counts(), tmp_path / "d.h5ad")
    run = Run(ws.runs_dir / "live")
    run.root.mkdir(parents=True)
    paths = [ws.catalog_path, ws.info_path, run.status_path]
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    reader = python(READER, PATHS=os.pathsep.join(map(str, paths)), STOP=stop, READY=ready)
    writer = python(WRITER, WS=ws.root, FILE=source, ROUNDS=12, READY=ready)
    out, err = writer.communicate(timeout=TIMEOUT)
    assert writer.returncode == 0, err[-3000:]
    stop.touch()
    report, reader_err = reader.communicate(timeout=TIMEOUT)
    assert reader.returncode == 0, reader_err
    seen = json.loads(report)
    assert int(out) >= 12 * 24
    assert seen["reads"] > 100, seen
    assert seen["bad"] == 0, seen
    assert ws.dataset_names() == [f"d{i}" for i in range(0, 12, 2)]


NAIVE_WRITER = r"""
import json, os, time
from pathlib import Path
target = Path(os.environ["TARGET"])
payload = json.dumps({"datasets": [{"name": f"d{i}", "notes": ["x" * 200]} for i in range(2000)]})
while not Path(os.environ["READY"]).exists():
    time.sleep(0.01)
deadline = time.monotonic() + 20
while not Path(os.environ["STOP"]).exists() and time.monotonic() < deadline:
    with open(target, "w") as handle:  # truncate, then write: readers can see the middle
        handle.write(payload)
"""


def test_the_reader_catches_a_naive_writer(tmp_path):
    """Control: the reader above does detect torn files when writes are not atomic."""
    target = tmp_path / "catalog.json"
    target.write_text("{}")
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    reader = python(READER, PATHS=target, STOP=stop, READY=ready, SECONDS=20, FIRST_BAD=1)
    writer = python(NAIVE_WRITER, TARGET=target, READY=ready, STOP=stop)
    report, _ = reader.communicate(timeout=TIMEOUT)
    stop.touch()
    writer.communicate(timeout=TIMEOUT)
    assert json.loads(report)["bad"] >= 1


# ------------------------------------------------------------------ imports at once
IMPORTER = r"""
import os, sys, time
from pathlib import Path
from musegnn_core.data.importer import ImportOptions, import_datasets
from musegnn_core.errors import MuseGNNError
from musegnn_core.workspace import Workspace
ws = Workspace.open(os.environ["WS"])
Path(os.environ["READY"]).touch()
while not Path(os.environ["GO"]).exists():
    time.sleep(0.005)
try:
    import_datasets(ws, [os.environ["FILE"]], ImportOptions(name=os.environ["NAME"]))
except MuseGNNError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def import_at_once(ws: Workspace, tmp_path: Path, jobs_: list[tuple[str, Path]]):
    """Start one importer per (name, file), release them together, return the processes."""
    go = tmp_path / "go"
    processes = []
    for i, (name, path) in enumerate(jobs_):
        ready = tmp_path / f"ready{i}"
        processes.append(
            (ready, python(IMPORTER, WS=ws.root, FILE=path, NAME=name, READY=ready, GO=go))
        )
    wait_until(lambda: all(r.exists() for r, _ in processes), what="importers ready")
    go.touch()
    results = []
    for _, process in processes:
        _, err = process.communicate(timeout=TIMEOUT)
        results.append((process.returncode, err))
    return results


def test_concurrent_imports(tmp_path):
    """Released together: three different datasets all land; of two 'same', one wins."""
    ws = Workspace.open(tmp_path / "ws")
    files = [
        (name, write_h5ad(make_counts(n_cells=30 + i, seed=i), tmp_path / f"s{i}.h5ad"))
        for i, name in enumerate(["set0", "set1", "set2", "same", "same"])
    ]
    results = import_at_once(ws, tmp_path, files)
    assert [code for code, _ in results[:3]] == [0, 0, 0], results
    assert sorted(code for code, _ in results[3:]) == [0, 2], results
    [message] = [err for code, err in results[3:] if code == 2]
    assert "already exists" in message and "Traceback" not in message
    assert sorted(ws.dataset_names()) == ["same", "set0", "set1", "set2"]
    for meta in ws.datasets():  # every file is whole and matches its catalog entry
        assert ad.read_h5ad(ws.dataset_path(meta.name)).n_obs == meta.n_cells
    for i in range(3):
        assert ws.dataset(f"set{i}").n_cells == 30 + i
    rows = (ws.root / "catalog.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == sorted(ws.dataset_names())


@pytest.mark.slow
def test_concurrent_graph_builds(ws):
    """Two sessions building the same graphs at once: both succeed, graphs are complete."""
    args = ["build-graphs", "-w", ws.root, "--datasets", ",".join(DATASETS), "--n-genes", "120"]
    processes = [cli(*args), cli(*args)]
    for process in processes:
        _, err = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, err[-3000:]
    for name in DATASETS:
        for folder in (ws.graphs_dir / name).iterdir():
            if folder.is_dir():
                files = {p.name for p in folder.iterdir()}
                assert files == {"adjacency.npz", "features.npy", "genes.tsv", "graph.json"}
