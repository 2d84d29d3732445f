"""Crash-safe file writes and a workspace-wide lock.

Every file the workspace owns is written to a temporary file in the same folder,
flushed to disk, then renamed over the target. ``os.replace`` is atomic on POSIX,
so a reader (or a process restarted after a crash) sees either the old file or
the new one, never half of one. Temporary names start with ``.tmp-`` so they are
never mistaken for data and can be swept away.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # The rename itself lives in the directory entry; sync it so it survives power loss.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    If the body raises, the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f"{TMP_PREFIX}{target.name}.", suffix=suffix or target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file; a missing file gives ``default``."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


#: A temporary file untouched for this long has no writer left: it is a crash's leftover.
STALE_AFTER_SECONDS = 3600.0


def remove_stale_temporaries(
    folder: str | os.PathLike, older_than: float = STALE_AFTER_SECONDS
) -> int:
    """Delete leftovers of writes interrupted by a crash. Returns how many were removed.

    Temporary files and temporary folders (an upload's staging folder, the demo's
    scratch folder) go once nothing in them was modified for ``older_than`` seconds:
    another process (a training writing its checkpoint, an upload being staged) may be
    writing a fresh one right now, and removing it would make that write fail.
    """
    import shutil
    import time

    cutoff = time.time() - older_than
    removed = 0
    for path in sorted(Path(folder).rglob(f"{TMP_PREFIX}*")):
        with contextlib.suppress(OSError):
            if path.is_symlink() or not path.exists():
                continue
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
            elif path.is_dir() and _newest_mtime(path) < cutoff:
                shutil.rmtree(path)
                removed += 1
    return removed


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, path.lstat().st_mtime)
    return newest


@contextlib.contextmanager
def file_lock(lock_path: str | os.PathLike, *, blocking: bool = True) -> Iterator[bool]:
    """An advisory ``flock`` on ``lock_path``; the OS releases it when the holder dies.

    Yields True when the lock is held; with ``blocking=False`` yields False instead of
    waiting when another process holds it.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")  # noqa: SIM115 - kept open for the lock's lifetime
    try:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle.fileno(), flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
