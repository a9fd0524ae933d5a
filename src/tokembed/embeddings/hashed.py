"""HashEmbedding (Svenstrup, Hansen & Winther 2017, "Hash Embeddings for Efficient Word Representations").

Unlike :class:`TokenEmbedding` (one row per id) the rows live in a shared bucket table
``E_b ∈ R^{B×D}``. Each id ``i`` is hashed by ``k`` hash functions ``h_1..h_k`` into buckets
and its vector is the importance-weighted sum of those buckets:

    e_i = Σ_j P[i, j] · E_b[h_j(i)]        P ∈ R^{V×k} (per-token importance weights)

Parameters: ``B·D + V·k``. Ids at or beyond the trained vocabulary (``i ≥ V``) still get a
vector: their buckets come from the same hash functions and their importance row is
``P[h_0(i) mod V]`` (hashed, as the paper's hashed importance table), so a model can embed
tokens added after training.

Hash functions: the Carter–Wegman universal family ``h_j(x) = ((a_j · (x mod p) + b_j) mod p) mod B``
with the Mersenne prime ``p = 2^31 − 1``; ``a_j, b_j`` are derived from ``seed`` with BLAKE2b,
so the buckets are the same in every process and Python version (no ``hash()`` salt).

Shapes: B batch, T time, V vocab, D model dim, k hashes; ``num_buckets`` is written n_b.

>>> import torch
>>> emb = HashEmbedding(50_000, 64, num_buckets=1000, num_hashes=2)
>>> sum(p.numel() for p in emb.parameters())  # n_b·D + V·k = 1000·64 + 50000·2
164000
>>> emb(torch.tensor([[3, 10**9]])).shape  # an id far beyond V still embeds
torch.Size([1, 2, 64])
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, TokenIdError
from .lookup import check_ids

__all__ = ["HashEmbedding", "universal_hash_params", "hash_ids_reference"]

MERSENNE_P = 2**31 - 1  # prime modulus of the universal hash family (Carter & Wegman 1979)
_INT64_MAX = 2**63 - 1


def universal_hash_params(num_hashes: int, seed: int) -> list[tuple[int, int]]:
    """``(a_j, b_j)`` for ``j = 0..num_hashes`` (index 0 hashes the importance row), from BLAKE2b of the seed.

    >>> universal_hash_params(1, seed=0)[0] == universal_hash_params(1, seed=0)[0]
    True
    """
    out = []
    for j in range(num_hashes + 1):
        digest = hashlib.blake2b(f"tokembed-hash:{seed}:{j}".encode(), digest_size=16).digest()
        a = int.from_bytes(digest[:8], "little") % (MERSENNE_P - 1) + 1  # a in [1, p)
        b = int.from_bytes(digest[8:], "little") % MERSENNE_P  # b in [0, p)
        out.append((a, b))
    return out


def hash_ids_reference(ids: list[int], params: list[tuple[int, int]], modulus: int) -> list[list[int]]:
    """Readable pure-Python reference of the hash: ``[[h_j(x) for (a_j, b_j) in params] for x in ids]``."""
    return [[((a * (x % MERSENNE_P) + b) % MERSENNE_P) % modulus for a, b in params] for x in ids]


def _check_hashable_ids(ids: torch.Tensor) -> None:
    """Integer dtype and non-negative; there is no upper bound."""
    dtype = ids.dtype if isinstance(ids, torch.Tensor) else None
    if dtype is None or dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        check_ids(ids, _INT64_MAX, where="HashEmbedding")  # raises the type/dtype error
    neg = ids < 0
    if bool(neg.any()):
        raise TokenIdError(
            f"HashEmbedding: ids {ids[neg][:5].tolist()} at positions {neg.nonzero()[:5].tolist()} are negative; "
            "any id >= 0 can be hashed (also ids beyond the vocabulary), negative ids come from a bug upstream"
        )


class HashEmbedding(nn.Module):
    """``e_i = Σ_j P[i, j] · E_b[h_j(i)]`` with a shared bucket table ``E_b`` (n_b, D).

    Args:
        num_embeddings: V, the trained vocabulary (rows of the importance table ``P``;
            ``weight_matrix()`` materialises these V rows). Larger ids are accepted.
        embedding_dim: D.
        num_buckets: n_b, rows of the shared table.
        num_hashes: k hash functions per id (the paper uses 2).
        init_std: std of the entries of ``e`` at init (buckets get ``init_std/√k``, ``P ~ N(0, 1)``).
        seed: seeds the init and the hash functions.
        validate: check that ids are non-negative integers.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        num_buckets: int,
        num_hashes: int = 2,
        init_std: float = 0.02,
        seed: int = 0,
        validate: bool = True,
    ):
        super().__init__()
        if num_buckets < 1 or num_hashes < 1:
            raise ConfigError(f"num_buckets={num_buckets} and num_hashes={num_hashes} must both be >= 1")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.num_buckets, self.num_hashes, self.seed = num_buckets, num_hashes, seed
        self.validate = validate
        params = universal_hash_params(num_hashes, seed)
        # (k+1,) int64; row 0 hashes the importance row of ids >= V, rows 1..k the buckets
        self.register_buffer("hash_a", torch.tensor([a for a, _ in params], dtype=torch.long))
        self.register_buffer("hash_b", torch.tensor([b for _, b in params], dtype=torch.long))
        self.buckets = nn.Parameter(torch.empty(num_buckets, embedding_dim))  # (n_b, D) = E_b
        self.importance = nn.Parameter(torch.empty(num_embeddings, num_hashes))  # (V, k) = P
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            bucket_std = init_std / math.sqrt(num_hashes)
            self.buckets.copy_(torch.empty(num_buckets, embedding_dim).normal_(0.0, bucket_std, generator=g))
            self.importance.copy_(torch.empty(num_embeddings, num_hashes).normal_(0.0, 1.0, generator=g))

    def _universal(self, ids: torch.Tensor, j: slice) -> torch.Tensor:
        x = (ids % MERSENNE_P).unsqueeze(-1)  # (..., 1), < 2^31 so a·x < 2^62 fits int64
        return (self.hash_a[j] * x + self.hash_b[j]) % MERSENNE_P  # (..., k)

    def bucket_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Buckets ``h_1..h_k`` of each id: (B, T) -> (B, T, k) int64."""
        return self._universal(ids, slice(1, None)) % self.num_buckets

    def importance_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Row of ``P`` for each id: the id itself below V, ``h_0(id) mod V`` at or above: (B, T) int64."""
        hashed = self._universal(ids, slice(0, 1)).squeeze(-1) % self.num_embeddings
        return torch.where(ids < self.num_embeddings, ids, hashed)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            _check_hashable_ids(ids)
        ids = ids.long()
        buckets = self.bucket_ids(ids)  # (B, T, k)
        weights = F.embedding(self.importance_rows(ids), self.importance)  # (B, T, k) = P[i, :]
        k = self.num_hashes
        # Σ_j P[i, j] E_b[h_j(i)] as a weighted bag sum, without building (B, T, k, D)
        out = F.embedding_bag(
            buckets.reshape(-1, k),  # (B·T, k) bags
            self.buckets,
            per_sample_weights=weights.reshape(-1, k).to(self.buckets.dtype),
            mode="sum",
        )  # (B·T, D)
        return out.reshape(*ids.shape, self.embedding_dim)  # (B, T, D)

    def forward_reference(self, ids: torch.Tensor) -> torch.Tensor:
        """Readable reference of :meth:`forward`: gather (B, T, k, D), weight, sum over k."""
        ids = ids.long()
        vecs = self.buckets[self.bucket_ids(ids)]  # (B, T, k, D)
        weights = self.importance[self.importance_rows(ids)]  # (B, T, k)
        return (weights.unsqueeze(-1) * vecs).sum(-2)  # (B, T, D)

    def weight_matrix(self) -> torch.Tensor:
        """The V trained rows, materialised (V, D), differentiable."""
        ids = torch.arange(self.num_embeddings, device=self.buckets.device)
        return self.forward(ids.unsqueeze(0)).squeeze(0)

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, num_buckets={self.num_buckets}, num_hashes={self.num_hashes}"
        )
