"""The structured hand-off: progress events in progress.jsonl, and the one rule of resuming."""

from __future__ import annotations

import json

import pytest

from musegnn_core.cli import build_parser, train_request
from musegnn_core.errors import ValidationError
from musegnn_core.progress import (
    ProgressRecorder,
    append_event,
    latest_attempt,
    loss_rows,
    read_events,
)
from musegnn_core.runs import Run
from musegnn_core.settings import make_config
from musegnn_core.train import ProgressEvent, resumed_config


def test_recorder_writes_only_once_attached_and_forwards_everything(tmp_path):
    seen = []
    recorder = ProgressRecorder(seen.append)
    recorder(ProgressEvent("r", "graphs"))  # not attached: e.g. the name was refused
    recorder.failed(ValidationError("refused"))
    assert not (tmp_path / "r").exists() and len(seen) == 1

    recorder.attach(tmp_path / "r", resumed=False)
    recorder(ProgressEvent("r", "graphs", message="building graphs"))
    for epoch in (1, 2):
        recorder(ProgressEvent("r", "training", epoch, 3, {"total": 1.0 / epoch}))
    recorder.failed(ValidationError("Training diverged at epoch 3"))
    events = read_events(tmp_path / "r" / "progress.jsonl")
    assert [e["phase"] for e in events] == ["graphs", "training", "training", "failed"]
    assert events[0]["attempt"] == "start" and events[-1]["message"].startswith("Training div")
    assert len(seen) == 4


def test_attempts_torn_lines_and_resumed_epochs(tmp_path):
    path = tmp_path / "progress.jsonl"
    for event in (
        {"phase": "graphs", "attempt": "start"},
        {"phase": "training", "epoch": 1, "losses": {"total": 3.0}},
        {"phase": "training", "epoch": 2, "losses": {"total": 2.0}},
        {"phase": "stopped"},
        {"phase": "graphs", "attempt": "resume"},
        {"phase": "training", "epoch": 2, "losses": {"total": 1.5}},
    ):
        append_event(path, event)
    with open(path, "a") as handle:
        handle.write('{"phase": "training", "epo')  # a crash mid-line
    events = read_events(path)
    assert len(events) == 6
    assert [e["phase"] for e in latest_attempt(events)] == ["graphs", "training"]
    assert loss_rows(events) == [{"epoch": 1, "total": 3.0}, {"epoch": 2, "total": 1.5}]
    assert read_events(tmp_path / "none.jsonl") == []


def _stored_run(tmp_path, epochs: int) -> Run:
    run = Run(tmp_path / "runs" / "r")
    run.root.mkdir(parents=True)
    config = make_config("quick", epochs=epochs, n_genes=150)
    run.config_path.write_text(json.dumps({"train": config.to_dict(), "datasets": ["a"]}))
    return run


def test_a_resumed_run_keeps_its_settings_and_only_extends_its_epochs(tmp_path):
    run = _stored_run(tmp_path, 20)
    assert resumed_config(run) == resumed_config(run, 10)  # never shortened
    assert resumed_config(run).epochs == 20 and resumed_config(run).graph.n_genes == 150
    assert resumed_config(run, 35).epochs == 35


def test_the_cli_refuses_settings_on_resume(tmp_path):
    parse = build_parser().parse_args
    base = ["train", "-w", str(tmp_path), "--run-name", "r", "--resume"]
    assert train_request(parse(base)) == (None, None)
    assert train_request(parse([*base, "--epochs", "40"]))[0].epochs == 40
    for extra in (["--n-genes", "300"], ["--preset", "paper"], ["--datasets", "a,b"]):
        with pytest.raises(ValidationError, match="only --epochs"):
            train_request(parse([*base, *extra]))


def _running_run(ws, name: str, phase_events: list[dict]):
    """A run folder as a live training leaves it: running status (this process's pid, so it
    reads as alive) and its progress events."""
    import os

    from musegnn_core.runs import run_folder

    run = run_folder(ws, name)
    run.root.mkdir(parents=True)
    config = make_config("quick", epochs=4)
    run.config_path.write_text(
        json.dumps({"name": name, "train": config.to_dict(), "datasets": ["a", "b"]})
    )
    run.write_status(state="running", pid=os.getpid(), epoch=4, epochs=4, message="training")
    for event in phase_events:
        append_event(run.progress_path, {"run": name, **event})
    return run


def test_the_umap_and_clusters_phase_is_its_own_step(tmp_path, monkeypatch):
    from musegnn_core.jobs import running_training, training_status
    from musegnn_core.workspace import Workspace
    from pages.ui.runs import runs_overview
    from tests.factories import open_app_page

    ws = Workspace.open(tmp_path / "ws")
    ws.update_info(demo={"kind": "none"})
    events = [{"phase": "graphs", "attempt": "start", "time": "2026-01-01T00:00:00+00:00"}]
    events += [
        {"phase": "training", "epoch": e, "epochs": 4, "losses": {"total": 1.0 / e}}
        for e in range(1, 5)
    ]
    _running_run(ws, "busy", [*events, {"phase": "embedding", "epoch": 4, "epochs": 4}])
    status = training_status(ws, "busy")
    assert (status["state"], status["phase"]) == ("running", "embedding")
    assert status["message"] == "computing embeddings, UMAP and clusters"
    assert running_training(ws) == "busy"
    assert runs_overview(ws).set_index("Run").loc["busy", "Epochs"] == "UMAP and clusters"

    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    at = open_app_page("pages/2_Train.py")
    progress = at.get("progress")[0].proto.text
    assert progress == "Step 3 of 3: embeddings, UMAP and clusters"
    assert {m.label: m.value for m in at.metric}["Time left"] == "UMAP and clusters"
