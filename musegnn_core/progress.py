"""A run's progress as JSON lines: what the trainer reports, what the pages read.

The trainer appends one line per epoch and per phase to ``runs/<run>/progress.jsonl``
(:class:`ProgressRecorder`, a progress callback), so the app reads structured events
instead of parsing printed output. Each start or resume of a run (an *attempt*) begins
with a ``graphs`` event. A line is written with one ``write`` call in append mode, so a
reader sees whole lines; a torn last line (a crash mid-write) is skipped.

Phases: ``graphs`` (building or loading graphs), ``training`` (one line per epoch, with
the losses), ``embedding`` (embeddings, UMAP and clusters), ``done``, ``stopped``,
``failed`` (with the one-line reason).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import MuseGNNError
from .workspace import now_iso

PROGRESS_FILE = "progress.jsonl"
TERMINAL_PHASES = ("done", "stopped", "failed")


def append_event(path: Path, event: dict[str, Any]) -> None:
    """Append one event as a JSON line (creating the run folder if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_events(path: Path) -> list[dict]:
    """Every whole event of a progress file ([] when there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(event, dict) and "phase" in event:
            events.append(event)
    return events


def latest_attempt(events: list[dict]) -> list[dict]:
    """The events of the latest start or resume (from its ``graphs`` event on)."""
    starts = [i for i, e in enumerate(events) if e["phase"] == "graphs"]
    return events[starts[-1] :] if starts else events


def loss_rows(events: list[dict]) -> list[dict]:
    """One row per epoch (epoch and loss terms); a resumed epoch keeps its latest value."""
    rows: dict[int, dict] = {}
    for event in events:
        if event["phase"] == "training" and event.get("losses"):
            rows[int(event["epoch"])] = {"epoch": int(event["epoch"]), **event["losses"]}
    return [rows[k] for k in sorted(rows)]


class ProgressRecorder:
    """A progress callback that records events in the run's ``progress.jsonl`` and passes
    them on to another callback (the CLI's bar, a page's hook).

    It records once :meth:`attach` has named the run (a refused request, such as a name
    already taken, writes nothing into another run's file), and :meth:`failed` records
    the reason a training ended with an error.
    """

    def __init__(self, forward=None):
        self.forward = forward
        self.path: Path | None = None
        self.run = ""
        self.attempt = "start"

    def attach(self, run_root: Path, *, resumed: bool) -> None:
        self.path = Path(run_root) / PROGRESS_FILE
        self.run = Path(run_root).name
        self.attempt = "resume" if resumed else "start"

    def __call__(self, event) -> None:
        if self.path is not None:
            record = {"time": now_iso(), **asdict(event), "pid": os.getpid()}
            if event.phase == "graphs":
                record["attempt"] = self.attempt
            append_event(self.path, record)
        if self.forward is not None:
            self.forward(event)

    def failed(self, exc: BaseException) -> None:
        if self.path is None:
            return
        reason = str(exc) if isinstance(exc, MuseGNNError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyboardInterrupt):
            reason = "interrupted"
        append_event(
            self.path,
            {"time": now_iso(), "run": self.run, "phase": "failed", "message": reason[:500]},
        )
