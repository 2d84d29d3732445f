"""Background training that outlives the page that started it.

A training started from the app is a separate ``python -m musegnn_core train`` process,
detached from the app (its own session, stdin closed), so reloading the page, closing
the browser or restarting the app server never stops it. The CLI and the pages run the
same command and build the same configuration (:func:`make_train_config`).

Besides the run folder (``runs/<run>/``, written by :mod:`musegnn_core.train`), each
background job leaves two files::

    jobs/<run>.json   the command, pid (with the process start time, so a recycled pid
                      is never mistaken for the training), start time, exit status
    jobs/<run>.log    everything the process printed: progress lines and, when it
                      fails, the one-line ``error: ...`` message

They live outside the run folder because a run folder only appears once the graphs are
built, and a training that fails before that (a bad dataset file, no shared genes) must
still show why. :func:`training_status` merges both into the state the pages show.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import settings
from .errors import ValidationError, WorkspaceError
from .paths import PROJECT_ROOT
from .runs import (
    Run,
    check_run_name,
    list_runs,
    new_run_name,
    process_start,
    run_folder,
    same_process_alive,
)
from .storage import atomic_write_json, file_lock, read_json
from .workspace import Workspace, now_iso

#: The settings a training accepts besides preset and datasets (defined in settings.py).
SETTINGS = settings.SETTINGS
LOG_TAIL_LINES = 30

_EPOCH_LINE = re.compile(r": epoch (\d+)/(\d+): (.*?); ")


# ------------------------------------------------------------------ configuration
def device_description() -> str:
    """Where training would run with ``device='auto'``, e.g. 'CUDA: NVIDIA H100 80GB'."""
    import torch

    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return f"CPU ({cores} core{'s' if cores != 1 else ''})"


def available_devices() -> list[str]:
    """Device choices that can work here: auto and cpu, plus cuda when a GPU is present."""
    import torch

    return [d for d in settings.DEVICES if d != "cuda" or torch.cuda.is_available()]


def make_train_config(preset: str = "quick", overrides: Mapping[str, Any] | None = None):
    """The TrainConfig of ``preset`` with ``overrides`` (flat names of :data:`SETTINGS`).

    Every out-of-range value raises ValidationError here, before any process starts.
    """
    config = settings.make_config(preset, **dict(overrides or {}))
    if config.device == "cuda":
        from .graphs.build import resolve_device

        resolve_device("cuda")  # a clear message now, not a crash in the background
    return config


config_settings = settings.config_values
preset_settings = settings.preset_values
preset_summary = settings.preset_summary


def train_command(
    workspace: Workspace, run_name: str, preset: str, datasets: Sequence[str], config
) -> list[str]:
    """The ``python -m musegnn_core train`` command line that trains ``config``.

    Every setting is spelled out, so the process builds exactly this configuration.
    """
    argv = [sys.executable, "-m", "musegnn_core", "train", "--workspace", str(workspace.root)]
    argv += ["--run-name", run_name, "--preset", preset, "--datasets", ",".join(datasets)]
    for name, value in config_settings(config).items():
        text = ",".join(value) if isinstance(value, tuple) else repr(value)
        argv += [SETTINGS[name].meta.flag, value if isinstance(value, str) else text]
    return argv


# ------------------------------------------------------------------ job records
def jobs_dir(workspace: Workspace) -> Path:
    return workspace.root / "jobs"


def job_record_path(workspace: Workspace, run_name: str) -> Path:
    return jobs_dir(workspace) / f"{check_run_name(run_name)}.json"


def job_log_path(workspace: Workspace, run_name: str) -> Path:
    return jobs_dir(workspace) / f"{check_run_name(run_name)}.log"


def _jobs_lock(workspace: Workspace):
    return file_lock(jobs_dir(workspace) / ".lock")


def read_job(workspace: Workspace, run_name: str) -> dict | None:
    return read_json(job_record_path(workspace, run_name), None)


def _update_job(workspace: Workspace, run_name: str, **fields) -> None:
    with _jobs_lock(workspace):
        record = read_job(workspace, run_name)
        if record is not None:
            atomic_write_json(job_record_path(workspace, run_name), {**record, **fields})


def job_alive(record: dict | None) -> bool:
    """Whether the job's process is still running (and is the process the job started)."""
    if not record or record.get("returncode") is not None:
        return False
    return same_process_alive(record.get("pid"), record.get("process_start"))


def _all_jobs(workspace: Workspace) -> list[dict]:
    records = [read_json(p, None) for p in jobs_dir(workspace).glob("*.json")]
    return sorted((r for r in records if r), key=lambda r: r.get("started_at", ""), reverse=True)


