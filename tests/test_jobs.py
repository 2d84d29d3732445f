"""Background training (musegnn_core.jobs): real detached processes on the simulated atlas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from musegnn_core import jobs
from musegnn_core.cli import build_parser, main, train_overrides, train_request
from musegnn_core.data.demo import fill_demo
from musegnn_core.errors import ValidationError, WorkspaceError
from musegnn_core.graphs.build import GraphConfig, build_graphs
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.progress import read_events
from musegnn_core.runs import get_run
from musegnn_core.settings import (
    PRESET_PURPOSE,
    SETTINGS,
    config_values,
    preset_summary,
    preset_values,
)
from musegnn_core.storage import file_lock
from musegnn_core.train import PRESETS, make_config
from musegnn_core.workspace import Workspace
from pages.ui.runs import runs_overview

DATASETS = ["sim_scrna_human_blood_a", "sim_scrna_human_blood_b"]
SMALL = {"n_genes": 150, "selection": "shared", "edges_per_gene": 30}
TIMEOUT = 420  # seconds; the 2-core test machine is often shared with other work


@pytest.fixture(scope="module")
def sim_ws(tmp_path_factory):
    """The simulated atlas with the graphs of DATASETS already built (the jobs reuse them)."""
    ws = Workspace.open(tmp_path_factory.mktemp("jobs") / "ws")
    fill_demo(ws, prefer_simulated=True)
    build_graphs(ws, DATASETS, GraphConfig(**SMALL))
    return ws


def wait_for(ws, name, states, timeout=TIMEOUT, until=None):
    """Poll the run's status until its state is in ``states`` (and ``until(status)``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = jobs.training_status(ws, name)
        if status["state"] in states and (until is None or until(status)):
            return status
        time.sleep(0.3)
    raise AssertionError(
        f"run {name} did not reach {states} in {timeout} s: {status}\n{jobs.read_log(ws, name)}"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs must be between 1 and 100000"),
        ({"lr_encoder": 2.0}, r"lr_encoder must be in \(0, 1\)"),
        ({"lr_decoder": float("nan")}, "lr_decoder must be a finite number"),
        ({"n_genes": 5}, "n_genes must be between 10 and 20000"),
        ({"pvalue": 1.5}, r"pvalue must be in \(0, 1\)"),
        ({"edges_per_gene": -3}, "edges_per_gene must be between 0 and"),
        ({"leiden_resolution": 0}, "leiden_resolution must be between 0.05 and 50"),
        ({"leiden_resolution": 60.0}, "leiden_resolution must be between 0.05 and 50"),
        ({"seed": -1}, "seed must be between 0"),
        ({"epochs": 2.5}, "epochs must be a whole number"),
        ({"selection": "best"}, "selection must be one of"),
        ({"decoder": "linear"}, "decoder must be one of"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda"),
        ({"learning_rate": 0.1}, "Unknown training setting 'learning_rate'"),
    ],
)
def test_bad_settings_fail_in_process_and_start_nothing(sim_ws, overrides, message):
    before = sorted(sim_ws.jobs_dir.glob("*.json"))
    with pytest.raises(ValidationError, match=message):
        jobs.start_training(sim_ws, datasets=DATASETS, preset="quick", overrides=overrides)
    assert sorted(sim_ws.jobs_dir.glob("*.json")) == before


