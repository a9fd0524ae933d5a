"""MemmapEmbedding: a ``(V, D)`` table that stays on disk, behind the nn.Embedding interface.

Unlike :class:`~tokembed.embeddings.TokenEmbedding` (the table is an ``nn.Parameter`` in RAM),
the rows live in a ``.npy`` or ``.safetensors`` file and only the rows a batch touches are
read (``os.pread``, see :mod:`._table_file` for why not one ``mmap``). A **cache** of hot rows
(LRU at batch granularity: the least recently used slots are evicted first) saves re-reading
frequent tokens. Training is sparse: ``forward`` makes the batch's unique rows a small leaf
tensor ``(U, D)``; after ``backward``, :meth:`MemmapEmbedding.sparse_grad` gives the gradient as
``nn.Embedding(sparse=True)`` would, and :meth:`MemmapEmbedding.step_` applies SGD to the
touched rows and writes them back in place through a redo journal (crash-safe: after a
``kill -9`` the file holds the old or the new rows of an update, never a mix).

Memory: the cache (``cache_rows · D`` floats) plus a ``(V,)`` int32 slot map (``4·V`` bytes,
1/D of an fp32 table) plus the batch's rows; never the table.

Shapes: B batch, T time, V vocab, D dim, U unique ids of a batch, C cache rows.

>>> import tempfile, torch
>>> d = tempfile.mkdtemp()
>>> emb = MemmapEmbedding.create(d + "/table.npy", 1000, 8, seed=0, cache_rows=64)
>>> ids = torch.tensor([[1, 2, 1]])
>>> out = emb(ids)
>>> out.shape, torch.equal(out[0, 0], out[0, 2])
(torch.Size([1, 3, 8]), True)
>>> out.sum().backward(); emb.sparse_grad().coalesce().indices().tolist()
[[1, 2]]
>>> before = emb.read_rows(torch.tensor([1]))
>>> emb.step_(lr=0.5)  # SGD on the 2 touched rows, written to disk: row 1's gradient is 2·ones
2
>>> torch.allclose(MemmapEmbedding(d + "/table.npy", writable=False).read_rows(torch.tensor([1])), before - 1.0)
True
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ArtifactError, ConfigError
from ._table_file import RowFile, create_table, read_layout
from .lookup import check_ids

__all__ = ["MemmapEmbedding"]


class _RowCache:
    """C rows of the table kept in RAM, evicting the least recently used (by batch tick)."""

    def __init__(self, num_rows: int, dim: int, capacity: int):
        self.capacity = capacity
        self.slot_of = torch.full((num_rows,), -1, dtype=torch.int32)  # (V,) id -> slot, -1 if not cached
        self.rows = torch.zeros(capacity, dim)  # (C, D)
        self.ids = torch.full((capacity,), -1, dtype=torch.long)  # (C,) slot -> id
        self.used = torch.zeros(capacity, dtype=torch.long)  # (C,) tick of last use
        self.tick = 0
        self.hits = self.misses = 0

    def lookup(self, uniq: torch.Tensor, read) -> torch.Tensor:
        """Rows of sorted unique ``uniq`` (U,) -> (U, D), reading the misses with ``read`` and caching them."""
        self.tick += 1
        slots = self.slot_of[uniq].long()  # (U,)
        hit = slots >= 0
        out = torch.empty(len(uniq), self.rows.shape[1])
        out[hit] = self.rows[slots[hit]]
        self.used[slots[hit]] = self.tick
        miss = (~hit).nonzero().squeeze(1)
        self.hits += int(hit.sum())
        self.misses += len(miss)
        if len(miss):
            fresh = read(uniq[miss])  # (M, D)
            out[miss] = fresh
            self._insert(uniq[miss], fresh)
        return out

    def lookup_tokens(self, flat: torch.Tensor, read) -> torch.Tensor | None:
        """Rows of every id of ``flat`` (N,) -> (N, D) without sorting the batch: the no-grad fast path.

        Only the misses are deduplicated (``torch.unique`` of the few, not of N) and cached; the
        rows are then gathered from the cache by slot. Returns None (the caller takes the sorted
        path) when the misses do not fit in the slots this batch has not touched.
        """
        slots = self.slot_of[flat].long()  # (N,)
        miss = slots < 0
        self.tick += 1
        self.used[slots[~miss]] = self.tick
        new = torch.unique(flat[miss]) if bool(miss.any()) else flat[:0]  # (M,)
        hits = int((self.used == self.tick).sum())  # unique cached ids of this batch
        if len(new) > self.capacity - hits:
            return None
        self.hits += hits
        self.misses += len(new)
        if len(new):
            self._insert(new, read(new))
            slots[miss] = self.slot_of[flat[miss]].long()
        return self.rows[slots]  # (N, D)

    def _insert(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        n = min(len(ids), self.capacity)
        if n == 0:
            return
        victims = torch.topk(self.used, n, largest=False).indices  # (n,) oldest slots (never this batch's hits)
        old = self.ids[victims]
        self.slot_of[old[old >= 0]] = -1
        self.ids[victims], self.rows[victims], self.used[victims] = ids[:n], rows[:n], self.tick
        self.slot_of[ids[:n]] = victims.int()

    def update(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Write-through: refresh the cached copies of ``ids`` (U,) with ``rows`` (U, D)."""
        slots = self.slot_of[ids].long()
        hit = slots >= 0
        self.rows[slots[hit]] = rows[hit]


