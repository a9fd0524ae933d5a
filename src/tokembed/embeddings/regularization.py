"""Embedding regularization as wrappers around any embedding: drop token types or token positions.

Unlike ``nn.Dropout`` on the embedding output (which zeroes single coordinates independently),
these drop whole vectors, and they wrap any embedding of this package (composition), so the
wrapped module keeps the interface (``num_embeddings``, ``embedding_dim``, ``weight_matrix()``).

- :class:`EmbeddingDropout` (Gal & Ghahramani 2016, §4; Merity et al. 2018 "AWD-LSTM", §4.3):
  one Bernoulli mask ``m ∈ {0, 1}^V`` per batch over the *vocabulary*; every occurrence of a
  dropped type becomes the zero vector, kept rows are scaled by ``1/(1-p)``:
  ``e_t = E[i_t] · m[i_t] / (1-p)``. Equivalent to looking up in the masked table
  ``diag(m) E / (1-p)`` (:func:`embedding_dropout_reference`, AWD-LSTM's ``embedded_dropout``)
  but costs ``O(B·T·D)`` instead of ``O(V·D)``.
- :class:`TokenDropout` (word dropout, Iyyer et al. 2015; Bowman et al. 2016 §3.3): each
  *position* is dropped independently with probability ``p``, either zeroed (``mode="zero"``)
  or its id replaced by ``replacement_id`` (e.g. ``<unk>``/``<mask>``) before the lookup.

Both are seeded (a private generator; the same seed gives the same mask sequence) and are
the identity in eval mode. Shapes: B batch, T time, V vocab, D model dim.

>>> import torch
>>> from tokembed.embeddings import TokenEmbedding
>>> drop = EmbeddingDropout(TokenEmbedding(4, 2), p=0.5, seed=0)
>>> x = drop(torch.tensor([[1, 1, 2, 3]]))
>>> torch.equal(x[0, 0], x[0, 1])  # the same type is dropped or kept everywhere in the batch
True
>>> torch.equal(drop.eval()(torch.tensor([[1]])), drop.embedding(torch.tensor([[1]])))
True
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .lookup import check_ids

__all__ = ["EmbeddingDropout", "TokenDropout", "embedding_dropout_reference"]


def _check_p(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"p={p} must be in [0, 1); it is the probability of dropping")
    return float(p)


class _Seeded:
    """A CPU generator (seeded) or the global RNG (seed None)."""

    def __init__(self, seed: int | None):
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def bernoulli_keep(self, shape, p: float, device) -> torch.Tensor:
        keep = torch.rand(shape, generator=self.generator) >= p  # bool, P(keep) = 1 - p
        return keep.to(device)


class EmbeddingDropout(nn.Module):
    """Drop whole token types for a batch: ``e_t = E[i_t] · m[i_t] / (1-p)``, ``m ~ Bernoulli(1-p)^V``.

    Args:
        embedding: any embedding module of this package (wrapped, not copied). The mask covers
            its V ids, so ids must be below V in training (a ``HashEmbedding``'s ids beyond V
            are rejected here).
        p: probability of dropping a type.
        seed: seed of the private generator (None: the global torch RNG).
    """

    def __init__(self, embedding: nn.Module, p: float, *, seed: int | None = None):
        super().__init__()
        self.embedding = embedding
        self.p = _check_p(p)
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
        self._rng = _Seeded(seed)

    def sample_mask(self, device=None) -> torch.Tensor:
        """A fresh vocabulary mask ``m / (1-p)``, (V,) float: 0 for dropped types, ``1/(1-p)`` for kept."""
        keep = self._rng.bernoulli_keep((self.num_embeddings,), self.p, device)
        return keep.float() / (1.0 - self.p)

    def forward(self, ids: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embedding(ids)  # (B, T, D)
        if not self.training or self.p == 0.0:
            return x
        check_ids(ids, self.num_embeddings, where="EmbeddingDropout")
        m = self.sample_mask(ids.device) if mask is None else mask  # (V,)
        return x * m[ids].unsqueeze(-1).to(x.dtype)  # (B, T, D) = E[i_t] · m[i_t] / (1-p)

    def weight_matrix(self) -> torch.Tensor:
        """The undropped table (a tied head does not drop types)."""
        return self.embedding.weight_matrix()

    def extra_repr(self) -> str:
        return f"p={self.p}"


def embedding_dropout_reference(weight: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Slow reference (AWD-LSTM's ``embedded_dropout``): mask the whole (V, D) table, then look up.

    ``mask`` is :meth:`EmbeddingDropout.sample_mask` (V,): already divided by ``1-p``.
    """
    masked = weight * mask.unsqueeze(1)  # (V, D) = diag(m) E / (1-p)
    return nn.functional.embedding(ids, masked)  # (B, T, D)


class TokenDropout(nn.Module):
    """Drop token positions independently with probability ``p`` (word dropout).

    Args:
        embedding: any embedding module of this package (wrapped).
        p: probability of dropping a position.
        mode: ``"zero"`` (the position's vector becomes 0) or ``"replace"`` (its id becomes
            ``replacement_id`` before the lookup, so the model sees e.g. ``<unk>``).
        replacement_id: the id used by ``mode="replace"``.
        keep_ids: ids never dropped (padding, BOS/EOS).
        rescale: in ``"zero"`` mode, scale kept positions by ``1/(1-p)`` (off by default, as
            word dropout usually is).
        seed: seed of the private generator (None: the global torch RNG).
    """

    def __init__(
        self,
        embedding: nn.Module,
        p: float,
        *,
        mode: str = "zero",
        replacement_id: int | None = None,
        keep_ids: Iterable[int] = (),
        rescale: bool = False,
        seed: int | None = None,
    ):
        super().__init__()
        self.embedding = embedding
        self.p = _check_p(p)
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
        if mode not in ("zero", "replace"):
            raise ConfigError(f"mode={mode!r} is not known; choose 'zero' or 'replace'")
        if mode == "replace" and (replacement_id is None or not 0 <= replacement_id < self.num_embeddings):
            raise ConfigError(
                f"mode='replace' needs replacement_id in [0, {self.num_embeddings}), got {replacement_id}; "
                "pass the id of the <unk> or <mask> token"
            )
        self.mode, self.replacement_id, self.rescale = mode, replacement_id, rescale
        self.register_buffer("keep_ids", torch.tensor(sorted(set(keep_ids)), dtype=torch.long), persistent=False)
        self._rng = _Seeded(seed)

    def sample_drop(self, ids: torch.Tensor) -> torch.Tensor:
        """A fresh position mask, (B, T) bool: True where the position is dropped."""
        drop = ~self._rng.bernoulli_keep(tuple(ids.shape), self.p, ids.device)
        if self.keep_ids.numel():
            drop &= ~torch.isin(ids, self.keep_ids.to(ids.device))
        return drop

    def forward(self, ids: torch.Tensor, *, drop: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return self.embedding(ids)
        check_ids(ids, self.num_embeddings, where="TokenDropout")
        drop = self.sample_drop(ids) if drop is None else drop  # (B, T) bool
        if self.mode == "replace":
            return self.embedding(ids.masked_fill(drop, self.replacement_id))  # (B, T, D)
        x = self.embedding(ids).masked_fill(drop.unsqueeze(-1), 0.0)  # (B, T, D)
        return x / (1.0 - self.p) if self.rescale else x

    def weight_matrix(self) -> torch.Tensor:
        return self.embedding.weight_matrix()

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"