def test_bad_requests_fail_in_process(sim_ws, monkeypatch):
    with pytest.raises(ValidationError, match="Unknown preset 'fast'"):
        jobs.start_training(sim_ws, datasets=DATASETS, preset="fast")
    with pytest.raises(ValidationError, match="at least one dataset"):
        jobs.start_training(sim_ws, datasets=[], preset="quick")
    with pytest.raises(WorkspaceError, match="No dataset named 'nope'"):
        jobs.start_training(sim_ws, datasets=["nope"], preset="quick")
    with pytest.raises(ValidationError, match="Invalid run name"):
        jobs.start_training(sim_ws, datasets=DATASETS, preset="quick", run_name="../x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValidationError, match="no GPU is available"):
        jobs.start_training(sim_ws, datasets=DATASETS, preset="quick", overrides={"device": "cuda"})
    assert jobs.available_devices() == ["auto", "cpu"]
    assert jobs.device_description().startswith("CPU (")


def test_a_training_started_elsewhere_blocks_a_start(sim_ws):
    with (
        file_lock(sim_ws.root / "training.lock"),
        pytest.raises(WorkspaceError, match=r"already running \(started elsewhere"),
    ):
        jobs.start_training(sim_ws, datasets=DATASETS, preset="quick", overrides=SMALL)


def test_cli_builds_the_same_configuration_as_the_page(sim_ws):
    overrides = {**SMALL, "epochs": 7, "lr_encoder": 3e-4, "seed": 11, "leiden_resolution": 0.7}
    config = jobs.make_train_config("paper", overrides)
    assert (config.epochs, config.lr_encoder, config.seed) == (7, 3e-4, 11)
    assert (config.graph.n_genes, config.graph.edges_per_gene) == (150, 30)
    assert config.leiden_resolution == 0.7 and config.model == PRESETS["paper"].model
    # The page's settings given as options build the same configuration ...
    argv = ["train", "--preset", "paper"]
    for name, value in config_values(config).items():
        argv += [
            SETTINGS[name].meta.flag,
            ",".join(value) if isinstance(value, tuple) else str(value),
        ]
    args = build_parser().parse_args(argv)
    assert jobs.make_train_config(args.preset, train_overrides(args)) == config
    # ... and the app hands its configuration over as a file, read back unchanged.
    request = sim_ws.root / "request.json"
    request.write_text(json.dumps({"datasets": DATASETS, "train": config.to_dict()}))
    argv = jobs.train_command(sim_ws, "r1", request)
    assert argv[:4] == [sys.executable, "-m", "musegnn_core", "train"]
    args = build_parser().parse_args(argv[3:])
    assert train_request(args) == (config, DATASETS) and args.run_name == "r1"
    for extra in (["--epochs", "3"], ["--preset", "quick"]):
        with pytest.raises(ValidationError, match="either in --config or as options"):
            train_request(build_parser().parse_args([*argv[3:], *extra]))
    request.write_text("{not json")
    with pytest.raises(ValidationError, match="is not a training configuration"):
        train_request(build_parser().parse_args(argv[3:]))
    # 0 keeps every edge (the former name still works); the preset's values fill the rest.
    everything = jobs.make_train_config("quick", {"max_neighbours": 0})
    assert everything.graph.edges_per_gene == 0
    assert everything.epochs == PRESETS["quick"].epochs
    assert preset_values("quick") == config_values(make_config("quick"))


def test_preset_summaries_come_from_the_presets():
    for name, preset in PRESETS.items():
        text = preset_summary(name)
        assert text.startswith(f"{preset.epochs} epochs")
        assert f"{preset.lr_encoder:g} / {preset.lr_decoder:g}" in text
        assert PRESET_PURPOSE[name] in text
    quick = PRESETS["quick"].graph
    assert f"{quick.edges_per_gene} strongest positive edges" in preset_summary("quick")
    assert "all significant edges" in preset_summary("paper")


def test_cli_rejects_out_of_range_advanced_settings(sim_ws, capsys):
    root = str(sim_ws.root)
    assert main(["train", "-w", root, "--lr-encoder", "2"]) == 2
    assert "lr_encoder must be in (0, 1)" in capsys.readouterr().err
    assert main(["train", "-w", root, "--leiden-resolution", "-1"]) == 2
    assert "leiden_resolution must be between 0.05 and 50" in capsys.readouterr().err


def test_background_training_survives_its_parent_and_completes(sim_ws):
    """The process that started the training is killed; the training finishes anyway."""
    code = (
        "import sys, time; from musegnn_core import jobs;"
        "from musegnn_core.workspace import Workspace;"
        f"name = jobs.start_training(Workspace.open({str(sim_ws.root)!r}), datasets={DATASETS!r},"
        f" preset='quick', overrides={{**{SMALL!r}, 'epochs': 15}}, run_name='orphan');"
        "print(name, flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    try:
        assert parent.stdout.readline().strip() == "orphan"
        record = jobs.read_job(sim_ws, "orphan")
        assert record["pid"] != parent.pid
        assert os.getsid(record["pid"]) == record["pid"]  # its own session
        assert jobs.running_training(sim_ws) == "orphan"
        wait_for(sim_ws, "orphan", {"running"}, until=lambda s: s["epoch"] >= 1)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    epoch_at_parent_death = jobs.training_status(sim_ws, "orphan")["epoch"]
    status = wait_for(sim_ws, "orphan", {"completed", "failed", "stopped"})
    assert status["state"] == "completed", status
    assert status["epoch"] == status["epochs"] == 15 > epoch_at_parent_death
    run = get_run(sim_ws, "orphan")
    assert run.embeddings_path.exists()
    assert list(run.losses()["epoch"]) == list(range(1, 16))
    curve = jobs.loss_curve(sim_ws, "orphan")
    assert list(curve["epoch"]) == list(range(1, 16))
    assert curve["total"].tolist() == pytest.approx(run.losses()["total"].tolist(), abs=1e-6)
    assert "orphan: epoch 15/15: total" in jobs.read_log(sim_ws, "orphan")
    # The structured hand-off back: one event per phase and per epoch.
    phases = [e["phase"] for e in read_events(run.progress_path)]
    assert phases == ["graphs", *["training"] * 15, "embedding", "done"]
    assert jobs.running_training(sim_ws) is None

    overview = runs_overview(sim_ws).set_index("Run")
    row = overview.loc["orphan"]
    assert (row["State"], row["Preset"], row["Epochs"], row["Datasets"]) == (
        "completed",
        "quick",
        "15/15",
        2,
    )
    assert "Mean of six metrics" not in overview or overview["Mean of six metrics"].isna().all()

    # Once evaluated, the run's key metrics join the table.
    from musegnn_core.analysis.evaluate import evaluate_run

    table = evaluate_run(sim_ws, "orphan", baselines=[], gene_set_paths=[])
    assert run.evaluation()["musegnn"]["auc"] == pytest.approx(table["musegnn"]["auc"])
    row = runs_overview(sim_ws).set_index("Run").loc["orphan"]
    assert row["Edge AUC"] == round(table["musegnn"]["auc"], 3)
    assert row["Mean of six metrics"] == round(table["musegnn"]["mean_of_six"], 3)


def test_second_start_is_refused_cancel_stops_and_resume_completes(sim_ws):
    name = jobs.start_training(
        sim_ws, datasets=DATASETS, preset="quick", overrides={**SMALL, "epochs": 20}, run_name="a"
    )
    assert name == "a" and jobs.running_training(sim_ws) == "a"
    with pytest.raises(WorkspaceError, match=r"already running \(run a\): wait .* or cancel it"):
        jobs.start_training(sim_ws, datasets=DATASETS, preset="quick", overrides=SMALL)
    with pytest.raises(WorkspaceError, match="already running"):
        jobs.resume_training(sim_ws, "a")
    wait_for(sim_ws, "a", {"running"}, until=lambda s: s["epoch"] >= 1)
    assert "after the current epoch" in jobs.cancel_training(sim_ws, "a")
    status = wait_for(sim_ws, "a", {"stopped", "completed"}, until=lambda s: s["resumable"])
    assert status["state"] == "stopped" and status["epoch"] < 20
    assert jobs.running_training(sim_ws) is None
    with pytest.raises(WorkspaceError, match="not running"):
        jobs.cancel_training(sim_ws, "a")

    assert jobs.resume_training(sim_ws, "a") == "a"
    status = wait_for(sim_ws, "a", {"completed", "failed"})
    assert status["state"] == "completed", status
    assert list(get_run(sim_ws, "a").losses()["epoch"]) == list(range(1, 21))
    assert jobs.read_log(sim_ws, "a", lines=10_000).count("\n--- ") == 1  # start + resume
    with pytest.raises(WorkspaceError, match="already completed"):
        jobs.resume_training(sim_ws, "a")
    with pytest.raises(WorkspaceError, match="already exists"):
        jobs.start_training(sim_ws, datasets=DATASETS, preset="quick", run_name="a")


def test_cancel_while_preparing_ends_the_process(sim_ws):
    name = jobs.start_training(
        sim_ws, datasets=DATASETS, preset="quick", overrides={"n_genes": 120}, run_name="early"
    )
    assert jobs.training_status(sim_ws, name)["state"] == "starting"
    assert "before its training started" in jobs.cancel_training(sim_ws, name)
    status = wait_for(sim_ws, name, {"cancelled", "failed", "completed", "stopped"})
    assert status["state"] == "cancelled" and not status["resumable"]
    assert jobs.running_training(sim_ws) is None
    assert not (sim_ws.runs_dir / name / "config.json").exists()


def test_a_training_that_fails_in_the_background_shows_why(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    fill_demo(ws, prefer_simulated=True)
    ws.dataset_path(DATASETS[0]).write_bytes(b"this is not an h5ad file")
    name = jobs.start_training(ws, datasets=DATASETS, preset="quick", overrides=SMALL)
    status = wait_for(ws, name, {"failed", "completed", "stopped", "cancelled"}, timeout=120)
    assert status["state"] == "failed"
    # The CLI's one-line message (here h5py's complaint about the file), not a traceback.
    assert "file signature not found" in status["error"]
    assert f"error: {status['error']}" in jobs.read_log(ws, name)
    row = runs_overview(ws).set_index("Run").loc[name]
    assert row["State"] == "failed" and row["Message"] == status["error"]


def test_a_recycled_pid_is_not_taken_for_the_job():
    from musegnn_core.runs import process_start

    me = {"pid": os.getpid(), "process_start": process_start(os.getpid()), "returncode": None}
    assert jobs.job_alive(me)
    assert not jobs.job_alive({**me, "process_start": "another-boot:12345"})
    assert not jobs.job_alive({**me, "returncode": 0})
    assert not jobs.job_alive(None)
