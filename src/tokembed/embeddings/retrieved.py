"""RetrievedEmbedding: rows reconstructed from a faiss index ("embeddings stored in an external index").

Unlike :class:`~tokembed.embeddings.memmap.MemmapEmbedding` (exact rows in a file, trainable),
the table lives in a faiss index: ``e_t = index.reconstruct(i_t)``, exact for a flat index and
the codec's approximation for a compressed one (PQ, SQ, IVF-PQ). The layer is frozen (an index
is not differentiable); :meth:`RetrievedEmbedding.nearest` uses the same index for the
neighbour search it was built for. faiss is imported lazily (``pip install 'tokembed[faiss]'``).

Shapes: B batch, T time, V rows in the index (ids ``0..V-1``), D index dimension, N queries, k neighbours.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ArtifactError, ConfigError, require
from .lookup import check_ids

__all__ = ["RetrievedEmbedding"]


def _faiss():
    return require("faiss", extra="faiss", feature="RetrievedEmbedding")


class RetrievedEmbedding(nn.Module):
    """Frozen lookup whose rows come from a faiss index; ``forward(ids (B, T)) -> (B, T, D)``.

    Args:
        index: a faiss index holding V vectors with ids ``0..V-1`` that can ``reconstruct``
            (an IVF index needs ``index.make_direct_map()`` first).
    """

    def __init__(self, index):
        super().__init__()
        _faiss()
        if index.ntotal < 1:
            raise ConfigError("the faiss index is empty; add the table's rows (index.add(E)) before wrapping it")
        try:
            index.reconstruct(0)
        except RuntimeError as e:
            raise ConfigError(f"faiss index {type(index).__name__} cannot reconstruct rows; call index.make_direct_map() on an IVF index, or use a flat/PQ index") from e
        self.index = index
        self.num_embeddings, self.embedding_dim = int(index.ntotal), int(index.d)

    @classmethod
    def from_table(cls, weight: torch.Tensor, *, factory: str = "Flat", seed: int = 0) -> RetrievedEmbedding:
        """Build an index of ``weight`` (V, D) with a faiss factory string (``"Flat"``, ``"PQ8"``, ``"IVF64,PQ8"``)."""
        faiss = _faiss()
        x = weight.detach().float().contiguous().numpy()
        index = faiss.index_factory(x.shape[1], factory)
        if not index.is_trained:
            cp = getattr(index, "cp", None)
            if cp is not None:
                cp.seed = seed
            index.train(x)
        index.add(x)
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        return cls(index)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RetrievedEmbedding:
        """Read an index written by ``faiss.write_index`` (a local file; nothing is fetched)."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"faiss index file {path} does not exist; write one with faiss.write_index(index, path)")
        try:
            index = _faiss().read_index(str(path))
        except RuntimeError as e:
            raise ArtifactError(f"faiss index file {path} cannot be read ({str(e).splitlines()[0]}); rewrite it with faiss.write_index") from e
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        return cls(index)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.num_embeddings, where="RetrievedEmbedding")  # bound-check before faiss' native code
        uniq, inv = torch.unique(ids.long(), return_inverse=True)  # (U,), ids.shape
        rows = torch.from_numpy(self.index.reconstruct_batch(uniq.numpy()))  # (U, D)
        return F.embedding(inv, rows)  # (B, T, D)

    def weight_matrix(self) -> torch.Tensor:
        return torch.from_numpy(self.index.reconstruct_n(0, self.num_embeddings))  # (V, D)

    def nearest(self, vectors: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """The index's own search: (N, D) -> scores (N, k), ids (N, k) (metric of the index)."""
        if vectors.shape[-1] != self.embedding_dim:
            raise ConfigError(f"query vectors have dim {vectors.shape[-1]}, the index holds dim {self.embedding_dim}")
        scores, ids = self.index.search(vectors.detach().float().contiguous().numpy(), int(k))
        return torch.from_numpy(scores), torch.from_numpy(ids)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, index={type(self.index).__name__}"
