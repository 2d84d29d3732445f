"""Thread settings that behave on a shared machine, applied before torch is imported.

OpenMP (torch's CPU kernels, numpy's BLAS, numba) by default lets idle threads spin
while they wait for work. On a laptop or a lab server that is never idle, a spinning
thread holds a core another process needs, and the two slow each other down many
times over (the quick preset went from about 3 s to 78 s per epoch beside one
CPU-bound process; with passive waiting, 7 s). The OpenMP runtime reads its settings
once, when the library loads, so every process that trains or builds graphs calls
:func:`configure_threads` before anything imports torch, numpy or numba.

Settings (each one already present in the environment is kept):

- ``OMP_WAIT_POLICY=PASSIVE``: waiting threads sleep instead of spinning.
- ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``NUMBA_NUM_THREADS``: the number of cores this process may run on
  (``os.sched_getaffinity``, which honours ``taskset`` and container CPU sets).
- ``MUSEGNN_THREADS=N`` overrides the thread count (and any of the variables above).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

THREADS_ENV = "MUSEGNN_THREADS"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
THREAD_COUNT_ENVS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)


def requested_threads(environ: MutableMapping[str, str] | None = None) -> int | None:
    """The thread count set with ``MUSEGNN_THREADS``, or None when unset or not a count >= 1."""
    text = (environ if environ is not None else os.environ).get(THREADS_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def thread_settings(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The variables :func:`configure_threads` sets, given ``environ`` (default os.environ)."""
    environ = environ if environ is not None else os.environ
    override = requested_threads(environ)
    count = str(override or usable_cores())
    settings = {}
    if WAIT_POLICY_ENV not in environ:
        settings[WAIT_POLICY_ENV] = "PASSIVE"
    for name in THREAD_COUNT_ENVS:
        if override is not None or name not in environ:
            settings[name] = count
    if "NUMBA_NUM_THREADS" in settings:  # numba refuses more threads than the machine's CPUs
        settings["NUMBA_NUM_THREADS"] = str(min(int(count), os.cpu_count() or 1))
    return settings


def configure_threads(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Apply :func:`thread_settings` to ``environ`` (default: this process); returns them.

    Call it before torch is imported: the OpenMP runtime reads the wait policy when it
    loads. If torch is already loaded, its intra-op thread count is still adjusted.
    """
    target = environ if environ is not None else os.environ
    settings = thread_settings(target)
    target.update(settings)
    if environ is None and "torch" in sys.modules and "OMP_NUM_THREADS" in settings:
        sys.modules["torch"].set_num_threads(int(settings["OMP_NUM_THREADS"]))
    return settings


def child_environment(base: MutableMapping[str, str] | None = None, **extra: str) -> dict:
    """A copy of ``base`` (default os.environ) with the thread settings, plus ``extra``."""
    env = dict(base if base is not None else os.environ)
    configure_threads(env)
    env.update(extra)
    return env
