"""AdaptiveInput: frequency bands of decreasing width, each projected to D (Baevski & Auli 2019).

Unlike :class:`~tokembed.embeddings.lookup.TokenEmbedding` (one ``V×D`` table), the vocabulary
is sorted by frequency and cut into bands by ``cutoffs``; band ``k`` holds ``n_k`` rows of width
``d_k = ⌊D / factor^k⌋`` and a projection ``P_k ∈ R^{D×d_k}`` back to ``D``. Frequent tokens get
wide vectors, the long tail narrow ones, so the table shrinks from ``V·D`` to

    params = Σ_k n_k·d_k + Σ_{k: d_k≠D} d_k·D          (band 0 has no projection when d_0 = D)

Unlike FactorizedEmbedding (one rank r for every token), the width depends on frequency.

Index stability: callers always pass **tokenizer ids**. The module keeps the frequency order
as buffers (saved in ``state_dict``): ``order[r]`` is the tokenizer id of rank ``r`` and
``rank[i]`` is the rank of tokenizer id ``i`` (``rank[order] == arange(V)``); the forward pass
maps ``i -> rank[i]`` itself and ``weight_matrix()`` is returned in tokenizer-id order.

Shapes: B batch, T time, N = B·T tokens, V vocab, D model dim, n_k / d_k rows / width of band k.

>>> import torch
>>> counts = torch.tensor([1, 50, 7, 300, 2, 9])
>>> frequency_permutation(counts).tolist()      # tokenizer ids, most frequent first
[3, 1, 5, 2, 4, 0]
>>> emb = AdaptiveInput.from_counts(counts, 8, cutoffs=[2, 4], factor=2)
>>> emb.band_dims, emb.band_sizes
([8, 4, 2], [2, 2, 2])
>>> emb(torch.tensor([[3, 0]])).shape
torch.Size([1, 2, 8])
>>> adaptive_param_count(6, 8, [2, 4], 2)        # 2·8 + 2·4 + 2·2 + (4·8 + 2·8)
76
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .lookup import check_ids

__all__ = [
    "AdaptiveInput",
    "frequency_permutation",
    "inverse_permutation",
    "band_bounds",
    "band_dims",
    "adaptive_param_count",
]


def frequency_permutation(counts) -> torch.Tensor:
    """Tokenizer ids sorted by descending count (ties: smaller id first); ``order[r] = id``.

    ``counts`` is any 1-D sequence/array/tensor of length V (unseen tokens count 0).
    """
    c = torch.as_tensor(counts)
    if c.dim() != 1 or c.numel() == 0:
        raise ConfigError(f"counts must be a non-empty 1-D sequence (one count per token id), got shape {tuple(c.shape)}")
    if c.dtype.is_floating_point and not bool(torch.isfinite(c).all()):
        raise ConfigError("counts contain NaN/inf; pass finite token counts")
    if bool((c < 0).any()):
        bad = (c < 0).nonzero().flatten()[:5].tolist()
        raise ConfigError(f"counts must be >= 0; token ids {bad} have negative counts")
    return torch.sort(-c.to(torch.float64), stable=True).indices  # (V,) ids by rank


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    """``rank`` with ``rank[order[r]] = r``: tokenizer id -> frequency rank."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return rank


def _check_permutation(order, num_embeddings: int) -> torch.Tensor:
    p = torch.as_tensor(order)
    if p.dtype.is_floating_point or p.dim() != 1 or p.numel() != num_embeddings:
        raise ConfigError(
            f"permutation must be a 1-D integer tensor of length V={num_embeddings} (order[rank] = tokenizer id), "
            f"got dtype {p.dtype} shape {tuple(p.shape)}; build it with frequency_permutation(counts)"
        )
    p = p.to(torch.long)
    seen = torch.zeros(num_embeddings, dtype=torch.bool)
    if bool((p < 0).any()) or bool((p >= num_embeddings).any()):
        raise ConfigError(f"permutation has values outside [0, {num_embeddings}); it must list every id once")
    seen[p] = True
    if not bool(seen.all()):
        missing = (~seen).nonzero().flatten()[:5].tolist()
        raise ConfigError(f"permutation is not a permutation of 0..{num_embeddings - 1}: ids {missing} are missing")
    return p


