"""The study's grid spread over the ranks of a ``torchrun`` job (one machine or several).

Unlike :mod:`tokembed.training.distributed` (one run, data-parallel over the ranks), here every
rank trains whole runs of the grid on its own, and :mod:`tokembed.study.run` calls three hooks:

1. :func:`wait_for_rank0` / :func:`rank0_done` around the preparation: rank 0 samples the
   corpus, trains the tokenizers and builds the shards into the study folder first; the other
   ranks then plan the same grid and find all of it cached (the folder must be shared by the
   machines: a network file system, or one machine).
2. :func:`run_over_ranks`: rank ``r`` of ``W`` takes the runs ``r, r + W, r + 2W, ...`` of the
   planned grid (a deterministic partition of the ordered run list) and trains them in its own
   process (``workers = 1``, :func:`~tokembed.training.distributed.local_only`). Every finished
   run is already recorded atomically, one ``runs/<id>/result.json`` per run, and skipped when
   the study is rerun — so a study whose worker was killed completes on a rerun with any number
   of workers. The rows and the skipped cells of all ranks are then gathered (as JSON, never
   pickled) on every rank.
3. Only rank 0 (:attr:`DistContext.is_main`) writes ``results.csv``, ``results.json`` and the report.

Outside ``torchrun`` the world has one rank and the study runs as before (its own process pool).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from ..training.distributed import DistContext, context, gather_json, local_only

__all__ = ["rank_context", "partition", "wait_for_rank0", "rank0_done", "run_over_ranks"]

T = TypeVar("T")


def rank_context() -> DistContext:
    """The rank of this process in the torchrun job (a world of 1 outside torchrun). The group is gloo (it only
    gathers results); with GPUs, rank ``LOCAL_RANK`` trains its runs on GPU ``LOCAL_RANK mod count``."""
    ctx = context(device="cpu")
    if ctx.active and torch.cuda.is_available():
        torch.cuda.set_device(ctx.local_rank % torch.cuda.device_count())
    return ctx


def partition(items: Sequence[T], ctx: DistContext) -> list[T]:
    """The items rank ``ctx.rank`` takes: every ``world_size``-th from its rank on.

    >>> [partition("abcdefg", DistContext(rank=r, world_size=3)) for r in range(3)]
    [['a', 'd', 'g'], ['b', 'e'], ['c', 'f']]
    """
    return list(items[ctx.rank :: ctx.world_size])


def wait_for_rank0(ctx: DistContext) -> None:
    """The other ranks wait here until rank 0 has prepared the study folder (:func:`rank0_done`)."""
    if ctx.active and not ctx.is_main:
        ctx.barrier()


def rank0_done(ctx: DistContext) -> None:
    """Rank 0 releases the others (it has written the corpus sample, tokenizers and shards)."""
    if ctx.active and ctx.is_main:
        ctx.barrier()


def run_over_ranks(
    specs: Sequence[Any],
    run_all: Callable[[list[Any], Any], dict[str, tuple[dict, dict]]],
    *,
    config,
    skipped: list[dict[str, str]],
    ctx: DistContext,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, tuple[dict, dict]]:
    """``run_all(specs, config)`` for this rank's share of ``specs``, the results of every rank merged.

    ``skipped`` gains the cells the other ranks skipped. In one process: ``run_all(specs, config)``.
    """
    if not ctx.active:
        return run_all(list(specs), config)
    before = len(skipped)
    share = partition(specs, ctx)
    log(f"rank {ctx.rank} of {ctx.world_size}: {len(share)} run(s) of {len(specs)}")
    with local_only():  # each rank trains whole runs: no data-parallel group inside a run
        mine = run_all(share, dataclasses.replace(config, workers=1))
    shared = {"results": {k: [row, det] for k, (row, det) in mine.items()}, "skipped": skipped[before:]}
    merged: dict[str, tuple[dict, dict]] = {}
    for rank, part in enumerate(gather_json(shared, ctx)):
        merged.update({k: (row, det) for k, (row, det) in part["results"].items()})
        if rank != ctx.rank:
            skipped.extend(part["skipped"])
    return merged
