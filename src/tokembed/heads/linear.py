"""vectors -> logits: the linear output heads (untied and tied) and the cross-entropy they share.

Every head maps hidden states ``h`` (..., D) to logits ``z`` (..., V) and offers
``log_prob(h)`` (full-vocabulary log-probabilities) and ``loss(h, targets)`` (per-token
cross-entropy in nats), so designs with a fast training path (adaptive softmax) plug in
without the trainer knowing. The adaptive softmax is :mod:`tokembed.heads.adaptive`.

- untied: ``z = W^T h + b``, ``W ∈ R^{D×V}`` (stored as ``nn.Linear`` weight ``(V, D)``)
- tied:   ``z = E h (+ b)``, sharing storage with the input embedding's ``E``

A table padded past the tokenizer's n tokens (``set_num_tokens(n)``) gives ``-inf`` logits on the
padding rows, so they get exactly zero probability.

>>> import torch
>>> from tokembed.embeddings import TokenEmbedding
>>> emb = TokenEmbedding(5, 3)
>>> head = TiedHead(emb)
>>> h = torch.randn(2, 3)
>>> torch.equal(head(h), h @ emb.weight.T)
True
>>> head.set_num_tokens(4)                      # row 4 is padding
>>> head(h)[0, 4].item(), head.log_prob(h).exp()[0, 4].item()
(-inf, 0.0)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, TokenIdError

__all__ = ["UntiedHead", "TiedHead", "cross_entropy"]


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    z_loss: float = 0.0,
) -> torch.Tensor:
    """CE of ``softmax(z / τ)`` against ``targets``; logits (..., V), targets (...).

    ``z_loss = c > 0`` adds ``c·(log Z)²`` per kept token, ``log Z = logsumexp(z / τ)`` (PaLM's
    auxiliary loss, c = 1e-4 there), which keeps the log-partition near 0.
    """
    z = logits if temperature == 1.0 else logits / temperature
    zN, t = z.reshape(-1, z.shape[-1]).float(), targets.reshape(-1)  # (N, V), (N,)
    if z_loss == 0.0:
        out = F.cross_entropy(zN, t, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
        return out.reshape(targets.shape if reduction == "none" else ())
    keep = t != ignore_index  # (N,)
    per = F.cross_entropy(zN, t, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction="none")
    per = per + z_loss * torch.logsumexp(zN, dim=-1).square() * keep  # (N,)
    if reduction == "none":
        return per.reshape(targets.shape)
    return per.sum() if reduction == "sum" else per.sum() / keep.sum()


class _Head(nn.Module):
    """Shared log_prob/loss on top of ``forward(h) -> logits``, and the padding mask.

    ``num_tokens`` (n < V): the table has V rows but the tokenizer only n tokens (rows padded to
    a multiple, ``tokembed vocab ... --pad-to-multiple-of``). Padding rows are never produced:
    their logits are ``-inf`` (so softmax, sampling and argmax give them exactly 0), and the loss
    is the cross-entropy over the n real logits — the same value as the unpadded model's, label
    smoothing and z-loss included.
    """

    num_tokens: int | None = None  # n; None = every row is a token

    def _pad(self, z: torch.Tensor) -> torch.Tensor:
        """Logits (..., V) with the padding rows' set to -inf."""
        n = self.num_tokens
        if n is None or n >= z.shape[-1]:
            return z
        return z.index_fill(-1, torch.arange(n, z.shape[-1], device=z.device), float("-inf"))

    def log_prob(self, h: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
        z = self(h)
        return F.log_softmax(z.float() / temperature, dim=-1)  # (..., V); -inf on padding rows

    def loss(self, h: torch.Tensor, targets: torch.Tensor, **kwargs) -> torch.Tensor:
        z = self(h)
        n = self.num_tokens
        if n is not None and n < z.shape[-1]:
            ignore = kwargs.get("ignore_index", -100)
            bad = (targets >= n) & (targets != ignore)
            if bool(bad.any()):
                raise TokenIdError(f"loss targets {targets[bad][:5].tolist()} are padding rows (ids >= {n}, the tokenizer's "
                                   "vocabulary size); padding rows are never produced — the targets come from another tokenizer")
            z = z[..., :n]  # (..., n): the real tokens only
        return cross_entropy(z, targets, **kwargs)

    def set_num_tokens(self, n: int | None) -> None:
        """Mask rows ``n..V-1`` as padding (None: no padding)."""
        if n is not None and not (isinstance(n, int) and 1 <= n <= self.num_embeddings):
            raise ConfigError(f"num_tokens={n!r} must be an integer in [1, {self.num_embeddings}] (the tokenizer's vocabulary "
                              "size; rows past it are padding)")
        self.num_tokens = None if n == self.num_embeddings else n


class UntiedHead(_Head):
    """``z = W^T h + b`` with its own weights."""

    def __init__(self, embedding_dim: int, num_embeddings: int, *, bias: bool = True, init_std: float = 0.02, seed: int | None = 0):
        super().__init__()
        self.proj = nn.Linear(embedding_dim, num_embeddings, bias=bias)  # weight (V, D) = W^T
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            self.proj.weight.copy_(torch.empty_like(self.proj.weight, device="cpu").normal_(0.0, init_std, generator=g))
            if bias:
                self.proj.bias.zero_()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self._pad(self.proj(h))  # (..., D) -> (..., V): z = W^T h + b

    def weight_matrix(self) -> torch.Tensor:
        return self.proj.weight  # (V, D)


class TiedHead(_Head):
    """``z = E h (+ b)``: the input embedding's table, not a copy (gradients reach E from both ends).

    If the embedding has a method ``logits(h, bias)`` (e.g. ``FactorizedEmbedding``: ``(h Bᵀ) Aᵀ``),
    it is used instead of materialising ``E``; ``forward_reference`` always builds ``E``.
    """

    def __init__(self, embedding: nn.Module, *, bias: bool = False):
        super().__init__()
        self.embedding = embedding
        self.num_embeddings = embedding.num_embeddings
        self.embedding_dim = embedding.embedding_dim
        self.bias = nn.Parameter(torch.zeros(self.num_embeddings)) if bias else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        fast = getattr(self.embedding, "logits", None)
        if callable(fast):
            return self._pad(fast(h, self.bias))  # (..., V): the embedding's own z = E h + b without building E
        return self.forward_reference(h)

    def forward_reference(self, h: torch.Tensor) -> torch.Tensor:
        E = self.embedding.weight_matrix()  # (V, D)
        return self._pad(F.linear(h, E, self.bias))  # (..., V): z = E h + b

    def weight_matrix(self) -> torch.Tensor:
        return self.embedding.weight_matrix()
