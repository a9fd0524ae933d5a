"""Data parallelism on ``torch.distributed``: the process group, the rank's rows of a batch, DDP, the launcher.

Unlike :mod:`tokembed.training.loop` (one optimizer loop), this module holds everything that
depends on the world of processes a run is part of, so the loop only calls small hooks:

- :func:`context` — the rank and world size of this process. Under ``torchrun`` (``WORLD_SIZE``
  > 1 in the environment) the default process group is created on first use: ``nccl`` when the
  run is on CUDA, ``gloo`` otherwise. Outside ``torchrun`` it is rank 0 of a world of 1 and
  nothing here touches ``torch.distributed``.
- :func:`rank_rows` — the rows of the global batch this rank computes. The global batch is the
  config's ``batch_size`` (the same as one process), each rank takes a contiguous block of
  ``batch_size / world`` rows, so the mean of the ranks' mean losses is the single-process loss
  and averaged gradients are its gradient (up to the order of float sums).
- :func:`loss_module` — the model's loss behind :class:`~torch.nn.parallel.DistributedDataParallel`
  when the world has more than one rank; :func:`grad_sync` skips the all-reduce on the
  micro-batches of an accumulation that are not the last.
- :func:`local_only` — inside it every rank is a world of its own (the study trains one run per rank).
- :func:`main_first` — rank 0 does a step (write a checkpoint, tokenize a corpus, recover a
  folder) while the others wait at a barrier, then the others do theirs (read what rank 0 wrote).
- :func:`gather_json` — JSON values of every rank, on every rank (no pickle: UTF-8 bytes in tensors).
- :func:`launch` — ``tokembed train --nproc N`` re-runs its own command line under
  ``python -m torch.distributed.run``; there is no other process protocol.

Resume: the stream position in a checkpoint is global (the cursor of the global batch), so
a run can resume on another world size at exactly the same data; each rank's RNG state is
saved (``rng.cpu.rank{r}``) and restored when the world size is the same, so a resume on the
same world size is bit-exact; on another size the RNG streams differ (they only drive dropout).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError
from . import fsdp as _fsdp

__all__ = [
    "DistContext",
    "context",
    "local_only",
    "rank_rows",
    "loss_module",
    "grad_sync",
    "mean_over_ranks",
    "main_first",
    "gather_json",
    "rng_tensors",
    "rank_rng_state",
    "launch",
    "strip_nproc",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


_LOCAL = [0]  # > 0 inside local_only(): the ranks run independent jobs (the study), not one data-parallel run


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Inside this block :func:`context` is a world of 1 even under torchrun: each rank trains its own runs."""
    _LOCAL[0] += 1
    try:
        yield
    finally:
        _LOCAL[0] -= 1


#: how long a rank waits at exit for the others before it tears the group down anyway
_EXIT_BARRIER_S = 120


def _close_group() -> None:
    """At interpreter exit: wait for every rank, then destroy the group. Destroying a gloo group while a
    peer is still in a collective aborts that peer in its destructor ("terminate called without an active
    exception", SIGABRT), which made a finished ``train --nproc 2`` exit non-zero."""
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=_EXIT_BARRIER_S))
        else:
            dist.barrier()
    except RuntimeError:  # a peer died or timed out: torchrun reports that rank; just release ours
        pass
    dist.destroy_process_group()


def context(*, device: str = "cpu") -> DistContext:
    """This process's :class:`DistContext`; under torchrun the default process group is created once
    (``nccl`` for a CUDA or ``"auto"`` ``device`` when CUDA is present, else ``gloo``). Inside :func:`local_only`: a world of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or _LOCAL[0]:
        return DistContext()
    if not dist.is_initialized():
        cuda = (str(device).startswith("cuda") or device == "auto") and torch.cuda.is_available()
        if cuda:  # one GPU per process: "cuda" below means this rank's GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(_close_group)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def rank_rows(batch_size: int, ctx: DistContext) -> slice:
    """The rows of a ``batch_size`` global batch that rank ``ctx.rank`` computes.

    >>> rank_rows(8, DistContext(rank=1, world_size=4))
    slice(2, 4, None)
    """
    if batch_size % ctx.world_size:
        raise ConfigError(
            f"batch_size={batch_size} is not a multiple of the world size {ctx.world_size}; the global batch is "
            f"split evenly over the ranks — use a batch_size divisible by {ctx.world_size} or another number of processes (nproc)",
            param="batch_size",
        )
    per = batch_size // ctx.world_size
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


class _Loss(torch.nn.Module):
    """``model.loss`` as a forward, so DDP sees the call that builds the graph."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model.loss(x, y, **kwargs)