def band_bounds(num_embeddings: int, cutoffs: Sequence[int]) -> list[tuple[int, int]]:
    """Rank ranges ``[lo, hi)`` of each band; cutoffs are increasing ranks in ``(0, V]`` (V is implied as the last bound).

    A repeated cutoff, or a last cutoff equal to V, leaves a tail band **empty**: vocabulary
    surgery writes them when a band loses every token, since removing the band would change the
    widths of the bands after it. An empty band holds no row and its cluster gets no probability
    (:class:`~tokembed.heads.adaptive.AdaptiveSoftmax` masks its logit). The shortlist (band 0)
    is never empty.

    >>> band_bounds(10, [2, 5])
    [(0, 2), (2, 5), (5, 10)]
    >>> band_bounds(10, [2, 2])      # band 1 is empty
    [(0, 2), (2, 2), (2, 10)]
    """
    cuts = [int(c) for c in cutoffs]
    if not cuts or cuts != sorted(cuts) or cuts[0] <= 0 or cuts[-1] > num_embeddings:
        raise ConfigError(
            f"cutoffs={list(cutoffs)} must be a non-empty, increasing list of ranks inside (0, V={num_embeddings}]; "
            f"e.g. cutoffs=[V//16, V//4] (V itself is implied as the last bound)"
        )
    edges = [0, *cuts, num_embeddings]
    return list(zip(edges[:-1], edges[1:]))


