"""Read a user's HDF5 file completely in a throw-away process before opening it here.

A damaged HDF5 file can make the HDF5 C library loop forever or crash the process that
reads it. Fuzzing the importers found both: zeroed blocks in a gzip-compressed
``.h5ad`` hang an attribute read, flipped bits in a 10x ``.h5`` segfault. Python cannot
interrupt either, and in the app that process is the server every user shares. So
:func:`check_hdf5` first has a child process (``python -m musegnn_core.data.hdf5_probe
FILE``) touch every attribute and every byte of every dataset, under a time limit; only a
file the child survived is then read in-process by the readers.

The child also refuses links that would make the import read *another* file on the
server (HDF5 external links and virtual datasets): an uploaded file must not pull in
data it does not contain. Ordinary read errors are left to the readers, which report
them with the file's context; the probe only looks for hangs, crashes and links.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from ..errors import InputFileError

#: Time allowed to read a file completely: a base plus a rate generous for slow disks
#: and gzip-compressed datasets (a healthy file is read far faster).
PROBE_TIMEOUT_SECONDS = 60.0
PROBE_SECONDS_PER_GB = 120.0
#: Exit status of the child when the file links to data outside itself.
_REFUSED = 3
#: Read datasets in slabs of about this many bytes, so the child's memory stays bounded.
_BLOCK_BYTES = 64 << 20


def probe_timeout(size_bytes: int) -> float:
    return PROBE_TIMEOUT_SECONDS + PROBE_SECONDS_PER_GB * size_bytes / 1e9


def check_hdf5(path: str | os.PathLike, what: str = "HDF5 file") -> None:
    """Raise :class:`InputFileError` if reading ``path`` hangs, crashes, or leaves the file."""
    path = Path(path)
    timeout = probe_timeout(path.stat().st_size)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "musegnn_core.data.hdf5_probe", str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise InputFileError(
            f"{path.name} could not be read within {timeout:.0f} s: the file is probably "
            f"damaged (a corrupt {what} can make the HDF5 library loop). Export it again."
        ) from exc
    except OSError:  # no interpreter to start (frozen app): read in-process as before
        return
    if done.returncode == _REFUSED:
        raise InputFileError(f"{path.name} is refused: {done.stdout.strip()}")
    if done.returncode != 0:
        raise InputFileError(
            f"{path.name} is damaged: reading it crashed the HDF5 library "
            f"({_describe_exit(done.returncode)}). Export the {what} again."
        )


def _describe_exit(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


# ---------------------------------------------------------------- the child's side
class _Refused(Exception):
    pass


def _touch_attributes(obj) -> None:
    for key in list(obj.attrs):
        # An unreadable attribute is not our concern: the reader reports it if it needs it.
        with contextlib.suppress(Exception):
            obj.attrs[key]


def _touch_dataset(dataset) -> None:
    if dataset.is_virtual:
        raise _Refused(
            f"its dataset {dataset.name} is a virtual dataset that reads other files; "
            "export the data into the file itself."
        )
    if dataset.shape is None or dataset.size == 0:
        return
    if dataset.ndim == 0:
        dataset[()]
        return
    row_bytes = max(1, dataset.dtype.itemsize * (dataset.size // max(1, dataset.shape[0])))
    step = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, dataset.shape[0], step):
        dataset[start : start + step]


def walk(path: str) -> None:
    """Touch every attribute and dataset; raise _Refused for links to other files."""
    import h5py

    with h5py.File(path, "r") as handle:
        pending, seen = [handle], set()
        while pending:
            group = pending.pop()
            _touch_attributes(group)
            for name in list(group):
                link = group.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    raise _Refused(
                        f"{group.name.rstrip('/')}/{name} links to another file "
                        f"({link.filename}); export the data into the file itself."
                    )
                if isinstance(link, h5py.SoftLink):
                    continue  # its target is reached through its own hard link
                try:
                    obj = group[name]
                except Exception:
                    continue
                if obj.id in seen:  # a group hard-linked into itself would loop forever
                    continue
                seen.add(obj.id)
                try:
                    if isinstance(obj, h5py.Group):
                        pending.append(obj)
                        continue
                    _touch_attributes(obj)
                    if isinstance(obj, h5py.Dataset):
                        _touch_dataset(obj)
                except _Refused:
                    raise
                except Exception:
                    continue


def main(argv: list[str]) -> int:
    try:
        walk(argv[0])
    except _Refused as exc:
        print(exc)
        return _REFUSED
    except Exception:  # unreadable: the in-process reader gives the error with context
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
