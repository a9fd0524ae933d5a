"""One embedding and one head that serve any codec: ``CompressedEmbedding`` and ``CompressedHead``.

Unlike the codecs (``codec.py`` and the method modules), which only store a (V, D) matrix,
these are ``nn.Module``s with the interfaces of ``tokembed.embeddings`` / ``tokembed.heads``
(``forward``, ``num_embeddings``, ``embedding_dim``, ``weight_matrix()``, ``nbytes``; heads also
``log_prob`` and ``loss``), so a compressed table replaces the float one with no other change.
They never hold the fp32 table:

- ``CompressedEmbedding``: ``e_t = Ŵ[i_t]``, only the looked-up rows decoded (``codec.gather``;
  for int8/int4 the fused C gather, see ``_kernels``); ids are checked first (``TokenIdError``);
- ``CompressedHead``: ``z = Ŵ h + b``, through the codec's own ``logits`` when it has one (low
  rank: ``(h Bᵀ) Aᵀ``; trimmed: over the stored rows, then spread), else in blocks of
  ``HEAD_BLOCK_ROWS`` decoded rows (peak extra memory ``block × D`` floats, not ``V × D``).
  A tied head shares the embedding's codes (``CompressedHead.tied(emb)``), stored once.

The named classes (``QuantizedEmbedding``, ``PQEmbedding``, ``CastEmbedding``, ...) are this
module narrowed to one codec, with that codec's ``from_float``; :func:`embedding_for` picks the
right one for a codec. These are inference modules: the codes are buffers, not parameters.

Shapes: B batch, T time, V vocab, D model dim, N = B·T looked-up ids.

>>> import torch
>>> W = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
>>> emb = QuantizedEmbedding.from_float(W, bits=8)
>>> emb(torch.tensor([[1, 2, 3]])).shape, emb.nbytes
(torch.Size([1, 3, 8]), 120)
>>> head = CompressedHead.tied(emb)
>>> head(torch.zeros(2, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from ..embeddings.lookup import check_ids
from ..errors import ConfigError
from ..heads import cross_entropy
from .codec import DenseTable, matrix_of
from .hashing import HashBuckets
from .lowrank import LowRank
from .planner import MixedTables
from .pq import PQCodes, product_quantize
from .prune import SparseRows, Trimmed
from .quantize import QuantizedTensor, cast, quantize

__all__ = ["CompressedEmbedding", "CompressedHead", "embedding_for", "QuantizedEmbedding", "QuantizedHead",
           "CastEmbedding", "PQEmbedding", "SparseEmbedding", "TrimmedEmbedding", "TrimmedHead", "BucketEmbedding",
           "MixedEmbedding", "HEAD_BLOCK_ROWS"]

#: rows decoded at a time by the head (8192 × D=1024 fp32 = 32 MiB peak; big enough for an efficient matmul)
HEAD_BLOCK_ROWS = 8192


class CompressedEmbedding(nn.Module):
    """Lookup ``e_t = Ŵ[i_t]`` from any codec; the codec's tensors are this module's buffers."""

    codec_type: type | tuple = object  # the named subclasses narrow it to their codec

    def __init__(self, codec, *, validate: bool = True):
        super().__init__()
        if not isinstance(codec, self.codec_type):
            raise ConfigError(f"{type(self).__name__} serves {self.codec_type.__name__}, got {type(codec).__name__}; "
                              "use CompressedEmbedding or embedding_for(codec)")
        self.codec = codec
        self.num_embeddings, self.embedding_dim = codec.shape
        self.validate = validate
        self.gather_kwargs: dict = {}
        for name, t in codec.state()[0].items():
            self.register_buffer(name.replace(".", "_"), t)

    @property
    def nbytes(self) -> int:
        return int(self.codec.nbytes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings, where=type(self).__name__)
        out = self.codec.gather(ids.reshape(-1), **self.gather_kwargs)  # (N, D)
        return out.view(*ids.shape, self.embedding_dim)  # (B, T, D)

    def weight_matrix(self) -> torch.Tensor:
        """The decoded table ``Ŵ`` (V, D), materialised."""
        return self.codec.decode()

    def _apply(self, fn, recurse=True):
        """``.to()``/``.cpu()``: move the buffers, then point the codec at the moved tensors."""
        super()._apply(fn, recurse)
        tensors, config = self.codec.state()
        moved = {k: getattr(self, k.replace(".", "_")) for k in tensors}
        if any(moved[k] is not t for k, t in tensors.items()):
            names = {f.name for f in dataclasses.fields(self.codec)}
            self.codec = (dataclasses.replace(self.codec, **moved) if set(moved) <= names
                          else type(self.codec).from_state(moved, config))  # nested (mixed): rebuilt and checked
        return self

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, {type(self.codec).__name__}, {self.nbytes} bytes"


class CompressedHead(nn.Module):
    """``z = Ŵ h + b`` over a compressed table; untied (own table) or tied (the embedding's, stored once)."""

    def __init__(self, table: CompressedEmbedding, *, bias: torch.Tensor | None = None, tied: bool = False):
        super().__init__()
        self.table = table
        self.tied = tied
        self.num_embeddings, self.embedding_dim = table.num_embeddings, table.embedding_dim
        self.bias = nn.Parameter(bias.detach().float().clone(), requires_grad=False) if bias is not None else None

    @classmethod
    def tied(cls, embedding: CompressedEmbedding, *, bias=None) -> "CompressedHead":
        """Head tied to a compressed embedding: ``z = Ŵ h (+ b)`` with the embedding's own codes."""
        return cls(embedding, bias=bias, tied=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        V, codec = self.num_embeddings, self.table.codec
        h2 = h.reshape(-1, self.embedding_dim).float()  # (N, D)
        fast = getattr(codec, "logits", None)
        if fast is not None:
            return fast(h2, self.bias).view(*h.shape[:-1], V)
        z = torch.empty(h2.shape[0], V, dtype=torch.float32)  # (N, V)
        for v0 in range(0, V, HEAD_BLOCK_ROWS):
            v1 = min(v0 + HEAD_BLOCK_ROWS, V)
            Wb = codec.gather(torch.arange(v0, v1), **self.table.gather_kwargs)  # (v1 - v0, D): decoded block
            z[:, v0:v1] = h2 @ Wb.t()  # z = Ŵ h, one block of rows
        if self.bias is not None:
            z += self.bias
        return z.view(*h.shape[:-1], V)  # (..., V)

    def log_prob(self, h: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
        return F.log_softmax(self(h) / temperature, dim=-1)  # (..., V)

    def loss(self, h: torch.Tensor, targets: torch.Tensor, **kwargs) -> torch.Tensor:
        return cross_entropy(self(h), targets, **kwargs)

    def weight_matrix(self) -> torch.Tensor:
        return self.table.weight_matrix()

    def extra_repr(self) -> str:
        return f"tied={self.tied}, bias={self.bias is not None}"


class QuantizedEmbedding(CompressedEmbedding):
    """int8/int4 lookup, dequantizing only the looked-up rows (fused C gather when built)."""

    codec_type = QuantizedTensor

    def __init__(self, qt: QuantizedTensor, *, validate: bool = True, use_kernel: bool = True):
        super().__init__(qt, validate=validate)
        self.gather_kwargs = {"use_kernel": use_kernel}

    @classmethod
    def from_float(cls, W, *, bits: int = 8, group_size: int | None = None, symmetric: bool = True, **kwargs):
        """Quantize a float (V, D) table (a tensor or a module with ``weight_matrix()``/``weight``)."""
        return cls(quantize(matrix_of(W), bits=bits, group_size=group_size, symmetric=symmetric), **kwargs)

    @property
    def config(self):
        return self.codec.config


class QuantizedHead(CompressedHead):
    """``z = Ŵ h + b`` with an int8/int4 ``Ŵ`` dequantized block by block."""

    @classmethod
    def from_float(cls, W, *, bias=None, bits: int = 8, group_size: int | None = None, symmetric: bool = True):
        """Untied head from a float (V, D) weight (``nn.Linear(D, V).weight`` layout) and optional bias (V,)."""
        if bias is None and isinstance(W, nn.Module):
            b = getattr(getattr(W, "proj", W), "bias", None)
            bias = b if isinstance(b, torch.Tensor) else None
        return cls(QuantizedEmbedding.from_float(W, bits=bits, group_size=group_size, symmetric=symmetric), bias=bias)


class CastEmbedding(CompressedEmbedding):
    """fp16/bf16 storage, fp32 output: the trivial baseline (2× smaller than fp32)."""

    codec_type = DenseTable

    def __init__(self, W, *, dtype: str = "fp16", validate: bool = True):
        super().__init__(W if isinstance(W, DenseTable) else DenseTable(cast(matrix_of(W), dtype)), validate=validate)


class PQEmbedding(CompressedEmbedding):
    """Lookup from PQ codes: ``e_t = [C_1[c_1(i_t)] | ... | C_M[c_M(i_t)]]``."""

    codec_type = PQCodes

    @classmethod
    def from_float(cls, W, *, M: int, nbits: int = 8, iters: int = 25, seed: int = 0, **kwargs) -> "PQEmbedding":
        return cls(product_quantize(matrix_of(W), M=M, nbits=nbits, iters=iters, seed=seed), **kwargs)


class SparseEmbedding(CompressedEmbedding):
    """Lookup from a row-pruned table: zeros everywhere except the kept entries."""

    codec_type = SparseRows


class TrimmedEmbedding(CompressedEmbedding):
    """Lookup through the id map: ``e_t = T[map(i_t)]``; the tokenizer and ids are unchanged."""

    codec_type = Trimmed


class TrimmedHead(CompressedHead):
    """``z = T h (+ b)`` over the V'+1 stored rows, then spread to all V ids through the map."""

    def __init__(self, tr: Trimmed, *, bias: torch.Tensor | None = None):
        super().__init__(TrimmedEmbedding(tr), bias=bias)


class BucketEmbedding(CompressedEmbedding):
    """Lookup ``e_t = C[b(i_t)]`` through the learnt id -> bucket map."""

    codec_type = HashBuckets


class MixedEmbedding(CompressedEmbedding):
    """Lookup served from a plan: each id's row comes from the option its band was given."""

    codec_type = MixedTables


_SERVERS = {QuantizedTensor: QuantizedEmbedding, DenseTable: CastEmbedding, PQCodes: PQEmbedding,
            SparseRows: SparseEmbedding, Trimmed: TrimmedEmbedding, HashBuckets: BucketEmbedding,
            MixedTables: MixedEmbedding, LowRank: CompressedEmbedding}


def embedding_for(codec, **kwargs) -> CompressedEmbedding:
    """The embedding module that serves ``codec`` (its named class, e.g. ``PQEmbedding`` for ``PQCodes``)."""
    return _SERVERS.get(type(codec), CompressedEmbedding)(codec, **kwargs)