def running_training(workspace: Workspace) -> str | None:
    """The name of the run being trained in this workspace, or None.

    Jobs started here are found by their live process; a training started directly from
    the command line by its run's status (``Run.status`` reads a dead pid as stopped).
    """
    for record in _all_jobs(workspace):
        # A process that has just written its final state may take a moment to exit.
        if job_alive(record) and training_status(workspace, record["run"])["state"] in (
            "starting",
            "running",
        ):
            return record["run"]
    for run in list_runs(workspace):
        if run.status().get("state") == "running":
            return run.name
    return None


def _refuse_if_running(workspace: Workspace) -> None:
    name = running_training(workspace)
    if name is None:
        with file_lock(workspace.root / "training.lock", blocking=False) as free:
            if free:
                return
    raise WorkspaceError(
        "A training is already running"
        + (f" (run {name})" if name else " (started elsewhere, e.g. from the command line)")
        + ": wait for it to finish or cancel it."
    )


def _reap(process: subprocess.Popen, workspace: Workspace, run_name: str) -> None:
    """Wait for the process (so it never lingers as a zombie) and record its exit status."""
    code = process.wait()
    with contextlib.suppress(OSError):
        _update_job(workspace, run_name, returncode=code, finished_at=now_iso())


def _spawn(workspace: Workspace, run_name: str, argv: list[str], kind: str) -> None:
    folder = jobs_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = job_log_path(workspace, run_name)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    started = now_iso()
    with open(log_path, "ab") as log:
        log.write(f"--- {started} {kind}: {shlex.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,  # no signal from the app's terminal or group reaches it
            close_fds=True,
        )
    atomic_write_json(
        job_record_path(workspace, run_name),
        {
            "run": run_name,
            "kind": kind,
            "pid": process.pid,
            "process_start": process_start(process.pid),
            "command": argv,
            "started_at": started,
            "log": str(log_path),
            "returncode": None,
        },
    )
    threading.Thread(
        target=_reap, args=(process, workspace, run_name), daemon=True, name=f"reap-{run_name}"
    ).start()


# ------------------------------------------------------------------ the actions
def start_training(
    workspace: Workspace,
    *,
    datasets: Sequence[str] | None,
    preset: str,
    overrides: Mapping[str, Any] | None = None,
    run_name: str | None = None,
) -> str:
    """Start a training in the background; returns the run name at once.

    All parameters are checked here (ValidationError / WorkspaceError), so a bad value is
    reported to the caller instead of failing in the background. Refused while another
    training runs in this workspace.
    """
    config = make_train_config(preset, overrides)
    if datasets is not None and not list(datasets):
        raise ValidationError("Choose at least one dataset to train on.")
    names = list(dict.fromkeys(datasets)) if datasets is not None else workspace.dataset_names()
    if not names:
        raise ValidationError("The workspace has no datasets: import some on the Data page.")
    for name in names:
        workspace.dataset(name)  # a readable error naming the known datasets
    with _jobs_lock(workspace):
        _refuse_if_running(workspace)
        name = check_run_name(run_name.strip()) if run_name else _new_name(workspace, preset)
        run = run_folder(workspace, name)
        if (run.root.exists() and any(run.root.iterdir())) or job_record_path(
            workspace, name
        ).exists():
            raise WorkspaceError(
                f"A run named {name!r} already exists: choose another name or resume it."
            )
        _spawn(workspace, name, train_command(workspace, name, preset, names, config), "start")
    return name