def loss_module(model: torch.nn.Module, ctx: DistContext, device: torch.device, *, fsdp: bool = False):
    """A callable ``(x, y, **ce) -> mean loss``: ``model.loss`` itself in one process, DDP across ranks
    (the initial weights are broadcast from rank 0 when it is built), or with ``fsdp`` the model sharded
    in place over the ranks (:func:`tokembed.training.fsdp.wrap`)."""
    if not ctx.active:
        return model.loss
    if fsdp:
        return _fsdp.wrap(model, world_size=ctx.world_size, device=device)
    ids = [device.index if device.index is not None else ctx.local_rank] if device.type == "cuda" else None
    # find_unused_parameters: some designs leave parameters out of a step's graph (an adaptive head's tail
    # cluster that no target of the batch falls in); DDP must not wait for their gradients.
    return torch.nn.parallel.DistributedDataParallel(_Loss(model), device_ids=ids, find_unused_parameters=True)


def grad_sync(loss_fn, *, last: bool):
    """Context for one micro-batch's backward: DDP all-reduces (FSDP reduce-scatters) the gradients only on the ``last`` one."""
    if last or not isinstance(loss_fn, torch.nn.Module):
        return contextlib.nullcontext()
    if not isinstance(loss_fn, torch.nn.parallel.DistributedDataParallel):
        return _fsdp.grad_sync(loss_fn, last=last)
    return loss_fn.no_sync()


def mean_over_ranks(value: float, ctx: DistContext) -> float:
    """The mean of a per-rank float over the ranks (the global-batch loss from the ranks' losses)."""
    if not ctx.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


@contextlib.contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Rank 0 runs the body while the others wait; then the others run it (and find rank 0's files)."""
    if ctx.is_main:
        yield
        ctx.barrier()
    else:
        ctx.barrier()
        yield
    ctx.barrier()


def gather_json(value, ctx: DistContext) -> list:
    """``[value of rank 0, value of rank 1, ...]`` on every rank, sent as JSON text (NaN allowed), never pickled."""
    if not ctx.active:
        return [value]
    data = torch.frombuffer(bytearray(json.dumps(value).encode("utf-8")), dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.int64)
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, size)
    n = int(max(s.item() for s in sizes))
    padded = torch.zeros(n, dtype=torch.uint8)
    padded[: data.numel()] = data
    parts = [torch.zeros(n, dtype=torch.uint8) for _ in range(ctx.world_size)]
    dist.all_gather(parts, padded)
    return [json.loads(bytes(p[: int(s.item())].tolist()).decode("utf-8")) for p, s in zip(parts, sizes)]


def rng_tensors(ctx: DistContext) -> dict[str, torch.Tensor]:
    """Every rank's CPU RNG state as ``rng.cpu.rank{r}`` (a collective: all ranks call it); {} in one process."""
    if not ctx.active:
        return {}
    mine = torch.get_rng_state()
    states = [torch.empty_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(states, mine)
    return {f"rng.cpu.rank{r}": s for r, s in enumerate(states)}


def rank_rng_state(tensors: dict[str, torch.Tensor], ctx: DistContext, saved_world: int) -> None:
    """Restore this rank's RNG state when the checkpoint was written by the same world size."""
    key = f"rng.cpu.rank{ctx.rank}"
    if ctx.active and saved_world == ctx.world_size and key in tensors:
        torch.set_rng_state(tensors[key])


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the launcher's own option).

    >>> strip_nproc(["train", "--nproc", "2", "-o", "run", "--nproc=3"])
    ['train', '-o', 'run']
    """
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def launch(nproc: int, argv: Sequence[str], *, extra: Sequence[str] = ()) -> int:
    """Run ``python -m tokembed <argv>`` under ``torch.distributed.run`` with ``nproc`` processes on this
    machine (``--standalone`` rendezvous); returns torchrun's exit code."""
    if nproc < 1:
        raise ConfigError(f"nproc={nproc} must be >= 1 (the number of processes)", param="nproc")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *extra,
           "-m", "tokembed", *strip_nproc(argv)]
    return subprocess.call(cmd)
