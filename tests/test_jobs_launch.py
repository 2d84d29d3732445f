"""Launching a training in N processes: one plain process, or torchrun with one per GPU.

No GPU and no real training: the command is checked as built, and the job's process is
replaced by a stand-in that records what it was given.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from musegnn_core import jobs
from musegnn_core.data.demo import fill_demo
from musegnn_core.errors import ValidationError
from musegnn_core.settings import LAUNCH_SETTINGS, MAX_PROCESSES, LaunchConfig
from musegnn_core.workspace import Workspace
from tests.factories import open_app_page

TRAIN = "pages/2_Train.py"


def test_one_process_is_the_plain_command(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    config = tmp_path / "run.config.json"
    command = jobs.train_command(ws, "r", config)
    assert command == [
        sys.executable,
        "-m",
        "musegnn_core",
        "train",
        "--workspace",
        str(ws.root),
        "--run-name",
        "r",
        "--config",
        str(config),
    ]
    assert jobs.train_command(ws, "r", config, processes=1) == command
    assert jobs.launch_environment(1) == {}


def test_two_processes_are_the_readme_torchrun_command(tmp_path, monkeypatch):
    ws = Workspace.open(tmp_path / "ws")
    config = tmp_path / "run.config.json"
    command = jobs.train_command(ws, "r", config, processes=2)
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = (
        [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    )
    assert command == [
        *launcher,
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "musegnn_core",
        "train",
        "--workspace",
        str(ws.root),
        "--run-name",
        "r",
        "--config",
        str(config),
        "--distributed",
    ]
    resume = jobs.train_command(ws, "r", resume=True, processes=2)
    assert resume[: len(launcher)] == launcher
    assert resume[-3:] == ["r", "--resume", "--distributed"]
    # Each CPU rank gets its share of the cores.
    monkeypatch.setattr(jobs, "usable_cores", lambda: 8)
    assert jobs.launch_environment(2) == {"MUSEGNN_THREADS": "4"}


def test_the_launch_setting_is_declared_once_with_bounds():
    spec = LAUNCH_SETTINGS["processes"]
    assert spec.default == LaunchConfig().processes == 1
    assert (spec.meta.low, spec.meta.high) == (1, MAX_PROCESSES)
    for bad in (0, MAX_PROCESSES + 1, 1.5):
        with pytest.raises(ValidationError, match=r"^processes must be"):
            jobs.launch_command([], bad)


class FakeProcess:
    """Stands in for the training process: records its command and environment, and
    runs (as this process's pid) until the test ends."""

    started: ClassVar[list[dict]] = []
    ended: ClassVar[threading.Event] = threading.Event()

    def __init__(self, argv, **options):
        self.pid = os.getpid()
        FakeProcess.started.append({"argv": list(argv), "env": options.get("env", {})})

    def wait(self):
        FakeProcess.ended.wait()
        return 0


@pytest.fixture(scope="module")
def sim_template(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("launch") / "ws")
    fill_demo(ws, prefer_simulated=True)
    return ws.root


@pytest.fixture
def sim_ws(sim_template, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    shutil.copytree(sim_template, root)
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(root))
    FakeProcess.started = []
    FakeProcess.ended = threading.Event()
    monkeypatch.setattr(jobs.subprocess, "Popen", FakeProcess)
    yield Workspace.open(root)
    FakeProcess.ended.set()


def test_a_job_started_with_two_processes_runs_torchrun(sim_ws, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    name = jobs.start_training(sim_ws, datasets=None, preset="quick", run_name="two", processes=2)
    [started] = FakeProcess.started
    assert started["argv"] == jobs.train_command(
        sim_ws, name, jobs.job_config_path(sim_ws, name), processes=2
    )
    assert "--nproc-per-node" in started["argv"] and started["argv"][-1] == "--distributed"
    assert started["env"]["MUSEGNN_THREADS"] == str(max(1, jobs.usable_cores() // 2))
    record = jobs.read_job(sim_ws, name)
    assert record["processes"] == 2 and record["command"] == started["argv"]
    # More processes than GPUs is refused before anything starts.
    with pytest.raises(ValidationError, match="3 processes need 3 GPUs; this machine has 2"):
        jobs.start_training(sim_ws, datasets=None, preset="quick", run_name="three", processes=3)
    assert len(FakeProcess.started) == 1


def _start_from_page(processes: int | None):
    at = open_app_page(TRAIN)
    if processes is not None:
        at.radio(key="train-processes").set_value(processes)
    at.text_input(key="train-run-name").set_value("page")
    at.button(key="train-start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_the_train_page_offers_n_gpus_on_a_machine_with_several(sim_ws, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    at = open_app_page(TRAIN)
    control = at.radio(key="train-processes")
    assert control.options == ["use 1 GPU", "use 2 GPUs"] and control.value == 1
    assert control.label == LAUNCH_SETTINGS["processes"].meta.label
    _start_from_page(2)
    [started] = FakeProcess.started
    assert started["argv"][started["argv"].index("--nproc-per-node") + 1] == "2"
    assert jobs.read_job(sim_ws, "page")["processes"] == 2


@pytest.mark.parametrize("gpus", [0, 1])
def test_the_train_page_hides_the_control_below_two_gpus(sim_ws, monkeypatch, gpus):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    at = _start_from_page(None)
    assert not [r for r in at.radio if r.key == "train-processes"]
    [started] = FakeProcess.started
    assert started["argv"][:4] == [sys.executable, "-m", "musegnn_core", "train"]
    assert jobs.read_job(sim_ws, "page")["processes"] == 1


def test_a_job_record_being_written_is_not_read(tmp_path):
    """atomic_path's temporary file beside a record ends in .json too, and is empty at first."""
    ws = Workspace.open(tmp_path / "ws")
    ws.jobs_dir.mkdir(parents=True, exist_ok=True)
    (ws.jobs_dir / ".tmp-r.json.x1y2.json").write_text("")
    (ws.jobs_dir / "r.json").write_text('{"run": "r", "started_at": "2026"}')
    assert [record["run"] for record in jobs.all_jobs(ws)] == ["r"]
