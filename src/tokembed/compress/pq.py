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
>>> torch.equal(pq.gather(torch.tensor([5]))[0], pq.decode()[5])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..errors import ArtifactError, ConfigError
from .codec import Spec, check_matrix, check_state, codec_shape, config_int
from .kmeans import assign, kmeans

__all__ = ["PQCodes", "product_quantize", "pq_for_ratio"]


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

    @staticmethod
    def specs(config: dict, where: str = "PQ table") -> dict[str, Spec]:
        nbits = config_int(config, "nbits", where, high=12)
        codes = (torch.uint8,) if nbits <= 8 else (torch.int16,)
        return {"codes": Spec(("V", "M"), codes, below=2**nbits),
                "codebooks": Spec(("M", 2**nbits, "ds"), (torch.float32,), finite=True)}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "PQ table") -> "PQCodes":
        V, D = codec_shape(config, where)
        dims = check_state(tensors, cls.specs(config, where), where, {"V": V})
        if dims["M"] * dims["ds"] != D:
            raise ArtifactError(f"{where}: {dims['M']} codebooks of {dims['ds']} dims do not make D={D}; the artifact "
                                "is corrupt or was edited")
        return cls(tensors["codes"], tensors["codebooks"], (V, D), config["nbits"])


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
    W = check_matrix(W)
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
