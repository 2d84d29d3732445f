"""Background jobs that outlive the page that started them: trainings and evaluations.

A job started from the app is a separate ``python -m musegnn_core`` process, detached
from the app (its own session, stdin closed), so reloading the page, closing the browser
or restarting the app server never stops it.

A training is handed over as data: the app writes the run's configuration to
``jobs/<run>.config.json`` and starts ``train --config FILE``; the trainer reports every
epoch and phase as a JSON line in ``runs/<run>/progress.jsonl`` (:mod:`.progress`), which
:func:`training_status` and :func:`loss_curve` read. Each job also leaves (paths on
:class:`~musegnn_core.workspace.Workspace`)::

    jobs/<run>.json            the command, pid (with the process start time, so a
                               recycled pid is never mistaken for the job), start time,
                               exit status
    jobs/<run>.log             everything the process printed (for people; the pages read
                               it only for the error of a process that died before its
                               run could record one)
    jobs/evaluate/<run>.*      the same for an evaluation of the run

Display tables built from these states live with the pages (``pages/ui/runs.py``).
"""

from __future__ import annotations

import contextlib
import os
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
from .progress import TERMINAL_PHASES, latest_attempt, loss_rows, read_events
from .runs import (
    check_run_name,
    get_run,
    list_runs,
    new_run_name,
    pid_alive,
    process_start,
    run_folder,
    same_process_alive,
)
from .storage import TMP_PREFIX, atomic_write_json, file_lock, read_json
from .threads import THREADS_ENV, usable_cores
from .workspace import Workspace, now_iso

#: The settings a training accepts besides preset and datasets (defined in settings.py).
SETTINGS = settings.SETTINGS
LOG_TAIL_LINES = 30
KINDS = ("train", "evaluate")


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
        from .device import resolve_device

        resolve_device("cuda")  # a clear message now, not a crash in the background
    return config


def gpu_count() -> int:
    """How many CUDA GPUs torch sees here (0 without CUDA)."""
    import torch

    return int(torch.cuda.device_count())


def check_processes(processes: int) -> int:
    """``processes`` within the launch setting's bounds (ValidationError otherwise)."""
    return settings.LaunchConfig(processes=processes).processes


def torchrun_command() -> list[str]:
    """PyTorch's ``torchrun`` of this interpreter's environment (the script beside
    ``sys.executable``; its module where the script is missing)."""
    script = Path(sys.executable).with_name("torchrun")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "torch.distributed.run"]


def launch_command(arguments: Sequence[str], processes: int = 1) -> list[str]:
    """The command that runs ``musegnn_core train ARGUMENTS`` in ``processes`` processes.

    One: the plain ``python -m musegnn_core train ...``. More: the command of README
    ("Training on several GPUs"), ``torchrun --standalone --nproc-per-node N -m
    musegnn_core train ... --distributed``, one process per GPU on this machine.
    """
    processes = check_processes(processes)
    train = ["-m", "musegnn_core", "train", *arguments]
    if processes == 1:
        return [sys.executable, *train]
    return [
        *torchrun_command(),
        "--standalone",
        "--nproc-per-node",
        str(processes),
        *train,
        "--distributed",
    ]