def band_dims(embedding_dim: int, num_bands: int, factor: float) -> list[int]:
    """Width of band k: ``d_k = ⌊D / factor^k⌋`` (the same rule as PyTorch's/fairseq's tail clusters).

    >>> band_dims(512, 3, 4.0)
    [512, 128, 32]
    """
    if factor < 1:
        raise ConfigError(f"factor={factor} must be >= 1 (band k has width D / factor^k)")
    dims = [int(embedding_dim // (factor**k)) for k in range(num_bands)]
    if dims[-1] < 1:
        raise ConfigError(
            f"band {num_bands - 1} would have width D/factor^{num_bands - 1} = {embedding_dim / factor ** (num_bands - 1):.3g} < 1; "
            f"use fewer cutoffs or a smaller factor (D={embedding_dim}, factor={factor})"
        )
    return dims


def adaptive_param_count(num_embeddings: int, embedding_dim: int, cutoffs: Sequence[int], factor: float) -> int:
    """``Σ_k n_k·d_k + Σ_{k: d_k≠D} d_k·D`` — parameters of :class:`AdaptiveInput`."""
    bounds = band_bounds(num_embeddings, cutoffs)
    dims = band_dims(embedding_dim, len(bounds), factor)
    rows = sum((hi - lo) * d for (lo, hi), d in zip(bounds, dims))
    proj = sum(d * embedding_dim for d in dims if d != embedding_dim)
    return rows + proj


class AdaptiveInput(nn.Module):
    """Adaptive input embedding: ``e_t = P_k E_k[rank(i_t) - lo_k]`` for the band ``k`` holding ``rank(i_t)``.

    Args:
        num_embeddings: V.
        embedding_dim: D.
        cutoffs: rank boundaries of the bands (V is implied as the last), e.g. ``[4000, 32000]``.
        factor: width divisor per band (``d_k = ⌊D / factor^k⌋``; 4 in Baevski & Auli).
        permutation: ``order`` (V,) with ``order[r]`` = tokenizer id of frequency rank r
            (see :func:`frequency_permutation`); None = tokenizer ids are already frequency-sorted.
        padding_idx: tokenizer id whose vector is kept at zero and never updated.
        validate: check ids before the lookup.
        seed: init seed. Init as fairseq: ``E_k ~ N(0, d_k^{-1/2})``, ``P_k`` Xavier-uniform.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        cutoffs: Sequence[int],
        factor: float = 4.0,
        *,
        permutation=None,
        padding_idx: int | None = None,
        validate: bool = True,
        seed: int | None = 0,
    ):
        super().__init__()
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.bounds = band_bounds(self.num_embeddings, cutoffs)
        self.cutoffs = [hi for _, hi in self.bounds[:-1]]
        self.factor = float(factor)
        self.band_dims = band_dims(self.embedding_dim, len(self.bounds), self.factor)
        self.band_sizes = [hi - lo for lo, hi in self.bounds]
        self.validate = validate
        if permutation is None:
            order = torch.arange(self.num_embeddings)
        else:
            order = _check_permutation(permutation, self.num_embeddings)
        self.register_buffer("order", order)  # (V,) rank -> tokenizer id
        self.register_buffer("rank", inverse_permutation(order))  # (V,) tokenizer id -> rank
        if padding_idx is not None and not 0 <= padding_idx < self.num_embeddings:
            raise ConfigError(f"padding_idx={padding_idx} is outside [0, {self.num_embeddings})")
        self.padding_idx = padding_idx
        # band k: E_k (n_k, d_k); projection P_k: Linear(d_k -> D), weight (D, d_k); none when d_k == D
        self.bands = nn.ParameterList([nn.Parameter(torch.empty(n, d)) for n, d in zip(self.band_sizes, self.band_dims)])
        self.projections = nn.ModuleList(
            [nn.Identity() if d == self.embedding_dim else nn.Linear(d, self.embedding_dim, bias=False) for d in self.band_dims]
        )
        self.reset_parameters(seed=seed)

    @classmethod
    def from_counts(cls, counts, embedding_dim: int, cutoffs: Sequence[int], factor: float = 4.0, **kwargs) -> AdaptiveInput:
        """Build with V = len(counts) and the frequency order of ``counts`` (tokenizer-id indexed)."""
        order = frequency_permutation(counts)
        return cls(order.numel(), embedding_dim, cutoffs, factor, permutation=order, **kwargs)

    @torch.no_grad()
    def reset_parameters(self, *, seed: int | None = 0) -> None:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        for E, P, d in zip(self.bands, self.projections, self.band_dims):
            E.copy_(torch.empty(E.shape).normal_(0.0, d**-0.5, generator=g))
            if isinstance(P, nn.Linear):
                bound = (6.0 / (P.in_features + P.out_features)) ** 0.5  # Xavier-uniform
                P.weight.copy_(torch.empty(P.weight.shape).uniform_(-bound, bound, generator=g))
        if self.padding_idx is not None:
            k, j = self._locate(int(self.rank[self.padding_idx]))
            self.bands[k][j] = 0

    def _locate(self, r: int) -> tuple[int, int]:
        """Band index and row inside the band of rank ``r``."""
        for k, (lo, hi) in enumerate(self.bounds):
            if lo <= r < hi:
                return k, r - lo
        raise AssertionError(r)

    def _band_padding(self, k: int) -> int | None:
        if self.padding_idx is None:
            return None
        kk, j = self._locate(int(self.rank[self.padding_idx]))
        return j if kk == k else None

    def band_weights(self, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(E_k (n_k, d_k), P_k weight (D, d_k) or None)`` — what a tied AdaptiveSoftmax shares."""
        P = self.projections[k]
        return self.bands[k], (P.weight if isinstance(P, nn.Linear) else None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings, where="AdaptiveInput")
        r = self.rank[ids].reshape(-1)  # (N,) frequency ranks
        out = self.bands[0].new_zeros(r.numel(), self.embedding_dim)  # (N, D)
        for k, (lo, hi) in enumerate(self.bounds):
            rows = ((r >= lo) & (r < hi)).nonzero().squeeze(1)  # (N_k,)
            if rows.numel() == 0:
                continue
            e = F.embedding(r.index_select(0, rows) - lo, self.bands[k], self._band_padding(k))  # (N_k, d_k)
            out = out.index_copy(0, rows, self.projections[k](e))  # (N_k, D) = P_k e
        return out.reshape(*ids.shape, self.embedding_dim)  # (B, T, D)

    def _reference_forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Slow, readable reference: one token at a time."""
        out = []
        for i in ids.reshape(-1).tolist():
            k, j = self._locate(int(self.rank[i]))
            out.append(self.projections[k](self.bands[k][j]))
        return torch.stack(out).reshape(*ids.shape, self.embedding_dim)

    def weight_matrix(self) -> torch.Tensor:
        """The full table (V, D) in tokenizer-id order: row i = ``P_k E_k[rank(i) - lo_k]``."""
        by_rank = torch.cat([P(E) for E, P in zip(self.bands, self.projections)])  # (V, D) in rank order
        return by_rank.index_select(0, self.rank)  # (V, D) in tokenizer-id order

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, cutoffs={self.cutoffs}, factor={self.factor}, "
            f"band_dims={self.band_dims}, padding_idx={self.padding_idx}"
        )
