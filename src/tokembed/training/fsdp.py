"""Fully sharded data parallelism (FSDP2, ``torch.distributed.fsdp.fully_shard``) for the training loop.

Unlike :mod:`tokembed.training.distributed` (DDP: every rank holds the whole model and all-reduces
the gradients), here each of the W ranks keeps 1/W of every parameter, of its gradient and of its
AdamW moments; the loop turns it on with ``parallel.fsdp = true`` and calls only the small hooks below:

- :func:`wrap` — each Transformer block becomes its own FSDP unit, then the root (embedding, head,
  final norm, positions) another. A unit's parameters are all-gathered just before its forward and
  backward and freed after; gradients are reduce-scattered (averaged), so rank r ends the step with
  the gradient of its own rows only. Parameters are sharded on dim 0 (``torch.chunk`` rows, so
  rank r of W holds rows ``[r·⌈N/W⌉, min((r+1)·⌈N/W⌉, N))``) and are ``DTensor`` s from then on.
- :func:`grad_sync` — no reduce-scatter on the micro-batches of an accumulation that are not the last.
- :func:`gathered`, :func:`full` and :func:`finite_view` — what the loop's monitors and finiteness checks read (collectives:
  every rank calls them at the same point).
- :func:`full_model` — a plain (unsharded) copy of the trained model, for evaluation and
  :class:`~tokembed.training.loop.TrainResult` (a collective; it costs one full copy of the weights).

Every rank builds the same model from the seed before sharding, so no broadcast is needed. The
global batch is the single-process batch (each rank computes ``batch_size / W`` rows of it, as with
DDP), so W ranks follow one process up to the order of float sums (``tests/training/test_fsdp.py``).
Checked on the CPU build of torch 2.13 with gloo; on GPUs the same calls run with NCCL.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.distributed as dist

from ..model import build_model
from .checkpoint import load_model_tensors, model_tensors

__all__ = ["wrap", "is_sharded", "grad_sync", "gathered", "full", "finite_view", "full_model"]


def _fsdp():
    from torch.distributed import fsdp  # lazy: only FSDP runs need it

    return fsdp


def _dtensor_type():
    from torch.distributed.tensor import DTensor

    return DTensor


class _ShardedLoss(torch.nn.Module):
    """``model.loss`` as the FSDP root's forward (so the root's parameters are gathered around it).

    FSDP reduce-scatters the gradients of a unit as one flat buffer, so every rank must produce a
    gradient for the same parameters. A design can leave some out of a step on some ranks (an
    adaptive head's tail cluster with no target in this rank's rows); ``+ 0·Σθ`` over the root's
    parameters gives each of them an exact zero gradient instead (the loss and the other gradients
    are unchanged: adding 0.0 is exact). The blocks' parameters are always used.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.root_names = [n for n, _ in model.named_parameters() if not n.startswith("blocks.")]

    def forward(self, x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
        loss = self.model.loss(x, y, **kwargs)
        touch = sum(self.model.get_parameter(n).sum() for n in self.root_names)
        return loss + 0.0 * touch


def wrap(model: torch.nn.Module, *, world_size: int, device: torch.device) -> torch.nn.Module:
    """Shard ``model`` in place over the default group (each block, then the root) and return the
    callable ``(x, y, **ce) -> mean loss`` the loop trains with. ``model``'s parameters become DTensors."""
    from torch.distributed.device_mesh import init_device_mesh

    fsdp = _fsdp()
    mesh = init_device_mesh(device.type, (world_size,))
    for block in model.blocks:
        fsdp.fully_shard(block, mesh=mesh)
    root = _ShardedLoss(model)
    fsdp.fully_shard(root, mesh=mesh)
    # the loss is a 0-d view; the loop never changes it in place, which is what FSDP's warning is about
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    return root


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model``'s parameters are FSDP shards (DTensors).

    >>> is_sharded(torch.nn.Linear(2, 2))
    False
    """
    DTensor = _dtensor_type()
    return any(isinstance(p, DTensor) for p in model.parameters())


def grad_sync(loss_fn, *, last: bool):
    """Context for one micro-batch's backward: FSDP reduce-scatters the gradients only on the ``last`` one."""
    if last or not isinstance(loss_fn, _fsdp().FSDPModule):
        return contextlib.nullcontext()
    return _no_sync(loss_fn)


@contextlib.contextmanager
def _no_sync(root) -> Iterator[None]:
    root.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        root.set_requires_gradient_sync(True)


@contextlib.contextmanager
def gathered(loss_fn) -> Iterator[None]:
    """Inside: the FSDP root's own parameters (embedding, head, final norm) are whole tensors on their modules, so
    any design's ``weight_matrix()`` runs as in one process (a collective; nothing for a non-FSDP ``loss_fn``).
    Gradients stay on the shards: read them (:func:`full`) before entering. The whole tensors' memory is freed
    on exit, so nothing that shares it (a view, ``.float()`` of an fp32 tensor) may be used after the block."""
    if not isinstance(loss_fn, _fsdp().FSDPModule):
        yield
        return
    loss_fn.unshard()
    try:
        yield
    finally:
        loss_fn.reshard()


def full(t: torch.Tensor | None) -> torch.Tensor | None:
    """The whole tensor: a DTensor's shards all-gathered (a collective), any other tensor as it is."""
    if t is not None and isinstance(t, _dtensor_type()):
        return t.full_tensor()
    return t


def finite_view(t: torch.Tensor) -> torch.Tensor:
    """What a finiteness check reads: a plain tensor as it is; for a DTensor its local rows when every
    rank's rows are finite (one all-reduce of a flag), else the full tensor, so the error names global rows."""
    if not isinstance(t, _dtensor_type()):
        return t
    local = t.to_local()
    bad = torch.tensor([0.0 if bool(torch.isfinite(local).all()) else 1.0])
    dist.all_reduce(bad)
    return local if bad.item() == 0 else t.full_tensor()


def full_model(model: torch.nn.Module, config) -> torch.nn.Module:
    """A plain model holding the gathered weights of the sharded ``model`` (a collective: every rank
    calls it and gets its own copy), in ``model``'s train/eval mode, on its device."""
    tensors = {k: full(v).detach() for k, v in model_tensors(model).items()}
    plain = build_model(config.model, token_counts=model.token_counts.cpu(), seed=config.seed,
                        embedding_dropout=config.embedding_dropout)
    load_model_tensors(plain, tensors, where="the FSDP model")
    return plain.to(next(iter(tensors.values())).device).train(model.training)
