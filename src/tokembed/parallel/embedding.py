"""VocabParallelEmbedding: the lookup ``e_t = E[i_t]`` with the rows of ``E`` split across ranks.

Unlike :class:`~tokembed.embeddings.TokenEmbedding` (the whole ``(V, D)`` table in every
process), rank ``r`` of the group holds the contiguous rows ``[lo, hi)`` of the table padded to
``VocabShard.padded`` rows (Megatron-LM's ``VocabParallelEmbedding``). Each rank looks up the
ids that fall in its slice, writes zero rows for the others, and one all-reduce SUM
(:func:`~tokembed.parallel.comm.reduce_from_region`) gives every rank the full lookup; the
backward is the identity, so each shard's gradient is the single-process gradient of its rows.

Every rank of the group must receive the same ids (the group is a tensor-parallel group; data
parallelism runs across groups). Padding rows (``≥ V``) stay zero: ids ``≥ V`` are rejected.

Shapes: B batch, T time, V vocab, D model dim, W world size, V/W rows per rank (``shard.rows``).

>>> import torch
>>> emb = VocabParallelEmbedding(100, 4)  # one process: every row is local, 100 padded to 128
>>> tuple(emb.weight.shape), emb.shard.n_valid
((128, 4), 100)
>>> emb(torch.tensor([[0, 99]])).shape
torch.Size([1, 2, 4])
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from ..embeddings.lookup import check_ids
from ..errors import ConfigError
from .comm import VocabShard, all_reduce_sum, group_rank, group_size, reduce_from_region

__all__ = ["VocabParallelEmbedding", "init_shard_", "load_shard_", "shard_rows", "gather_rows", "gather_rows_to"]


def init_shard_(weight: torch.Tensor, shard: VocabShard, *, std: float, seed: int | None) -> None:
    """Normal(0, std) on the real rows, seeded by ``(seed, rank)``; padding rows zero. In place, (V/W, D)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + shard.rank) if seed is not None else None
    with torch.no_grad():
        weight.zero_()
        if shard.n_valid:
            weight[: shard.n_valid].copy_(torch.empty(shard.n_valid, weight.shape[1]).normal_(0.0, std, generator=g))


def load_shard_(weight: torch.Tensor, full: torch.Tensor, shard: VocabShard, *, what: str) -> None:
    """Copy this rank's rows of a full ``(V, ...)`` tensor into its ``(V/W, ...)`` shard; padding rows zero."""
    if full.shape[0] != shard.vocab_size or full.shape[1:] != weight.shape[1:]:
        raise ConfigError(
            f"{what}: the full tensor has shape {tuple(full.shape)} but this layer expects "
            f"({shard.vocab_size}, {', '.join(map(str, weight.shape[1:]))}); pass the unpadded single-process tensor"
        )
    with torch.no_grad():
        weight.zero_()
        weight[: shard.n_valid].copy_(full[shard.lo : shard.lo + shard.n_valid])


def shard_rows(full: torch.Tensor, shard: VocabShard, *, what: str) -> torch.Tensor:
    """This rank's ``(V/W, ...)`` rows of a full ``(V, ...)`` tensor, padding rows zero (a new tensor, no collective).

    >>> shard_rows(torch.arange(3.0), VocabShard.build(3, rank=0, world_size=1), what="bias").shape
    torch.Size([64])
    """
    out = full.new_zeros((shard.rows, *full.shape[1:]))
    load_shard_(out, full, shard, what=what)
    return out


def gather_rows_to(local: torch.Tensor, shard: VocabShard, group=None, *, dst: int = 0) -> torch.Tensor | None:
    """The full ``(V, ...)`` tensor on group rank ``dst`` (None on the others) from every rank's ``(V/W, ...)``
    shard: one ``gather``, so only ``dst`` holds the full tensor (checkpoints). A collective; no autograd."""
    local = local.detach().contiguous()
    if group_size(group) == 1:
        return local[: shard.vocab_size].clone()
    parts = [torch.empty_like(local) for _ in range(shard.world_size)] if group_rank(group) == dst else None
    dist.gather(local, parts, dst=dist.get_global_rank(group, dst) if group is not None else dst, group=group)
    return torch.cat(parts)[: shard.vocab_size] if parts is not None else None


def gather_rows(local: torch.Tensor, shard: VocabShard, group=None) -> torch.Tensor:
    """The full ``(V, ...)`` tensor from every rank's ``(V/W, ...)`` shard (collective; no autograd)."""
    full = local.new_zeros((shard.padded, *local.shape[1:]))
    full[shard.lo : shard.hi] = local.detach()
    return all_reduce_sum(full, group)[: shard.vocab_size]


class VocabParallelEmbedding(nn.Module):
    """Row-sharded lookup table; ``forward(ids (B, T)) -> (B, T, D)`` on every rank.

    Args:
        num_embeddings: V (unpadded; the tokenizer's size).
        embedding_dim: D.
        group: the ``torch.distributed`` process group to shard over (default: the world;
            without an initialised group, one process holding every row).
        init_std: std of the normal init (0.02 as GPT-2); each shard is seeded by ``(seed, rank)``,
            so use :meth:`load_full_` to start from a single-process table.
        validate: check ids before the lookup (costs one reduction).
        scale: multiply the rows by √D (Vaswani et al. 2017, §3.4), as ``TokenEmbedding(scale=True)``; a tied
            head uses the unscaled table.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, group=None, *, init_std: float = 0.02, seed: int | None = 0, validate: bool = True,
                 scale: bool = False):
        super().__init__()
        if int(embedding_dim) < 1:
            raise ConfigError(f"embedding_dim={embedding_dim} must be >= 1")
        self.group = group
        self.shard = VocabShard.for_group(num_embeddings, group)
        self.num_embeddings = self.shard.vocab_size
        self.embedding_dim = int(embedding_dim)
        self.validate = validate
        self.scale = math.sqrt(self.embedding_dim) if scale else 1.0
        self.weight = nn.Parameter(torch.empty(self.shard.rows, self.embedding_dim))  # (V/W, D): rows [lo, hi)
        init_shard_(self.weight, self.shard, std=init_std, seed=seed)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings, where="VocabParallelEmbedding")
        local = ids - self.shard.lo  # (B, T)
        outside = (local < 0) | (local >= self.shard.n_valid)  # (B, T) ids another rank owns
        rows = F.embedding(local.masked_fill(outside, 0), self.weight)  # (B, T, D)
        rows = rows.masked_fill(outside.unsqueeze(-1), 0.0)  # zero rows for ids outside the slice
        out = reduce_from_region(rows, self.group)  # Σ over ranks: every id found on exactly one
        return out * self.scale if self.scale != 1.0 else out

    @torch.no_grad()
    def load_full_(self, weight: torch.Tensor) -> VocabParallelEmbedding:
        """Take this rank's rows of a single-process table ``(V, D)``."""
        load_shard_(self.weight, weight, self.shard, what="VocabParallelEmbedding.load_full_")
        return self

    def weight_matrix(self) -> torch.Tensor:
        """The full ``(V, D)`` table, gathered from every rank (a collective: call it on all ranks; no grad)."""
        return gather_rows(self.weight, self.shard, self.group)

    def extra_repr(self) -> str:
        s = self.shard
        scale = ", scale=True" if self.scale != 1.0 else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{scale}, rows=[{s.lo}, {s.hi}) of {s.padded}, rank={s.rank}/{s.world_size}"
