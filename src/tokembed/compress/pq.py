"""Product quantization (Jégou et al. 2011): rows split into M sub-vectors, each replaced by one of 2^nbits centroids.

Unlike scalar quantization (``quantize.py``), which rounds each element, PQ stores per row
only M codes (one byte each for nbits <= 8) plus M small codebooks shared by all rows:

    w = [w_1 | ... | w_M],  w_m ∈ R^{D/M};   ŵ = [C_1[c_1] | ... | C_M[c_M]],  c_m = argmin_k ||w_m - C_m[k]||

Bytes: ``V·M·ceil(nbits/8) + M·2^nbits·(D/M)·4``. The codebooks come from seeded k-means
(``kmeans.py``, k-means++ init), trained on all rows; ``benchmarks/bench_compress.py``
compares the reconstruction error with ``faiss.ProductQuantizer`` at the same M and nbits.

Shapes: V rows, D dims, M subspaces, K = 2^nbits centroids, ds = D/M, N looked-up ids.

>>> import torch
>>> W = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
>>> pq = product_quantize(W, M=4, nbits=4, seed=0)
>>> pq.codes.shape, pq.codebooks.shape, pq.nbytes
(torch.Size([300, 4]), torch.Size([4, 16, 4]), 2224)
>>> emb = PQEmbedding(pq)
>>> torch.equal(emb(torch.tensor([[5]]))[0, 0], pq.decode()[5])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..embeddings.lookup import check_ids
from ..errors import ConfigError
from .kmeans import assign, kmeans
from .quantize import _check_matrix

__all__ = ["PQCodes", "product_quantize", "PQEmbedding", "pq_for_ratio"]


@dataclass
class PQCodes:
    codes: torch.Tensor  # (V, M) uint8 (nbits <= 8) or int16
    codebooks: torch.Tensor  # (M, K, ds) float32
    shape: tuple[int, int]  # (V, D)
    nbits: int

    @property
    def M(self) -> int:
        return self.codebooks.shape[0]

    @property
    def nbytes(self) -> int:
        return self.codes.numel() * self.codes.element_size() + self.codebooks.numel() * 4

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (N,) -> (N, D): one lookup into the flattened (M·K, ds) codebook table."""
        M, K, ds = self.codebooks.shape
        flat = self.codes[ids].long() + torch.arange(M) * K  # (N, M) index into (M·K, ds)
        return F.embedding(flat, self.codebooks.view(M * K, ds)).view(-1, M * ds)  # (N, M, ds) -> (N, D)

    def decode(self) -> torch.Tensor:
        """The full reconstruction ``Ŵ`` (V, D)."""
        return self.gather(torch.arange(self.shape[0]))

    def state(self) -> tuple[dict, dict]:
        return {"codes": self.codes, "codebooks": self.codebooks}, {"shape": list(self.shape), "nbits": self.nbits}

    @classmethod
    def from_state(cls, tensors: dict, config: dict) -> "PQCodes":
        return cls(tensors["codes"], tensors["codebooks"].float(), tuple(config["shape"]), config["nbits"])


def _check_pq(V: int, D: int, M: int, nbits: int) -> None:
    if not isinstance(M, int) or M < 1 or D % M:
        divs = [m for m in range(1, D + 1) if D % m == 0]
        raise ConfigError(f"M={M} subspaces does not divide D={D}; choose one of {divs[-8:]} (or another divisor of {D})")
    if not isinstance(nbits, int) or not 1 <= nbits <= 12:
        raise ConfigError(f"nbits={nbits} is out of range; choose 1..12 (8 = one byte per code, the usual choice)")
    if 2**nbits > V:
        raise ConfigError(f"nbits={nbits} asks for {2**nbits} centroids but the matrix has only V={V} rows; "
                          f"choose nbits <= {max(1, V.bit_length() - 1)}")


def product_quantize(W: torch.Tensor, *, M: int, nbits: int = 8, iters: int = 25, seed: int = 0) -> PQCodes:
    """Train M codebooks of 2^nbits centroids on the rows of W (V, D) and encode every row."""
    W = _check_matrix(W)
    V, D = W.shape
    _check_pq(V, D, M, nbits)
    ds = D // M
    X = W.view(V, M, ds).transpose(0, 1).contiguous()  # (M, V, ds): one k-means problem per subspace
    C, _ = kmeans(X, 2**nbits, iters=iters, seed=seed)  # (M, K, ds)
    codes, _ = assign(X, C)  # (M, V)
    dtype = torch.uint8 if nbits <= 8 else torch.int16
    return PQCodes(codes.t().contiguous().to(dtype), C.contiguous(), (V, D), nbits)


def pq_for_ratio(D: int, ratio: float, *, nbits: int = 8) -> int:
    """Largest divisor M of D whose codes are at least ``ratio``× smaller than fp32 rows (codebooks not counted).

    >>> pq_for_ratio(384, 16)
    96
    """
    code_bytes = (nbits + 7) // 8
    ok = [m for m in range(1, D + 1) if D % m == 0 and 4 * D / (m * code_bytes) >= ratio]
    if not ok:
        raise ConfigError(f"no PQ with nbits={nbits} reaches {ratio}× on D={D}; lower the ratio")
    return max(ok)


class PQEmbedding(nn.Module):
    """Lookup served from PQ codes: ``e_t = [C_1[c_1(i_t)] | ... | C_M[c_M(i_t)]]``."""

    def __init__(self, pq: PQCodes, *, validate: bool = True):
        super().__init__()
        self.num_embeddings, self.embedding_dim = pq.shape
        self.nbits = pq.nbits
        self.register_buffer("codes", pq.codes)  # (V, M)
        self.register_buffer("codebooks", pq.codebooks)  # (M, K, ds)
        self.validate = validate

    @classmethod
    def from_float(cls, W, *, M: int, nbits: int = 8, iters: int = 25, seed: int = 0, **kwargs) -> "PQEmbedding":
        from .quantized import _matrix_of

        return cls(product_quantize(_matrix_of(W), M=M, nbits=nbits, iters=iters, seed=seed), **kwargs)

    @property
    def pq(self) -> PQCodes:
        return PQCodes(self.codes, self.codebooks, (self.num_embeddings, self.embedding_dim), self.nbits)

    @property
    def nbytes(self) -> int:
        return self.pq.nbytes

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings, where="PQEmbedding")
        return self.pq.gather(ids.reshape(-1)).view(*ids.shape, self.embedding_dim)  # (B, T, D)

    def weight_matrix(self) -> torch.Tensor:
        return self.pq.decode()

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, M={self.codebooks.shape[0]}, nbits={self.nbits}"
