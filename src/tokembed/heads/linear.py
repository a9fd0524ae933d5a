"""vectors -> logits: the linear output heads (untied and tied) and the cross-entropy they share.

Every head maps hidden states ``h`` (..., D) to logits ``z`` (..., V) and offers
``log_prob(h)`` (full-vocabulary log-probabilities) and ``loss(h, targets)`` (per-token
cross-entropy in nats), so designs with a fast training path (adaptive softmax) plug in
without the trainer knowing. The adaptive softmax is :mod:`tokembed.heads.adaptive`.

- untied: ``z = W^T h + b``, ``W ∈ R^{D×V}`` (stored as ``nn.Linear`` weight ``(V, D)``)
- tied:   ``z = E h (+ b)``, sharing storage with the input embedding's ``E``

>>> import torch
>>> from tokembed.embeddings import TokenEmbedding
>>> emb = TokenEmbedding(5, 3)
>>> head = TiedHead(emb)
>>> h = torch.randn(2, 3)
>>> torch.equal(head(h), h @ emb.weight.T)
True
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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
    """Shared log_prob/loss on top of ``forward(h) -> logits``."""

    def log_prob(self, h: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
        z = self(h)
        return F.log_softmax(z.float() / temperature, dim=-1)  # (..., V)

    def loss(self, h: torch.Tensor, targets: torch.Tensor, **kwargs) -> torch.Tensor:
        return cross_entropy(self(h), targets, **kwargs)


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
        return self.proj(h)  # (..., D) -> (..., V): z = W^T h + b

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
            return fast(h, self.bias)  # (..., V): the embedding's own z = E h + b without building E
        return self.forward_reference(h)

    def forward_reference(self, h: torch.Tensor) -> torch.Tensor:
        E = self.embedding.weight_matrix()  # (V, D)
        return F.linear(h, E, self.bias)  # (..., V): z = E h + b

    def weight_matrix(self) -> torch.Tensor:
        return self.embedding.weight_matrix()
