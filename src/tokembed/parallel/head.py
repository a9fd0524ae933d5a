"""VocabParallelHead: ``z = W^T h + b`` with the V logit columns split across ranks.

Unlike :class:`~tokembed.heads.UntiedHead` / :class:`~tokembed.heads.TiedHead`, ``forward(h)``
returns only this rank's columns ``(..., V/W)`` and :meth:`VocabParallelHead.loss` computes them
inside :func:`~tokembed.parallel.cross_entropy.vocab_parallel_linear_cross_entropy` (the same loss
with the projection fused in: one ``(N, V/W)`` buffer per rank), so no rank ever holds
the ``(N, V)`` logits. The input passes through
:func:`~tokembed.parallel.comm.copy_to_region` (identity forward, all-reduce SUM of ``dL/dh``
backward), because every rank's columns depend on the same ``h``.

- untied: own ``W_r ∈ R^{(V/W)×D}`` per rank;
- tied (``tie_to=VocabParallelEmbedding``): ``W_r`` *is* that embedding's shard, so gradients
  reach it from both ends, as in :class:`~tokembed.heads.TiedHead`;
- bias: sharded like the columns (``b_r ∈ R^{V/W}``); padded entries stay zero and, like the
  padded columns, get no gradient.

Shapes: N tokens, V vocab, D model dim, W world size.

>>> import torch
>>> head = VocabParallelHead(8, 100)  # one process
>>> head(torch.zeros(2, 8)).shape  # the padded local columns
torch.Size([2, 128])
>>> head.gather_logits(torch.zeros(2, 8)).shape
torch.Size([2, 100])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .comm import VocabShard, copy_to_region, gather_from_region
from .cross_entropy import vocab_parallel_linear_cross_entropy
from .embedding import VocabParallelEmbedding, gather_rows, init_shard_, load_shard_

__all__ = ["VocabParallelHead"]


class VocabParallelHead(nn.Module):
    """Column-sharded output head; ``forward(h (..., D)) -> local logits (..., V/W)``.

    Args:
        embedding_dim: D.
        num_embeddings: V (unpadded).
        group: process group (default: the world; one process without one).
        bias: a sharded bias ``b``.
        tie_to: a :class:`VocabParallelEmbedding` (same V, D, group) whose shard is ``W_r``.
        init_std / seed: init of an untied ``W`` (per shard, seeded by ``(seed, rank)``).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_embeddings: int,
        group=None,
        *,
        bias: bool = True,
        tie_to: VocabParallelEmbedding | None = None,
        init_std: float = 0.02,
        seed: int | None = 0,
    ):
        super().__init__()
        self.group = group
        self.shard = VocabShard.for_group(num_embeddings, group)
        self.num_embeddings = self.shard.vocab_size
        self.embedding_dim = int(embedding_dim)
        if tie_to is not None:
            if (tie_to.num_embeddings, tie_to.embedding_dim, tie_to.shard) != (self.num_embeddings, self.embedding_dim, self.shard):
                raise ConfigError(
                    f"tie_to is V={tie_to.num_embeddings}, D={tie_to.embedding_dim} sharded as {tie_to.shard}, but the head is "
                    f"V={self.num_embeddings}, D={self.embedding_dim} sharded as {self.shard}; build both with the same V, D and group"
                )
            self.tied = tie_to
            self._own_weight = None
        else:
            self.tied = None
            self._own_weight = nn.Parameter(torch.empty(self.shard.rows, self.embedding_dim))  # (V/W, D)
            init_shard_(self._own_weight, self.shard, std=init_std, seed=seed)
        self.bias = nn.Parameter(torch.zeros(self.shard.rows)) if bias else None  # (V/W,)

    @property
    def weight(self) -> nn.Parameter:
        """This rank's ``W_r`` (V/W, D): the tied embedding's shard or the head's own."""
        return self.tied.weight if self.tied is not None else self._own_weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = copy_to_region(h, self.group)  # backward: dL/dh summed over the ranks' columns
        return F.linear(h, self.weight, self.bias)  # (..., D) -> (..., V/W): z_r = W_r h + b_r

    def loss(self, h: torch.Tensor, targets: torch.Tensor, **kwargs) -> torch.Tensor:
        """Cross-entropy of the full softmax (options as :func:`vocab_parallel_cross_entropy`); h (..., D), targets (...).

        Fused with the projection: one ``(N, V/W)`` fp32 buffer per rank (see
        :func:`vocab_parallel_linear_cross_entropy`).
        """
        h = copy_to_region(h, self.group)
        return vocab_parallel_linear_cross_entropy(h, self.weight, self.bias, targets, self.shard, group=self.group, **kwargs)

    def gather_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The full logits ``(..., V)`` on every rank (evaluation and tests only: this is the tensor the loss avoids)."""
        return gather_from_region(self(h), self.group)[..., : self.num_embeddings]

    def log_prob(self, h: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
        """Full-vocabulary ``log softmax(z / τ)`` (..., V) via :meth:`gather_logits` (materialises (N, V))."""
        return F.log_softmax(self.gather_logits(h).float() / temperature, dim=-1)

    @torch.no_grad()
    def load_full_(self, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> VocabParallelHead:
        """Take this rank's rows of a single-process ``W`` (V, D) (untied only) and ``b`` (V,)."""
        if weight is not None:
            if self.tied is not None:
                raise ConfigError("the head is tied: load the table into the VocabParallelEmbedding (load_full_) instead")
            load_shard_(self._own_weight, weight, self.shard, what="VocabParallelHead.load_full_ weight")
        if bias is not None:
            if self.bias is None:
                raise ConfigError("the head was built with bias=False; build it with bias=True to load a bias")
            load_shard_(self.bias, bias, self.shard, what="VocabParallelHead.load_full_ bias")
        return self

    def weight_matrix(self) -> torch.Tensor:
        """The full ``W^T`` as ``(V, D)``, gathered (a collective; no grad)."""
        return gather_rows(self.weight, self.shard, self.group)

    def extra_repr(self) -> str:
        s = self.shard
        return f"{self.embedding_dim}, {self.num_embeddings}, tied={self.tied is not None}, bias={self.bias is not None}, cols=[{s.lo}, {s.hi})"
