"""Building several datasets' graphs at once: a process pool bounded by cores and memory.

Each dataset's graph (QC, gene ranking, residuals, CS-CORE) is computed by one task; the
parent keeps the order, the caching and every write
(:func:`musegnn_core.graphs.build.build_graphs`). A task is the same function the serial
build calls, so a graph does not depend on where it was computed.

How many workers: at most the usable cores and the datasets to build, and at most as
many as the memory limit allows when the largest datasets happen to be built together
(:func:`memory_estimate` of each, an upper estimate; the limit defaults to half of the
memory available when the build starts). The calling process is one of the workers: it
computes tasks in a thread from the first moment, while the others start; the most
expensive tasks go first, and a task goes to whichever worker is free (none waits in the
queue of a busy one). Every worker, the calling process included, runs its share of the
cores' threads (torch and the BLAS, :func:`limited_threads`): more threads than cores
(each helper's BLAS had started with all of them) made the pool slower than one process.
When each worker runs one thread (as many workers as cores), the helpers are threads of
the calling process: the numerical kernels (BLAS, torch) release the GIL, nothing is
pickled and nothing starts up. Otherwise they are processes from a ``forkserver`` that
has imported the graph code (or are spawned), never forked from the calling process
(:func:`worker_context`), and this process computes while they start.

This module imports no torch or numpy at load: a spawned worker sets its thread count
before the numerical libraries are loaded.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
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

    @property
    def in_threads(self) -> bool:
        """Whether the workers are threads of this process (one thread each) rather than
        processes: no start-up (a helper process imports torch first: seconds of CPU),
        nothing pickled, and the numerical kernels release the GIL."""
        return self.workers > 1 and self.threads == 1

    def describe(self) -> str:
        where = " in this process" if self.in_threads else ""
        return (
            f"{self.workers} worker(s){where} x {self.threads} thread(s), memory limit "
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


def task_cost(n_cells: int, n_dataset_genes: int, n_graph_genes: int) -> float:
    """A dataset's build time, relative: CS-CORE's gene x gene work, in part per cell
    (its products) and in part fixed (its element-wise passes; about a thousand cells'
    worth, as measured on the shared atlas). Only the order of the tasks uses it."""
    genes = max(1, min(n_graph_genes, n_dataset_genes or n_graph_genes))
    return float(genes) ** 2 * (max(1, n_cells) + 1000)


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


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """This process's torch and BLAS (OpenBLAS, MKL) at ``threads`` threads; restored after.

    The BLAS reads its thread count once, when it loads: a worker forked from a server
    that loaded NumPy with all the cores would otherwise run that many BLAS threads
    beside every other worker's.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


#: A helper's thread limits, held for its lifetime (a context left to the garbage
#: collector would be closed, and the limits undone, at once).
_HELPER_LIMITS: list = []


def _start_worker(threads: int) -> None:
    for name in THREAD_COUNT_ENVS:
        os.environ[name] = str(threads)
    limits = limited_threads(threads)
    limits.__enter__()
    _HELPER_LIMITS.append(limits)
    with contextlib.suppress(ImportError, ValueError):
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def worker_context():
    """``forkserver`` where there is one: a clean server process imports the graph code
    once and each helper is forked from it, instead of importing torch itself (seconds
    per helper). Else ``spawn``.

    Never a fork of the calling process: a copy of a process with other threads (the app's
    server, torch's OpenMP team, a test runner's) inherits their locks, and one such copy
    hung for good in its first torch call, even at one thread.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["musegnn_core.graphs.build"])
        return context
    return multiprocessing.get_context("spawn")


def _serial(task: Callable, arguments: Iterable[tuple], costs=None) -> Iterator:
    return (timed(task, *args) for args in arguments)


@contextlib.contextmanager
def task_runner(plan: PoolPlan | None) -> Iterator[Callable[..., Iterator]]:
    """``run(task, argument_tuples, costs=None)``: the results of ``timed(task, *args)`` in
    the order of the arguments, computed lazily here (no plan, or one worker) or by the
    pool: this process and ``plan.workers - 1`` helpers, the tasks of the largest
    ``costs`` first. The helpers are threads of this process when each worker runs one
    thread (:attr:`PoolPlan.in_threads`), else processes (:func:`worker_context`)."""
    if plan is None or plan.workers == 1:
        yield _serial
        return
    if plan.in_threads:
        helpers = ThreadPoolExecutor(plan.workers - 1, thread_name_prefix="graph-pool")
    else:
        helpers = ProcessPoolExecutor(
            plan.workers - 1,
            mp_context=worker_context(),
            initializer=_start_worker,
            initargs=(plan.threads,),
        )
    with helpers as executor, limited_threads(plan.threads):
        runs: list[_SharedRun] = []

        def run(task: Callable, arguments: Iterable[tuple], costs=None) -> Iterator:
            shared = _SharedRun(executor, plan.workers - 1, task, list(arguments), costs)
            runs.append(shared)
            return shared.results()

        try:
            yield run
        finally:
            for shared in runs:
                shared.stop()


class _SharedRun:
    """One batch of tasks shared by this process (a thread) and the helper processes.

    A helper is handed one task at a time, when it is up and free, so that no task waits
    behind a busy or starting helper while this process could take it.
    """

    def __init__(
        self,
        executor: ProcessPoolExecutor,
        helpers: int,
        task: Callable,
        arguments: list[tuple],
        costs: Sequence[float] | None,
    ) -> None:
        self.task, self.arguments = task, arguments
        order = range(len(arguments))
        if costs is not None:
            order = sorted(order, key=lambda i: -costs[i])  # stable: ties keep their order
        self.pending = deque(order)
        self.slots: list[Future] = [Future() for _ in arguments]
        self.lock = threading.Lock()
        self.executor, self.helpers = executor, helpers
        self.threads = [
            threading.Thread(target=self._compute_here, name="graph-pool-here", daemon=True),
            threading.Thread(target=self._feed_helpers, name="graph-pool-feed", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _take(self) -> int | None:
        with self.lock:
            return self.pending.popleft() if self.pending else None

    def _compute_here(self) -> None:
        while (i := self._take()) is not None:
            try:
                self.slots[i].set_result(timed(self.task, *self.arguments[i]))
            except BaseException as exc:
                self.slots[i].set_exception(exc)

    def _feed_helpers(self) -> None:
        # A helper gets a task once it is up (a forkserver's helper takes seconds to
        # start): each warm-up that returns frees one helper; so does each finished task.
        running: dict[Future, int | None] = {}
        with contextlib.suppress(Exception):  # a broken pool: this process computes all
            for _ in range(self.helpers):
                running[self.executor.submit(os.getpid)] = None
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                if i is not None:
                    if future.exception() is not None:
                        self.slots[i].set_exception(future.exception())
                    else:
                        self.slots[i].set_result(future.result())
                elif future.exception() is not None:
                    continue  # no helper: leave the tasks to this process
                if (i := self._take()) is not None:
                    try:
                        running[self.executor.submit(timed, self.task, *self.arguments[i])] = i
                    except Exception as exc:  # the pool is broken or shut down
                        self.slots[i].set_exception(exc)

    def results(self) -> Iterator:
        for slot in self.slots:
            yield slot.result()

    def stop(self) -> None:
        """Start no further task (the caller stopped reading, or failed); wait for those
        under way."""
        with self.lock:
            self.pending.clear()
        for thread in self.threads:
            thread.join()