class MemmapEmbedding(nn.Module):
    """On-disk lookup table ``e_t = E[i_t]``; ``forward(ids (B, T)) -> (B, T, D)``.

    Args:
        path: a ``.npy`` or ``.safetensors`` file holding one 2-D float table (validated: header,
            shape, dtype and file size, before any row is read).
        cache_rows: C, rows kept in RAM (0 disables the cache).
        writable: open for :meth:`step_` / :meth:`write_rows_` (one writer at a time: a lock).
        tensor_name: the tensor in a safetensors file holding several.
    """

    def __init__(self, path: str | os.PathLike, *, cache_rows: int = 4096, writable: bool = True, tensor_name: str | None = None):
        super().__init__()
        if cache_rows < 0:
            raise ConfigError(f"cache_rows={cache_rows} must be >= 0")
        self.layout = read_layout(path, tensor_name=tensor_name)
        self.num_embeddings, self.embedding_dim = self.layout.num_rows, self.layout.dim
        self._file = RowFile(self.layout, writable=writable)
        self._cache = _RowCache(self.num_embeddings, self.embedding_dim, cache_rows)
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (uniq (U,), leaf rows (U, D)) since the last step

    @classmethod
    def create(cls, path, num_embeddings: int, embedding_dim: int, *, dtype=torch.float32, init: str = "normal", init_std: float = 0.02, seed: int = 0, weight: torch.Tensor | None = None, **kwargs) -> MemmapEmbedding:
        """Write a new table file atomically (streamed; ``init``: normal(0, init_std) | zeros, or ``weight`` (V, D)) and open it."""
        if weight is not None and tuple(weight.shape) != (num_embeddings, embedding_dim):
            raise ConfigError(f"weight has shape {tuple(weight.shape)}, expected ({num_embeddings}, {embedding_dim})")
        if num_embeddings < 1 or embedding_dim < 1:
            raise ConfigError(f"V={num_embeddings} and D={embedding_dim} must be >= 1")
        create_table(path, num_embeddings, embedding_dim, dtype=dtype, init=init, std=init_std, seed=seed, weight=weight)
        return cls(path, **kwargs)

    # ------------------------------------------------------------------ rows
    def _unique(self, ids: torch.Tensor, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        check_ids(ids, self.num_embeddings, where=where)
        return torch.unique(ids.long(), sorted=True, return_inverse=True)  # (U,), ids.shape

    def read_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (...) as float32 (..., D), through the cache."""
        uniq, inv = self._unique(ids, "MemmapEmbedding.read_rows")
        return self._cache.lookup(uniq, self._file.read)[inv]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.is_grad_enabled()):  # no leaf needed: try the unsorted fast path
            check_ids(ids, self.num_embeddings, where="MemmapEmbedding")
            rows = self._cache.lookup_tokens(ids.reshape(-1).long(), self._file.read)
            if rows is not None:
                return rows.reshape(*ids.shape, self.embedding_dim)  # (B, T, D)
        uniq, inv = self._unique(ids, "MemmapEmbedding")
        rows = self._cache.lookup(uniq, self._file.read)  # (U, D)
        if self.training and torch.is_grad_enabled():
            rows.requires_grad_(True)  # a leaf per batch: its .grad is the sparse gradient
            self._pending.append((uniq, rows))
        return F.embedding(inv, rows)  # (B, T, D) = rows[inv]

    def sparse_grad(self) -> torch.Tensor:
        """Gradient of the table since the last step, as a sparse COO ``(V, D)`` (as ``nn.Embedding(sparse=True)``)."""
        parts = [(u, r.grad) for u, r in self._pending if r.grad is not None]
        if not parts:
            return torch.sparse_coo_tensor(torch.empty(1, 0, dtype=torch.long), torch.empty(0, self.embedding_dim), (self.num_embeddings, self.embedding_dim), check_invariants=True)
        idx = torch.cat([u for u, _ in parts])[None]
        return torch.sparse_coo_tensor(idx, torch.cat([g for _, g in parts]), (self.num_embeddings, self.embedding_dim), check_invariants=True)

    def zero_grad_(self) -> None:
        self._pending.clear()

    @torch.no_grad()
    def step_(self, *, lr: float) -> int:
        """SGD on the rows touched since the last step, ``E[i] -= lr · ∂L/∂E[i]``, written to disk; returns the row count."""
        g = self.sparse_grad().coalesce()
        self._pending.clear()
        ids, grad = g.indices()[0], g.values()  # (U,), (U, D) sorted, unique
        if len(ids):
            self.write_rows_(ids, self._cache.lookup(ids, self._file.read) - lr * grad)
        return len(ids)

    @torch.no_grad()
    def write_rows_(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Replace rows ``ids`` (U,) by ``rows`` (U, D) on disk (crash-safe) and in the cache."""
        if rows.shape != (len(ids), self.embedding_dim):
            raise ConfigError(f"rows have shape {tuple(rows.shape)}, expected ({len(ids)}, {self.embedding_dim}) for {len(ids)} ids")
        uniq, _ = self._unique(ids, "MemmapEmbedding.write_rows_")
        if len(uniq) != len(ids):
            raise ConfigError(f"write_rows_ got {len(ids) - len(uniq)} repeated ids; pass each row once")
        order = torch.argsort(ids.long())
        ids, rows = ids.long()[order], rows[order].float()
        self._file.write(ids, rows)
        self._cache.update(ids, rows)

    def weight_matrix(self, *, max_bytes: int = 1 << 30) -> torch.Tensor:
        """The whole table (V, D) in RAM; refused above ``max_bytes`` (the point of this class is not to do that)."""
        need = self.num_embeddings * self.embedding_dim * 4
        if need > max_bytes:
            raise ArtifactError(f"the table is {need} bytes as float32, over max_bytes={max_bytes}; read rows with read_rows(ids) or raise max_bytes")
        return self._file.read(torch.arange(self.num_embeddings))

    def cache_info(self) -> dict:
        c = self._cache
        return {"hits": c.hits, "misses": c.misses, "capacity": c.capacity, "cached": int((c.ids >= 0).sum())}

    def close(self) -> None:
        self._file.close()

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, path={str(self.layout.path)!r}, dtype={self.layout.dtype}, cache_rows={self._cache.capacity}"
