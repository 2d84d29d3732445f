"""Training on several processes or machines, launched by ``torchrun``.

Data parallelism over the epoch's (dataset, partner) steps. Every rank holds the whole
model and every graph; the steps are dealt round-robin (rank ``r`` runs steps ``r``,
``r + W``, ``r + 2W``, ... of ``W`` ranks), and the ``W`` steps of one round make one
optimiser step whose gradient is the mean of theirs (an all-reduce), so the weights stay
identical on every rank. A parameter no step of the round touched keeps no gradient
(Adam leaves it alone, as in one process). Each step seeds its random draws from the
run's shared generator, so a run does not depend on how many ranks share it and
resumes from its checkpoint with any number. Rank 0 alone writes the run folder.

One process (``state.distributed is None``) trains exactly as before: one step per
dataset. With ``W`` ranks an epoch has ``ceil(n / W)`` optimiser steps of ``W`` pairs
each, i.e. a ``W`` times larger batch (see README, "Training on several GPUs").
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from .device import resolve_device
from .errors import ValidationError
from .runs import Run

T = TypeVar("T")

#: Environment variables torchrun sets in every process it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """This process's place in the process group, and the collectives training uses."""

    rank: int
    world_size: int
    local_rank: int = 0

    @property
    def lead(self) -> bool:
        """Rank 0 writes progress, checkpoints and the run folder; the others only train."""
        return self.rank == 0

    # ----------------------------------------------------------- the epoch's steps
    def own_steps(self, n_steps: int) -> range:
        """The steps of an epoch this rank runs (round-robin)."""
        return range(self.rank, n_steps, self.world_size)

    def round_size(self, step: int, n_steps: int) -> int:
        """How many ranks run a step in the round of ``step`` (the last round may be short)."""
        start = step - step % self.world_size
        return min(self.world_size, n_steps - start)

    def step_seeds(self, rng: np.random.Generator, n_steps: int) -> list[int]:
        """One seed per step, drawn from the run's generator (the same on every rank)."""
        return [int(x) for x in rng.integers(0, 2**62, size=n_steps)]

    def device(self, requested: str) -> torch.device:
        """The training device of this rank: its own GPU (``LOCAL_RANK``) or the CPU."""
        name = resolve_device(requested)
        if name.startswith("cuda"):
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device(name)

    # ----------------------------------------------------------------- gradients
    def average_gradients(self, module: torch.nn.Module, step: int, n_steps: int) -> None:
        """Replace every gradient by the mean over the round's steps of ``step``.

        Two all-reduces: which parameters any rank touched (a few bytes), then the
        gradients of those alone, in one flat buffer (per-dataset encoders a round did
        not use are not sent).
        """
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        device = params[0].device
        touched = torch.tensor([p.grad is not None for p in params], device=device).float()
        dist.all_reduce(touched)
        used = [p for p, flag in zip(params, touched.tolist(), strict=True) if flag > 0]
        for p, flag in zip(params, touched.tolist(), strict=True):
            if flag == 0:
                p.grad = None
        if not used:
            return
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in used]
        ).float()
        dist.all_reduce(flat)
        flat /= self.round_size(step, n_steps)
        offset = 0
        for p in used:
            size = p.numel()
            p.grad = flat[offset : offset + size].view_as(p).to(p.dtype).clone()
            offset += size

    def finish_epoch(
        self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, n_steps: int
    ) -> None:
        """The rounds in which this rank has no step (the epoch's last, when ``n_steps``
        is not a multiple of the ranks): it still takes the others' averaged gradient."""
        rounds = math.ceil(n_steps / self.world_size)
        for _ in range(rounds - len(self.own_steps(n_steps))):
            optimizer.zero_grad(set_to_none=True)
            self.average_gradients(module, n_steps - 1, n_steps)
            optimizer.step()

    # --------------------------------------------------------------- agreement
    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over the ranks (each rank gets it)."""
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop asked of any rank)."""
        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def from_lead(self, make: Callable[[], T]) -> T:
        """``make()`` computed on rank 0 and sent to every rank (e.g. a new run's name)."""
        box = [make() if self.lead else None]
        dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
        return box[0]

    @contextlib.contextmanager
    def lead_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (builds and caches the graphs); the others then
        run it and find its results on disk."""
        if not self.lead:
            self.barrier()
        yield
        if self.lead:
            self.barrier()

    def barrier(self) -> None:
        # A CPU all-reduce rather than dist.barrier(): NCCL's barrier guesses a device.
        dist.all_reduce(torch.zeros(1))


class FollowerRun(Run):
    """The run folder as a rank other than 0 sees it: read, never written."""

    def write_status(self, **fields) -> dict:
        return fields

    def clear_stop(self) -> None:
        pass


def backend_for_this_machine() -> str:
    """``gloo`` for CPU tensors, with ``nccl`` for CUDA tensors where there is a GPU."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def under_torchrun(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return all(name in environ for name in TORCHRUN_ENV)


@contextlib.contextmanager
def process_group() -> Iterator[Distributed]:
    """Join the process group torchrun describes in the environment; leave it after."""
    if not under_torchrun():
        raise ValidationError(
            "--distributed runs under torchrun, e.g. torchrun --standalone --nproc-per-node 2 "
            "-m musegnn_core train --workspace W --distributed"
        )
    if not dist.is_available():
        raise ValidationError("This torch build has no torch.distributed; train without it.")
    dist.init_process_group(backend=backend_for_this_machine())
    try:
        yield Distributed(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )
    finally:
        dist.destroy_process_group()
