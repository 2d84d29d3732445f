"""Building several datasets' graphs at once: a process pool bounded by cores and memory.

Each dataset's graph (QC, gene ranking, residuals, CS-CORE) is computed by one task in a
worker process; the parent keeps the order, the caching and every write
(:func:`musegnn_core.graphs.build.build_graphs`). A task is the same function the serial
build calls, so a graph does not depend on where it was computed.

How many workers: at most the usable cores and the datasets to build, and at most as
many as the memory limit allows when the largest datasets happen to be built together
(:func:`memory_estimate` of each, an upper estimate; the limit defaults to half of the
memory available when the build starts). Each worker gets an equal share of the cores
for its own threads. Workers are never forked from the calling process (a forked copy of
a process that already runs OpenMP threads, as torch does, can deadlock): they come from
a ``forkserver`` that has imported the graph code, or are spawned.

This module imports no torch or numpy at load: a spawned worker sets its thread count
before the numerical libraries are loaded.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import ValidationError
from ..threads import THREAD_COUNT_ENVS, usable_cores

GB = 1024**3
#: A worker's interpreter with torch, scanpy and numba loaded, before any data.
WORKER_BASE_BYTES = int(0.6 * GB)


@dataclass(frozen=True)
class PoolPlan:
    """How a build runs: ``workers`` processes (1: in this process), each with ``threads``."""

    workers: int
    threads: int
    memory_limit: int  # bytes the workers may hold together
    largest_estimate: int  # bytes of the largest dataset's build (upper estimate)

    def describe(self) -> str:
        return (
            f"{self.workers} worker(s) x {self.threads} thread(s), memory limit "
            f"{self.memory_limit / GB:.1f} GB (largest dataset about "
            f"{self.largest_estimate / GB:.2f} GB)"
        )


def memory_estimate(n_cells: int, n_dataset_genes: int, n_graph_genes: int, file_bytes: int):
    """Bytes one dataset's graph build holds at its peak, an upper estimate.

    The counts as loaded and their QC copy (an h5ad file is compressed: 8 times the file),
    the dense float64 counts of the chosen genes with CS-CORE's working copies and the
    residual features (8 cell x gene arrays), CS-CORE's gene x gene float64 matrices
    (estimate, variance, statistic, p-values and temporaries: 10), and the interpreter.
    """
    genes = max(1, min(n_graph_genes, n_dataset_genes or n_graph_genes))
    cells = max(1, n_cells)
    return int(WORKER_BASE_BYTES + 8 * file_bytes + 8 * 8 * cells * genes + 10 * 8 * genes * genes)


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or the total where unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_workers(text: str | int) -> int | str:
    """``auto`` or a count >= 1 (the CLI's ``--workers``)."""
    if isinstance(text, int) or str(text).strip().lower() != "auto":
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValidationError(f"--workers takes 'auto' or a count of at least 1, not {text!r}.")
        return value
    return "auto"


def plan_pool(
    estimates: list[int], workers: int | str = "auto", memory_limit_gb: float | None = None
) -> PoolPlan:
    """The workers for datasets whose builds need ``estimates`` bytes each."""
    workers = parse_workers(workers)
    cores = usable_cores()
    limit = int(memory_limit_gb * GB) if memory_limit_gb else available_memory() // 2
    largest = sorted(estimates, reverse=True)
    count = max(1, min(cores if workers == "auto" else workers, len(estimates)))
    # Any `count` tasks may run together: the largest ones must fit.
    while count > 1 and sum(largest[:count]) > limit:
        count -= 1
    return PoolPlan(
        workers=count,
        threads=max(1, cores // count),
        memory_limit=limit,
        largest_estimate=largest[0] if largest else 0,
    )


def peak_memory_bytes() -> int:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(task: Callable, *args):
    """``task(*args)`` with its seconds and the worker's peak memory after it."""
    start = time.perf_counter()
    result = task(*args)
    return result, time.perf_counter() - start, peak_memory_bytes()


def _start_worker(threads: int) -> None:
    for name in THREAD_COUNT_ENVS:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(ImportError, ValueError):
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def worker_context():
    """``forkserver`` where there is one: a clean server process imports the graph code
    once and each worker is forked from it, instead of importing torch and scanpy itself
    (seconds per worker). It never forks this process's running threads. Else ``spawn``."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["musegnn_core.graphs.build"])
        return context
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def task_runner(plan: PoolPlan | None) -> Iterator[Callable[[Callable, Iterable[tuple]], Iterator]]:
    """``run(task, argument_tuples)``: the results of ``timed(task, *args)`` in order,
    computed lazily here (no plan, or one worker) or by the pool's workers."""
    if plan is None or plan.workers == 1:
        yield lambda task, arguments: (timed(task, *args) for args in arguments)
        return
    context = worker_context()
    with ProcessPoolExecutor(
        plan.workers, mp_context=context, initializer=_start_worker, initargs=(plan.threads,)
    ) as executor:

        def run(task: Callable, arguments: Iterable[tuple]) -> Iterator:
            futures = [executor.submit(timed, task, *args) for args in arguments]
            return (future.result() for future in futures)

        yield run
