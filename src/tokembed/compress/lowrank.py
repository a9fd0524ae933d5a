"""Low-rank compression: truncated SVD ``E ≈ A B`` served by ``FactorizedEmbedding``.

Unlike the quantizers, which keep every element at lower precision, low rank keeps full
precision in a smaller subspace: ``E = U Σ Vᵀ``, ``A = U_r Σ_r`` (V×r), ``B = V_rᵀ`` (r×D),
the best rank-r approximation in Frobenius norm (Eckart–Young). Parameters ``V·r + r·D``.
The rank comes from exactly one of: ``rank``, ``energy`` (smallest r with
``Σ_{i<=r} σ_i² / Σ σ_i² >= energy``) or ``target_bytes`` (largest r with ``4·(V+D)·r <= bytes``).

Shapes: V rows, D dims, r rank.

>>> import torch
>>> E = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)) @ torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
>>> lr = low_rank(E, energy=0.999)
>>> lr.rank, bool(torch.allclose(lr.A @ lr.B, E, atol=1e-4))
(4, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..embeddings.factorized import FactorizedEmbedding
from ..errors import ConfigError
from .codec import Spec, check_matrix, check_state

__all__ = ["LowRank", "low_rank", "choose_rank"]


@dataclass
class LowRank:
    A: torch.Tensor  # (V, r) = U_r Σ_r
    B: torch.Tensor  # (r, D) = V_rᵀ
    energy: float  # retained share of Σ σ_i²

    @property
    def rank(self) -> int:
        return self.A.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.A.shape[0], self.B.shape[1])

    @property
    def nbytes(self) -> int:
        return (self.A.numel() + self.B.numel()) * 4

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.A) @ self.B  # (N, D) = A[i] B

    def decode(self) -> torch.Tensor:
        return self.A @ self.B  # (V, D) = A B

    def logits(self, h: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Head logits ``z = Ê h (+ b) = (h Bᵀ) Aᵀ (+ b)`` without building Ê: (N, D) -> (N, V)."""
        return F.linear(F.linear(h, self.B), self.A, bias)

    def module(self, **kwargs):
        """A trainable ``FactorizedEmbedding`` holding A and B (fine-tuning; serving uses ``CompressedEmbedding``)."""
        V, D = self.shape
        emb = FactorizedEmbedding(V, D, self.rank, **kwargs)
        with torch.no_grad():
            emb.A.copy_(self.A)
            emb.B.copy_(self.B)
        return emb

    def state(self) -> tuple[dict, dict]:
        return {"A": self.A, "B": self.B}, {"rank": self.rank, "energy": self.energy}

    @staticmethod
    def specs(config: dict, where: str = "low-rank table") -> dict[str, Spec]:
        f32 = (torch.float32,)
        return {"A": Spec(("V", "r"), f32, finite=True), "B": Spec(("r", "D"), f32, finite=True)}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "low-rank table") -> "LowRank":
        check_state(tensors, cls.specs(config, where), where, {"r": config.get("rank")})
        e = config.get("energy")
        return cls(tensors["A"], tensors["B"], float(e) if isinstance(e, (int, float)) else float("nan"))


def choose_rank(s: torch.Tensor, shape: tuple[int, int], *, rank=None, energy=None, target_bytes=None) -> int:
    """Rank from exactly one criterion; singular values ``s`` sorted descending."""
    V, D = shape
    given = [n for n, v in (("rank", rank), ("energy", energy), ("target_bytes", target_bytes)) if v is not None]
    if len(given) != 1:
        raise ConfigError(f"give exactly one of rank, energy, target_bytes (got {given or 'none'})")
    rmax = min(V, D)
    if rank is not None:
        if not isinstance(rank, int) or not 1 <= rank <= rmax:
            raise ConfigError(f"rank={rank} is out of range for a {V}×{D} matrix; choose 1 <= rank <= min(V, D) = {rmax}")
        return rank
    if energy is not None:
        if not 0 < energy <= 1:
            raise ConfigError(f"energy={energy} must be in (0, 1], the share of Σσ² to keep (e.g. 0.9)")
        cum = torch.cumsum(s.double() ** 2, 0) / (s.double() ** 2).sum().clamp_min(1e-300)
        return min(int((cum < energy - 1e-12).sum()) + 1, rmax)
    r = int(target_bytes // (4 * (V + D)))
    if r < 1:
        raise ConfigError(f"target_bytes={target_bytes} is below one rank-1 factor ({4 * (V + D)} bytes); raise it")
    return min(r, rmax)


def low_rank(E: torch.Tensor, *, rank: int | None = None, energy: float | None = None,
             target_bytes: int | None = None) -> LowRank:
    """Truncated SVD of E (V, D) at the chosen rank."""
    E = check_matrix(E, "embedding matrix")
    if rank is not None:  # validate before the (expensive) SVD
        choose_rank(torch.ones(1), tuple(E.shape), rank=rank)
    U, s, Vh = torch.linalg.svd(E.double(), full_matrices=False)  # (V, k), (k,), (k, D); float64 for stable tails
    r = choose_rank(s, tuple(E.shape), rank=rank, energy=energy, target_bytes=target_bytes)
    kept = float((s[:r] ** 2).sum() / (s**2).sum().clamp_min(1e-300))
    A = (U[:, :r] * s[:r]).float().contiguous()  # (V, r) = U_r Σ_r
    B = Vh[:r].float().contiguous()  # (r, D) = V_rᵀ
    return LowRank(A, B, kept)
