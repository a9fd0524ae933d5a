"""Post-hoc hashing: cluster the V rows into B buckets (k-means) and store centroids + an id -> bucket map.

Unlike the hashed embedding trained from scratch (``embeddings/hashed.py``, a fixed random
hash), the map here is learnt from a trained table so that similar tokens share a row:
``ê_i = C[b(i)]``, ``b(i) = argmin_j ||e_i - C_j||``. Bytes: ``B·D·4 + V·index bytes``.

Shapes: V vocab, D dims, B buckets.

>>> import torch
>>> E = torch.tensor([[1.0, 0.0], [1.1, 0.0], [0.0, 5.0], [0.0, 5.2]])
>>> hb = hash_buckets(E, buckets=2, seed=0)
>>> hb.bucket.tolist() in ([0, 0, 1, 1], [1, 1, 0, 0]), hb.decode()[0].tolist()
(True, [1.0499999523162842, 0.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..errors import ConfigError
from .codec import Spec, check_matrix, check_state
from .kmeans import kmeans

__all__ = ["HashBuckets", "hash_buckets"]


@dataclass
class HashBuckets:
    centroids: torch.Tensor  # (B, D) float32
    bucket: torch.Tensor  # (V,) int16 (B <= 32767) or int32

    @property
    def shape(self) -> tuple[int, int]:
        return (self.bucket.numel(), self.centroids.shape[1])

    @property
    def nbytes(self) -> int:
        return self.centroids.numel() * 4 + self.bucket.numel() * self.bucket.element_size()

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.bucket[ids].long(), self.centroids)  # (N, D) = C[b(i)]

    def decode(self) -> torch.Tensor:
        return self.gather(torch.arange(self.shape[0]))

    def state(self) -> tuple[dict, dict]:
        return {"centroids": self.centroids, "bucket": self.bucket}, {"buckets": self.centroids.shape[0]}

    @staticmethod
    def specs(config: dict, where: str = "hashed table") -> dict[str, Spec]:
        return {"centroids": Spec(("B", "D"), (torch.float32,), finite=True),
                "bucket": Spec(("V",), (torch.int16, torch.int32), below="B")}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "hashed table") -> "HashBuckets":
        check_state(tensors, cls.specs(config, where), where, {"B": config.get("buckets")})
        return cls(tensors["centroids"], tensors["bucket"])


def hash_buckets(E: torch.Tensor, *, buckets: int, iters: int = 10, seed: int = 0) -> HashBuckets:
    """Cluster the rows of E (V, D) into ``buckets`` centroids with seeded k-means."""
    E = check_matrix(E, "embedding matrix")
    V = E.shape[0]
    if not isinstance(buckets, int) or not 1 <= buckets <= V:
        raise ConfigError(f"buckets={buckets} must be in [1, V={V}]; fewer buckets = smaller table, more collisions")
    C, codes = kmeans(E.unsqueeze(0), buckets, iters=iters, seed=seed)  # (1, B, D), (1, V)
    dtype = torch.int16 if buckets <= 32767 else torch.int32
    return HashBuckets(C[0].contiguous(), codes[0].to(dtype).contiguous())