def _new_name(workspace: Workspace, preset: str) -> str:
    """A fresh ``preset-date`` name, also unused by jobs that failed before their run existed."""
    name = new_run_name(workspace, preset)
    base, i = name, 1
    while job_record_path(workspace, name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def resume_training(workspace: Workspace, run_name: str) -> str:
    """Continue a stopped (or crashed) run from its last checkpoint, in the background."""
    from .runs import get_run

    status = training_status(workspace, run_name)
    if status["state"] in ("running", "starting"):
        raise WorkspaceError(f"Run {run_name} is already running.")
    run = get_run(workspace, run_name)
    if status["state"] == "completed":
        raise WorkspaceError(f"Run {run_name} is already completed: there is nothing to resume.")
    if not run.checkpoint_path.exists():
        raise WorkspaceError(
            f"Run {run_name} has no checkpoint to resume from: start a new run instead."
        )
    train = run.config().get("train", {})
    argv = [
        sys.executable,
        "-m",
        "musegnn_core",
        "train",
        "--workspace",
        str(workspace.root),
        "--run-name",
        run.name,
        "--resume",
        "--preset",
        train.get("preset", "quick"),
        "--epochs",
        str(train.get("epochs")),  # continue to the run's own end, not the preset's
    ]
    with _jobs_lock(workspace):
        _refuse_if_running(workspace)
        _spawn(workspace, run.name, argv, "resume")
    return run.name


def cancel_training(workspace: Workspace, run_name: str) -> str:
    """Ask a running training to stop; returns what happens, in words.

    In the training loop this writes the run's STOP file: the run stops after the current
    epoch with a checkpoint, and can be resumed. A job still preparing its graphs has no
    run to stop yet, so its process is terminated (nothing half-written is kept).
    """
    with _jobs_lock(workspace):
        status = training_status(workspace, run_name)
        if status["state"] == "running":
            run_folder(workspace, run_name).request_stop()
            return f"Stopping run {run_name} after the current epoch."
        record = read_job(workspace, run_name)
        if status["state"] == "starting" and job_alive(record):
            atomic_write_json(
                job_record_path(workspace, run_name),
                {**record, "cancelled_at": now_iso()},
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(record["pid"], signal.SIGTERM)
            return f"Cancelled run {run_name} before its training started."
    raise WorkspaceError(f"Run {run_name} is not running (state: {status['state']}).")


# ------------------------------------------------------------------ reading state
def read_log(workspace: Workspace, run_name: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of the job's log ('' when there is none)."""
    path = job_log_path(workspace, run_name)
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    # tqdm-style carriage returns: keep the last state of each line.
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
    return "\n".join(rows[-lines:])


def _last_attempt(workspace: Workspace, run_name: str) -> list[str]:
    """Log lines of the latest start or resume of the run."""
    rows = read_log(workspace, run_name, lines=10**6).splitlines()
    starts = [i for i, row in enumerate(rows) if row.startswith("--- ")]
    return rows[starts[-1] + 1 :] if starts else rows


def _error_line(rows: list[str]) -> str | None:
    """The CLI's one-line ``error:`` message, or the last line of a traceback."""
    errors = [row for row in rows if row.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    if any(row.startswith("Traceback") for row in rows):
        tail = [row for row in rows if row.strip()]
        return tail[-1].strip() if tail else None
    return None


def training_status(workspace: Workspace, run_name: str) -> dict:
    """The state of a run as the pages show it, from its run folder and its job.

    ``state`` is one of ``starting`` (process alive, preparing graphs), ``running``,
    ``stopped``, ``completed``, ``failed``, ``cancelled`` (stopped before its run
    existed) or ``unknown`` (no such run). Also: epoch,
    epochs, losses, seconds_per_epoch, eta_seconds, message, error (the one-line
    reason of a failure), stop_requested, resumable, log_tail.
    """
    check_run_name(run_name)
    run = run_folder(workspace, run_name)
    record = read_job(workspace, run_name)
    status = run.status() if run.status_path.exists() else {}
    alive = job_alive(record)
    # Did the latest job get as far as the training loop (which stamps started_at)?
    reached_loop = bool(status) and (
        record is None or status.get("started_at", "") >= record.get("started_at", "")
    )
    rows = _last_attempt(workspace, run_name) if record else []
    out = {
        "run": run_name,
        "state": status.get("state", "unknown"),
        "epoch": int(status.get("epoch", 0) or 0),
        "epochs": int(
            status.get("epochs", 0)
            or run.config().get("train", {}).get("epochs", 0)
            or _command_options(record).get("--epochs", 0)
        ),
        "losses": status.get("losses", {}),
        "seconds_per_epoch": status.get("seconds_per_epoch"),
        "eta_seconds": status.get("eta_seconds"),
        "message": status.get("note") or status.get("message", ""),
        "error": None,
        "stop_requested": run.stop_requested(),
        "log_tail": "\n".join(rows[-LOG_TAIL_LINES:]),
    }
    if alive and not reached_loop:
        progress = [row for row in rows if row.strip()]
        out["state"] = "starting"
        # The CLI's last line, e.g. "building graphs" (cached graphs load in seconds).
        step = progress[-1].split(": ", 1)[-1] if progress else "starting the training process"
        out["message"] = ("resuming: " if record.get("kind") == "resume" else "preparing: ") + step
    elif record and not alive:
        error = _error_line(rows)
        if not reached_loop:
            # The latest attempt ended before training: it failed or was cancelled.
            if record.get("cancelled_at"):
                out["message"] = "cancelled before training started"
                out["state"] = status.get("state", "cancelled")
            else:
                out["error"] = error or (
                    f"the training process exited with status {record.get('returncode')} "
                    "before training started; see the log"
                )
                if not status:
                    out["state"] = "failed"
        elif out["state"] == "failed":
            out["error"] = error or out["message"]
    elif not record and not status:
        out["state"] = "unknown"
    out["resumable"] = (
        out["state"] in ("stopped", "failed") and not alive and run.checkpoint_path.exists()
    )
    return out


def loss_curve(workspace: Workspace, run_name: str) -> pd.DataFrame:
    """Loss terms per epoch as far as known now: the checkpointed ``losses.csv``, then the
    progress lines of the log and the latest epoch in the status (both newer than the
    last checkpoint while a run is training). Columns: epoch and one per loss term."""
    from .train import LOSS_TERMS

    run = run_folder(workspace, run_name)
    frames = [run.losses()]
    rows = []
    for line in read_log(workspace, run_name, lines=10**6).splitlines():
        match = _EPOCH_LINE.search(line)
        if match:
            terms = dict(
                (part.split(" ")[0], float(part.split(" ")[1]))
                for part in match.group(3).split(", ")
                if part.count(" ") == 1
            )
            rows.append({"epoch": int(match.group(1)), **terms})
    status = run.raw_status()
    if status.get("losses") and status.get("epoch"):
        rows.append({"epoch": int(status["epoch"]), **status["losses"]})
    frames.append(pd.DataFrame(rows))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["epoch", *LOSS_TERMS])
    table = pd.concat(frames, ignore_index=True)
    table = table.drop_duplicates("epoch", keep="first").sort_values("epoch")
    return table[["epoch", *(t for t in LOSS_TERMS if t in table)]].reset_index(drop=True)


def _command_options(record: dict | None) -> dict[str, str]:
    """``--option value`` pairs of a job's command line."""
    command = (record or {}).get("command", [])
    return {
        flag: value
        for flag, value in zip(command, [*command[1:], ""], strict=True)
        if flag.startswith("--")
    }


def _when(stamp: str | None) -> str:
    return (stamp or "")[:16].replace("T", " ")


def runs_overview(workspace: Workspace) -> pd.DataFrame:
    """One row per run (and per job that failed before its run existed), newest first:
    state, preset, device, datasets, epochs, creation time, key evaluation metrics."""
    rows = []
    seen = set()
    for run in list_runs(workspace):
        seen.add(run.name)
        config, status = run.config(), training_status(workspace, run.name)
        train = config.get("train", {})
        device = config.get("device", "")
        if config.get("device_name") and config.get("device_name") != "CPU":
            device = f"{device} ({config['device_name']})"
        row = {
            "Run": run.name,
            "State": status["state"],
            "Preset": train.get("preset", ""),
            "Device": device,
            "Datasets": len(config.get("datasets", [])),
            "Dataset names": ", ".join(config.get("datasets", [])),
            "Epochs": f"{status['epoch']}/{status['epochs']}",
            "Created": _when(config.get("created_at")),
            "Message": status["error"] or status["message"],
            "Resumable": status["resumable"],
        }
        row.update(key_metrics(run))
        rows.append(row)
    for record in _all_jobs(workspace):
        name = record.get("run")
        if not name or name in seen:
            continue
        status = training_status(workspace, name)
        value = _command_options(record)
        datasets = [d for d in value.get("--datasets", "").split(",") if d]
        rows.append(
            {
                "Run": name,
                "State": status["state"],
                "Preset": value.get("--preset", ""),
                "Device": value.get("--device", ""),
                "Datasets": len(datasets),
                "Dataset names": ", ".join(datasets),
                "Epochs": f"0/{value.get('--epochs', '?')}",
                "Created": _when(record.get("started_at")),
                "Message": status["error"] or status["message"],
                "Resumable": False,
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values("Created", ascending=False, kind="stable")
        # The long list of dataset names last, so the state and scores stay in view.
        last = ["Message", "Dataset names", "Resumable"]
        table = table[[c for c in table.columns if c not in last] + last]
    return table.reset_index(drop=True)


#: Evaluation metrics shown in run tables: key in evaluation.json -> column label.
KEY_METRICS = {"mean_of_six": "Mean of six metrics", "auc": "Edge AUC", "asw": "ASW"}


def key_metrics(run: Run) -> dict[str, float]:
    """The run's own scores from its evaluation (empty when it was not evaluated)."""
    table = run.evaluation()
    if table is None or "musegnn" not in table:
        return {}
    column = table["musegnn"]
    return {
        label: round(float(column[key]), 3)
        for key, label in KEY_METRICS.items()
        if key in column and pd.notna(column[key])
    }
