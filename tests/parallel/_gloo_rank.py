"""One rank of a gloo test job: the group around the rank's work, and an exit that skips the teardown.

The worker scripts (``_vp_worker.py``, ``_vp_train_worker.py``) run under :func:`_vp_launch.launch`.
"""

import os
import sys
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist


@contextmanager
def gloo_group():
    """Yield ``(rank, world)`` inside a gloo group (env:// rendezvous); every rank meets at a barrier
    after its work, then the group is destroyed."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=45))
    try:
        yield dist.get_rank(), dist.get_world_size()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def exit_rank() -> None:
    """Exit 0 without the interpreter's teardown: gloo's threads can abort it ("terminate called
    without an active exception", a torch issue) after the group is gone and the results are written."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
