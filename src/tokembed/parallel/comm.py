"""Process-group plumbing for the vocab-parallel layers: shard bounds and autograd-correct collectives.

Unlike a bare ``dist.all_reduce`` (which autograd does not see), every collective here is a
``torch.autograd.Function`` with the conjugate collective in its backward, as in Megatron-LM's
tensor-parallel "mappings":

- :func:`reduce_from_region` — forward: all-reduce SUM over the group; backward: identity.
  Used after the vocab-parallel lookup (each rank's partial rows sum to the full lookup).
- :func:`copy_to_region` — forward: identity; backward: all-reduce SUM.
  Used on the head's input ``h``: every rank uses the same ``h`` for its own logit columns, so
  ``dL/dh`` is the sum of every rank's contribution.
- :func:`gather_from_region` — forward: all-gather along the last dim; backward: keep the own
  slice. Only for evaluation/tests (it builds the full ``(..., V)`` tensor the layers avoid).

Without an initialised process group (or with a group of one rank) everything is the identity,
so the same modules run in one plain process.

:class:`VocabShard` holds the padding rule: ``V`` pads up to a multiple of ``world · 64``
(``PAD_MULTIPLE``) so every shard has the same row count, a multiple of 64 (aligned matmuls,
Megatron's ``make-vocab-size-divisible-by``). Rank ``r`` owns rows ``[lo, hi)``; of those,
``[lo, min(hi, V))`` are real tokens and the rest are padding.

>>> s = VocabShard.build(100, rank=1, world_size=4)
>>> s.padded, s.lo, s.hi, s.n_valid
(256, 64, 128, 36)
>>> VocabShard.build(100, rank=3, world_size=4).n_valid  # a shard of padding only
0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError

__all__ = [
    "PAD_MULTIPLE",
    "VocabShard",
    "group_rank",
    "group_size",
    "copy_to_region",
    "reduce_from_region",
    "gather_from_region",
    "all_reduce_max",
    "all_reduce_sum",
]

PAD_MULTIPLE = 64  # rows per shard are a multiple of this (Megatron-LM's make-vocab-size-divisible-by default 128 / 2)


def _active(group) -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def group_size(group=None) -> int:
    """World size of ``group`` (1 without an initialised process group)."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


def group_rank(group=None) -> int:
    """Rank within ``group`` (0 without an initialised process group)."""
    return dist.get_rank(group) if dist.is_available() and dist.is_initialized() else 0


@dataclass(frozen=True)
class VocabShard:
    """The rows ``[lo, hi)`` of a ``padded``-row table that one rank owns; ``n_valid`` of them are real."""

    vocab_size: int  # V, the tokenizer's size
    padded: int  # V rounded up to a multiple of world_size * PAD_MULTIPLE
    rank: int
    world_size: int
    lo: int  # first global row of this shard
    hi: int  # one past the last global row
    n_valid: int  # rows in [lo, hi) that are < V (the rest are padding)

    @classmethod
    def build(cls, vocab_size: int, *, rank: int, world_size: int) -> VocabShard:
        if int(vocab_size) < 1:
            raise ConfigError(f"vocab size V={vocab_size} must be >= 1")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank={rank} is outside [0, world_size={world_size})")
        step = world_size * PAD_MULTIPLE
        padded = -(-int(vocab_size) // step) * step
        per = padded // world_size
        lo = rank * per
        return cls(int(vocab_size), padded, rank, world_size, lo, lo + per, max(0, min(lo + per, vocab_size) - lo))

    @classmethod
    def for_group(cls, vocab_size: int, group=None) -> VocabShard:
        return cls.build(vocab_size, rank=group_rank(group), world_size=group_size(group))

    @property
    def rows(self) -> int:
        return self.hi - self.lo


class _CopyToRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM, group=ctx.group)
        return g, None


class _ReduceFromRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        x = x.contiguous().clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM, group=group)
        return x

    @staticmethod
    def backward(ctx, g):
        return g, None


class _GatherFromRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        ctx.group, ctx.width = group, x.shape[-1]
        parts = [torch.empty_like(x.contiguous()) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=-1)  # (..., world · width)

    @staticmethod
    def backward(ctx, g):
        r = dist.get_rank(ctx.group)
        return g[..., r * ctx.width : (r + 1) * ctx.width].contiguous(), None


def copy_to_region(x: torch.Tensor, group=None) -> torch.Tensor:
    """Identity forward, all-reduce SUM of the gradient backward."""
    return _CopyToRegion.apply(x, group) if _active(group) else x


def reduce_from_region(x: torch.Tensor, group=None) -> torch.Tensor:
    """All-reduce SUM forward, identity backward."""
    return _ReduceFromRegion.apply(x, group) if _active(group) else x


def gather_from_region(x: torch.Tensor, group=None) -> torch.Tensor:
    """All-gather along the last dim (rank order) forward, own slice of the gradient backward."""
    return _GatherFromRegion.apply(x, group) if _active(group) else x


def all_reduce_max(x: torch.Tensor, group=None) -> torch.Tensor:
    """In-place MAX all-reduce outside autograd (no-op in one process); returns ``x``."""
    if _active(group):
        dist.all_reduce(x, op=dist.ReduceOp.MAX, group=group)
    return x


def all_reduce_sum(x: torch.Tensor, group=None) -> torch.Tensor:
    """In-place SUM all-reduce outside autograd (no-op in one process); returns ``x``."""
    if _active(group):
        dist.all_reduce(x, op=dist.ReduceOp.SUM, group=group)
    return x
