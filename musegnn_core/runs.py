"""Training runs on disk: one folder per run that another person can open.

::

    runs/<run>/config.json       every parameter, datasets and graph fingerprints,
                                 software versions, device
               status.json       state (running, stopped, completed, failed), epoch,
                                 pid and heartbeat of the training process
               losses.csv        one row per epoch: each loss term, seconds
               checkpoint.pt     model, optimisers and random states (weights_only-safe)
               embeddings.h5ad   one row per (gene, dataset): embedding, UMAP, Leiden
               progress.jsonl    one JSON line per epoch and per phase of every start or
                                 resume (musegnn_core.progress), read by the app
               STOP              present while a stop has been requested

A process killed without warning (``kill -9``) cannot update ``status.json``; readers
therefore trust a ``running`` state only while its pid is alive and is still the same
process (its start time, recorded beside the pid, tells a recycled pid apart, e.g.
after the machine restarted).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import ValidationError, WorkspaceError
from .storage import atomic_write_json, read_json
from .workspace import Workspace, now_iso

_RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_run_name(name: str) -> str:
    if not _RUN_NAME_RE.match(name or "") or ".." in name:
        raise ValidationError(
            f"Invalid run name {name!r}: use letters, digits, '.', '_' or '-' (max 100)."
        )
    return name


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (finished, not yet reaped) is not training any more. But a killed process
    # shows its main thread as a zombie while its other threads are still exiting, and
    # until the last one is gone its files (and the training lock) are still held.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return len(os.listdir(f"/proc/{pid}/task")) > 1
    return True


def process_start(pid: int | None) -> str | None:
    """Boot id and kernel start time of ``pid`` (Linux); None where unknown.

    Two processes with the same pid never share both, so this names one process across
    pid reuse and reboots.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, ValueError, TypeError, IndexError):
        return None


def same_process_alive(pid: int | None, start: str | None) -> bool:
    """Whether ``pid`` is alive and, when its recorded ``start`` is known, the same process."""
    if not pid_alive(pid):
        return False
    current = process_start(pid) if start else None
    return current is None or current == start


@dataclass
class Run:
    """A run folder."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def status_path(self) -> Path:
        return self.root / "status.json"

    @property
    def losses_path(self) -> Path:
        return self.root / "losses.csv"

    @property
    def checkpoint_path(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def embeddings_path(self) -> Path:
        return self.root / "embeddings.h5ad"

    @property
    def stop_path(self) -> Path:
        return self.root / "STOP"

    @property
    def evaluation_path(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def progress_path(self) -> Path:
        return self.root / "progress.jsonl"

    @property
    def workspace_root(self) -> Path:
        return self.root.parent.parent

    def embedding(self):
        """The joint embedding (AnnData, one row per gene and dataset) of a finished run."""
        import anndata as ad

        if not self.embeddings_path.exists():
            raise ValidationError(
                f"Run {self.name} has no embeddings yet (state: "
                f"{self.status().get('state', 'unknown')}); finish or resume it first."
            )
        return ad.read_h5ad(self.embeddings_path)

    def graphs(self) -> dict:
        """The exact graphs the run was trained on (by fingerprint), by dataset."""
        from .graphs.build import load_graph
        from .workspace import Workspace

        workspace = Workspace(self.workspace_root)
        config = self.config()
        return {
            d: load_graph(workspace, d, f)
            for d, f in zip(config["datasets"], config["graph_fingerprints"], strict=True)
        }

    def trained_resolution(self) -> float:
        """The Leiden resolution of the run's own clusters, as scanpy stores it with them
        (``uns['leiden']['params']['resolution']``), else as the run's settings say."""
        import h5py

        from .settings import DEFAULT_LEIDEN_RESOLUTION

        with (
            contextlib.suppress(OSError, KeyError, TypeError, ValueError),
            h5py.File(self.embeddings_path, "r") as handle,
        ):
            return float(handle["uns/leiden/params/resolution"][()])
        train = self.config().get("train", {})
        return float(train.get("leiden_resolution", DEFAULT_LEIDEN_RESOLUTION))

    def config(self) -> dict:
        return read_json(self.config_path, {})

    def evaluation_record(self) -> dict | None:
        """The saved ``evaluation.json`` (table, rule, timing, ...), or None if absent or invalid."""
        data = read_json(self.evaluation_path, None)
        if not isinstance(data, dict) or not isinstance(data.get("table"), dict):
            return None
        return data

    def evaluation(self) -> pd.DataFrame | None:
        """The saved evaluation (metrics x methods, as ``evaluate`` wrote it), or None."""
        record = self.evaluation_record()
        return None if record is None else pd.DataFrame(record["table"])

    def raw_status(self) -> dict:
        return read_json(self.status_path, {})

    def status(self) -> dict:
        """The status with the true state: a 'running' run whose process died is 'stopped'."""
        status = self.raw_status()
        if status.get("state") == "running" and not same_process_alive(
            status.get("pid"), status.get("pid_start")
        ):
            status = {
                **status,
                "state": "stopped",
                "note": "the training process ended "
                "without finishing (killed or crashed); resume from the last checkpoint",
            }
        return status

    def write_status(self, **fields) -> dict:
        if fields.get("pid") and "pid_start" not in fields:
            fields["pid_start"] = process_start(fields["pid"])
        status = {**self.raw_status(), **fields, "updated_at": now_iso()}
        atomic_write_json(self.status_path, status)
        return status

    def losses(self) -> pd.DataFrame:
        if not self.losses_path.exists():
            return pd.DataFrame()
        return pd.read_csv(self.losses_path)

    def request_stop(self) -> None:
        self.stop_path.touch()

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def clear_stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.stop_path.unlink()


def run_folder(workspace: Workspace, name: str) -> Run:
    return Run(workspace.runs_dir / check_run_name(name))


def get_run(workspace: Workspace, name: str) -> Run:
    run = run_folder(workspace, name)
    if not run.config_path.exists():
        known = ", ".join(r.name for r in list_runs(workspace)) or "none"
        raise WorkspaceError(f"No run named {name!r} in this workspace (runs: {known}).")
    return run


def list_runs(workspace: Workspace) -> list[Run]:
    """Runs with a config, newest first."""
    runs = [Run(p) for p in workspace.runs_dir.glob("*") if (p / "config.json").exists()]
    return sorted(runs, key=lambda r: r.config().get("created_at", ""), reverse=True)


def new_run_name(workspace: Workspace, preset: str) -> str:
    stamp = now_iso().replace(":", "").replace("-", "").replace("+0000", "")
    base = f"{preset}-{stamp}"
    name, i = base, 1
    while (workspace.runs_dir / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name