def launch_environment(processes: int) -> dict[str, str]:
    """Environment for the launched processes: with several, each one's share of the
    cores for its CPU threads (``MUSEGNN_THREADS``; see musegnn_core.threads)."""
    if check_processes(processes) == 1:
        return {}
    return {THREADS_ENV: str(max(1, usable_cores() // processes))}


def train_command(
    workspace: Workspace,
    run_name: str,
    config_file: Path | None = None,
    *,
    processes: int = 1,
    resume: bool = False,
) -> list[str]:
    """The command that trains the configuration file (or resumes the run) in
    ``processes`` processes (:func:`launch_command`)."""
    arguments = ["--workspace", str(workspace.root), "--run-name", run_name]
    if resume:
        arguments.append("--resume")
    if config_file is not None:
        arguments += ["--config", str(config_file)]
    return launch_command(arguments, processes)


def check_launch(device: str, processes: int) -> int:
    """The number of processes, refused when it asks for more GPUs than this machine has
    (on ``device`` cpu, or without CUDA, they are CPU processes)."""
    processes = check_processes(processes)
    gpus = gpu_count()
    if processes > 1 and device != "cpu" and gpus and processes > gpus:
        raise ValidationError(
            f"{processes} processes need {processes} GPUs; this machine has {gpus}."
        )
    return processes


# ------------------------------------------------------------------ job records
def job_record_path(workspace: Workspace, run_name: str, kind: str = "train") -> Path:
    return workspace.job_path(check_run_name(run_name), ".json", kind)


def job_log_path(workspace: Workspace, run_name: str, kind: str = "train") -> Path:
    return workspace.job_path(check_run_name(run_name), ".log", kind)


def job_config_path(workspace: Workspace, run_name: str) -> Path:
    return workspace.job_path(check_run_name(run_name), ".config.json")


def _jobs_lock(workspace: Workspace):
    return file_lock(workspace.jobs_dir / ".lock")


def read_job(workspace: Workspace, run_name: str, kind: str = "train") -> dict | None:
    return read_json(job_record_path(workspace, run_name, kind), None)


def read_job_config(workspace: Workspace, run_name: str) -> dict:
    """What the app asked a training for: ``datasets`` and ``train`` (a TrainConfig dict)."""
    return read_json(job_config_path(workspace, run_name), {}) or {}


def _update_job(workspace: Workspace, run_name: str, kind: str, **fields) -> None:
    with _jobs_lock(workspace):
        record = read_job(workspace, run_name, kind)
        if record is not None:
            atomic_write_json(job_record_path(workspace, run_name, kind), {**record, **fields})


def job_alive(record: dict | None) -> bool:
    """Whether the job's process is still running (and is the process the job started)."""
    if not record or record.get("returncode") is not None:
        return False
    return same_process_alive(record.get("pid"), record.get("process_start"))


def all_jobs(workspace: Workspace, kind: str = "train") -> list[dict]:
    """The records of every job of a kind, newest first."""
    folder = workspace.jobs_dir if kind == "train" else workspace.jobs_dir / kind
    records = [
        read_json(p, None)
        for p in folder.glob("*.json")
        # Not a record being written (atomic_path's temporary file, also *.json).
        if ".config" not in p.suffixes and not p.name.startswith(TMP_PREFIX)
    ]
    return sorted((r for r in records if r), key=lambda r: r.get("started_at", ""), reverse=True)


def running_training(workspace: Workspace) -> str | None:
    """The name of the run being trained in this workspace, or None.

    Jobs started here are found by their live process; a training started directly from
    the command line by its run's status (``Run.status`` reads a dead pid as stopped).
    """
    for record in all_jobs(workspace):
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
        with file_lock(workspace.training_lock_path, blocking=False) as free:
            if free:
                return
    raise WorkspaceError(
        "A training is already running"
        + (f" (run {name})" if name else " (started elsewhere, e.g. from the command line)")
        + ": wait for it to finish or cancel it."
    )


def _reap(process: subprocess.Popen, workspace: Workspace, run_name: str, kind: str) -> None:
    """Wait for the process (so it never lingers as a zombie) and record its exit status."""
    code = process.wait()
    with contextlib.suppress(OSError):
        _update_job(workspace, run_name, kind, returncode=code, finished_at=now_iso())


def _spawn(
    workspace: Workspace,
    run_name: str,
    argv: list[str],
    kind: str,
    action: str,
    processes: int = 1,
) -> None:
    log_path = job_log_path(workspace, run_name, kind)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **launch_environment(processes),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    started = now_iso()
    with open(log_path, "ab") as log:
        log.write(f"--- {started} {action}: {shlex.join(argv)}\n".encode())
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
        job_record_path(workspace, run_name, kind),
        {
            "run": run_name,
            "kind": action,
            "pid": process.pid,
            "process_start": process_start(process.pid),
            "command": argv,
            "processes": processes,
            "started_at": started,
            "log": str(log_path),
            "returncode": None,
        },
    )
    threading.Thread(
        target=_reap,
        args=(process, workspace, run_name, kind),
        daemon=True,
        name=f"reap-{kind}-{run_name}",
    ).start()


# ------------------------------------------------------------------ the actions
def start_training(
    workspace: Workspace,
    *,
    datasets: Sequence[str] | None,
    preset: str,
    overrides: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    processes: int = settings.LAUNCH_SETTINGS["processes"].default,
) -> str:
    """Start a training in the background; returns the run name at once.

    ``processes`` above one trains under torchrun, one process per GPU
    (:func:`launch_command`). All parameters are checked here (ValidationError /
    WorkspaceError), so a bad value is reported to the caller instead of failing in the
    background. Refused while another training runs in this workspace.
    """
    config = make_train_config(preset, overrides)
    processes = check_launch(config.device, processes)
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
        if run.config_path.exists() or job_record_path(workspace, name).exists():
            raise WorkspaceError(
                f"A run named {name!r} already exists: choose another name or resume it."
            )
        config_file = job_config_path(workspace, name)
        config_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config_file, {"datasets": names, "train": config.to_dict()})
        argv = train_command(workspace, name, config_file, processes=processes)
        _spawn(workspace, name, argv, "train", "start", processes)
    return name


def _new_name(workspace: Workspace, preset: str) -> str:
    """A fresh ``preset-date`` name, also unused by jobs that failed before their run existed."""
    name = new_run_name(workspace, preset)
    base, i = name, 1
    while job_record_path(workspace, name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def resume_training(
    workspace: Workspace,
    run_name: str,
    processes: int = settings.LAUNCH_SETTINGS["processes"].default,
) -> str:
    """Continue a stopped (or crashed) run from its last checkpoint, in the background,
    with its own settings (musegnn_core.train.resumed_config), in ``processes``
    processes (any number: the run does not depend on it)."""
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
    processes = check_launch(run.config().get("train", {}).get("device", "auto"), processes)
    argv = train_command(workspace, run.name, resume=True, processes=processes)
    with _jobs_lock(workspace):
        _refuse_if_running(workspace)
        _spawn(workspace, run.name, argv, "train", "resume", processes)
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


def start_evaluation(
    workspace: Workspace,
    run_name: str,
    baselines: Sequence[str] | None = None,
    gene_set_paths: Sequence[str] | None = None,
) -> str:
    """Evaluate a finished run against the baselines in the background (``evaluate``).

    Like a training, it goes on when the page is left or reloaded; one evaluation of a
    run at a time. The result is the run's ``evaluation.json``.
    """
    run = get_run(workspace, run_name)
    if not run.embeddings_path.exists():
        raise ValidationError(f"Run {run_name} has no embeddings yet: finish it first.")
    argv = [sys.executable, "-m", "musegnn_core", "evaluate", "--workspace", str(workspace.root)]
    argv += ["--run", run.name]
    if baselines is not None:
        argv += ["--baselines", ",".join(baselines)]
    if gene_set_paths is not None:
        argv += ["--gene-sets", *map(str, gene_set_paths)]
    with _jobs_lock(workspace):
        if job_alive(read_job(workspace, run.name, "evaluate")):
            raise WorkspaceError(f"Run {run_name} is already being evaluated.")
        _spawn(workspace, run.name, argv, "evaluate", "evaluate")
    return run.name


def evaluation_status(workspace: Workspace, run_name: str) -> dict:
    """``state``: ``none`` (never started here), ``running``, ``done`` or ``failed``
    (with ``error``); ``started_at``."""
    record = read_job(workspace, run_name, "evaluate")
    if record is None:
        return {"state": "none", "error": None, "started_at": None}
    out = {"state": "running", "error": None, "started_at": record.get("started_at")}
    if job_alive(record):
        return out
    if record.get("returncode") == 0 or (
        record.get("returncode") is None
        and run_folder(workspace, run_name).evaluation_path.exists()
    ):
        out["state"] = "done"
        return out
    out["state"] = "failed"
    out["error"] = _error_line(_last_attempt(workspace, run_name, "evaluate")) or (
        f"the evaluation process exited with status {record.get('returncode')}; see the log"
    )
    return out


# ------------------------------------------------------------------ reading state
def read_log(
    workspace: Workspace, run_name: str, lines: int = LOG_TAIL_LINES, kind: str = "train"
) -> str:
    """The last ``lines`` lines of the job's log ('' when there is none)."""
    path = job_log_path(workspace, run_name, kind)
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    # tqdm-style carriage returns: keep the last state of each line.
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
    return "\n".join(rows[-lines:])


def _last_attempt(workspace: Workspace, run_name: str, kind: str = "train") -> list[str]:
    """Log lines of the latest start or resume of the job."""
    rows = read_log(workspace, run_name, lines=10**6, kind=kind).splitlines()
    starts = [i for i, row in enumerate(rows) if row.startswith("--- ")]
    return rows[starts[-1] + 1 :] if starts else rows


def _error_line(rows: list[str]) -> str | None:
    """The CLI's one-line ``error:`` message, or the last line of a traceback: the reason of
    a process that died before its run could record one (a bad workspace, a crash)."""
    errors = [row for row in rows if row.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    if any(row.startswith("Traceback") for row in rows):
        tail = [row for row in rows if row.strip()]
        return tail[-1].strip() if tail else None
    return None


#: What each phase of a training is doing, in words.
PHASE_TEXT = {
    "graphs": "building graphs",
    "training": "training",
    "embedding": "computing embeddings, UMAP and clusters",
    "done": "completed",
    "stopped": "stopped",
    "failed": "failed",
}


def training_status(workspace: Workspace, run_name: str) -> dict:
    """The state of a run as the pages show it, from its run folder, its progress events
    and its job.

    ``state`` is one of ``starting`` (process alive, preparing graphs), ``running``,
    ``stopped``, ``completed``, ``failed``, ``cancelled`` (stopped before its run
    existed) or ``unknown`` (no such run). ``phase`` is the latest progress phase
    (``graphs``, ``training``, ``embedding``, ...). Also: epoch, epochs, losses,
    seconds_per_epoch, eta_seconds, message, error (the one-line reason of a failure),
    stop_requested, resumable, log_tail.
    """
    check_run_name(run_name)
    run = run_folder(workspace, run_name)
    record = read_job(workspace, run_name)
    status = run.status() if run.status_path.exists() else {}
    attempt = latest_attempt(read_events(run.progress_path))
    if record and attempt and attempt[0].get("time", "") < record.get("started_at", ""):
        attempt = []  # the job's own attempt has not reported yet
    last = attempt[-1] if attempt else {}
    phase = last.get("phase", "")
    # The job's process, or the process that wrote the latest events (a command-line run).
    alive = job_alive(record) or (phase not in TERMINAL_PHASES and pid_alive(last.get("pid")))
    rows = _last_attempt(workspace, run_name) if record else []
    epochs = (
        status.get("epochs")
        or run.config().get("train", {}).get("epochs")
        or read_job_config(workspace, run_name).get("train", {}).get("epochs")
        or 0
    )
    out = {
        "run": run_name,
        "state": status.get("state", "unknown"),
        "phase": phase,
        "epoch": int(status.get("epoch", 0) or 0),
        "epochs": int(epochs),
        "losses": status.get("losses", {}),
        "seconds_per_epoch": status.get("seconds_per_epoch"),
        "eta_seconds": status.get("eta_seconds"),
        "message": status.get("note") or status.get("message", ""),
        "error": None,
        "stop_requested": run.stop_requested(),
        "log_tail": "\n".join(rows[-LOG_TAIL_LINES:]),
    }
    resuming = (record or {}).get("kind") == "resume" or last.get("attempt") == "resume"
    if phase == "failed":
        out["error"] = last.get("message") or "failed"
        # A resume that failed before training leaves the run as it was (stopped).
        if not status or any(e["phase"] == "training" for e in attempt):
            out["state"] = "failed"
    elif alive and phase in ("", "graphs"):
        out["state"] = "starting"
        step = PHASE_TEXT["graphs"] if phase else "starting the training process"
        out["message"] = ("resuming: " if resuming else "preparing: ") + step
    elif phase == "embedding" and out["state"] == "running":
        out["message"] = PHASE_TEXT["embedding"]
    elif record and not alive and phase in ("", "graphs"):
        # The latest attempt ended before training: cancelled, or it failed.
        if record.get("cancelled_at"):
            out["message"] = "cancelled before training started"
            out["state"] = status.get("state", "cancelled")
        else:
            out["error"] = _error_line(rows) or (
                f"the training process exited with status {record.get('returncode')} "
                "before training started; see the log"
            )
            if not status:
                out["state"] = "failed"
    elif out["state"] == "failed":
        out["error"] = out["message"]
    if out["state"] == "unknown" and (record or attempt):
        out["state"] = "failed" if not alive else "starting"
    out["resumable"] = (
        out["state"] in ("stopped", "failed") and not alive and run.checkpoint_path.exists()
    )
    return out


def loss_curve(workspace: Workspace, run_name: str) -> pd.DataFrame:
    """Loss terms per epoch as far as known now, from the run's progress events (every
    epoch, also after the run ended); ``losses.csv`` for runs trained before progress
    events existed. Columns: epoch and one per loss term."""
    from .train import LOSS_TERMS

    run = run_folder(workspace, run_name)
    rows = loss_rows(read_events(run.progress_path))
    table = pd.DataFrame(rows) if rows else run.losses()
    if table.empty:
        return pd.DataFrame(columns=["epoch", *LOSS_TERMS])
    table = table.drop_duplicates("epoch", keep="last").sort_values("epoch")
    return table[["epoch", *(t for t in LOSS_TERMS if t in table)]].reset_index(drop=True)
