"""FactorizedEmbedding: a low-rank table ``E = A B`` (ALBERT, Lan et al. 2020, §3.1).

Unlike :class:`TokenEmbedding` (``V·D`` parameters) it stores ``A ∈ R^{V×r}`` and
``B ∈ R^{r×D}``: ``V·r + r·D`` parameters, a saving when ``r ≪ D``. The lookup is
``e_t = A[i_t] B`` (the full ``E`` is never built), and a tied head gets the fast path
``z = E h = A (B h)``, i.e. ``(h Bᵀ) Aᵀ`` for row vectors, through :meth:`logits`:
``O(r·(D + V))`` per token instead of ``O(V·D)``.

Shapes: B batch, T time, V vocab, D model dim, r rank.

>>> import torch
>>> emb = FactorizedEmbedding(1000, 64, 8)
>>> sum(p.numel() for p in emb.parameters())  # V·r + r·D = 1000·8 + 8·64
8512
>>> emb(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 64])
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .lookup import check_ids

__all__ = ["FactorizedEmbedding"]


class FactorizedEmbedding(nn.Module):
    """``E = A B`` with ``A ∈ R^{V×r}``, ``B ∈ R^{r×D}``.

    Args:
        num_embeddings: V.
        embedding_dim: D.
        rank: r (1 ≤ r ≤ D; r = D is allowed but saves nothing).
        padding_idx: row of ``A`` kept at zero and never updated, so ``E[padding_idx] = 0``.
        scale: multiply outputs by √D.
        init_std: std of the entries of ``E = A B`` at init (A and B are each drawn with std
            ``√(init_std/√r)``, so ``Var(E_ij) = r·σ_A²·σ_B² = init_std²``).
        validate: check ids before the lookup.
        seed: init seed.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        rank: int,
        *,
        padding_idx: int | None = None,
        scale: bool = False,
        init_std: float = 0.02,
        validate: bool = True,
        seed: int | None = 0,
    ):
        super().__init__()
        if not 1 <= rank <= embedding_dim:
            raise ConfigError(f"rank={rank} must be in [1, D={embedding_dim}]; a rank above D only adds parameters")
        self.num_embeddings, self.embedding_dim, self.rank = num_embeddings, embedding_dim, rank
        self.padding_idx = padding_idx
        self.scale = math.sqrt(embedding_dim) if scale else 1.0
        self.validate = validate
        self.A = nn.Parameter(torch.empty(num_embeddings, rank))  # (V, r)
        self.B = nn.Parameter(torch.empty(rank, embedding_dim))  # (r, D)
        self.reset_parameters(init_std=init_std, seed=seed)

    @torch.no_grad()
    def reset_parameters(self, *, init_std: float = 0.02, seed: int | None = 0) -> None:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        std = math.sqrt(init_std / math.sqrt(self.rank))
        a = torch.empty(self.A.shape).normal_(0.0, std, generator=g)
        b = torch.empty(self.B.shape).normal_(0.0, std, generator=g)
        if self.padding_idx is not None:
            a[self.padding_idx] = 0
        self.A.copy_(a)
        self.B.copy_(b)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings, where="FactorizedEmbedding")
        a = F.embedding(ids, self.A, self.padding_idx)  # (B, T, r) = A[i_t]
        x = a @ self.B  # (B, T, D): e_t = A[i_t] B
        return x * self.scale if self.scale != 1.0 else x

    def logits(self, h: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Tied-head logits ``z = E h (+ b) = A (B h)``, without building ``E``: (..., D) -> (..., V)."""
        u = F.linear(h, self.B)  # (..., r) = h Bᵀ
        return F.linear(u, self.A, bias)  # (..., V) = (h Bᵀ) Aᵀ + b

    def weight_matrix(self) -> torch.Tensor:
        """The full table ``E = A B``, (V, D), materialised (differentiable)."""
        return self.A @ self.B

    @torch.no_grad()
    def load_matrix(self, matrix: torch.Tensor) -> None:
        """Set ``A, B`` to the best rank-r approximation of ``matrix`` (V, D) (truncated SVD, Eckart–Young).

        ``A = U_r √S_r``, ``B = √S_r V_rᵀ`` (the singular values split evenly between the factors).
        """
        m = torch.as_tensor(matrix, dtype=torch.float64, device="cpu")
        if tuple(m.shape) != (self.num_embeddings, self.embedding_dim):
            raise ConfigError(
                f"matrix has shape {tuple(m.shape)}, expected (V, D) = ({self.num_embeddings}, {self.embedding_dim})"
            )
        u, s, vh = torch.linalg.svd(m, full_matrices=False)  # u (V, k), s (k,), vh (k, D)
        r = self.rank
        root = s[:r].sqrt()
        a = u[:, :r] * root  # (V, r)
        if self.padding_idx is not None:
            a[self.padding_idx] = 0
        self.A.copy_(a.to(self.A))
        self.B.copy_((root[:, None] * vh[:r]).to(self.B))  # (r, D)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, rank={self.rank}, padding_idx={self.padding_idx}"
