"""Modules that serve a quantized table: ``QuantizedEmbedding``, ``QuantizedHead``, ``CastEmbedding``.

They keep the embedding/head interfaces of ``tokembed.embeddings`` / ``tokembed.heads``
(``forward``, ``num_embeddings``, ``embedding_dim``, ``weight_matrix()``; heads also
``log_prob`` and ``loss``), so a compressed table replaces the float one with no other
change. Unlike the float modules they never hold the fp32 table:

- ``QuantizedEmbedding`` dequantizes only the looked-up rows (fused C gather, see ``_kernels``);
- ``QuantizedHead`` computes ``z = Ŵ h + b`` in blocks of rows, dequantizing one block at a
  time (peak extra memory ``block × D`` floats, not ``V × D``); a tied head shares the
  embedding's codes (``QuantizedHead.tied(qemb)``), so a tied model stays tied and stores them once;
- ``CastEmbedding`` stores fp16/bf16 and returns fp32 rows (the baseline).

These are inference modules: the codes are buffers, not parameters.

Shapes: B batch, T time, V vocab, D model dim, N = B·T looked-up ids.

>>> import torch
>>> W = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
>>> emb = QuantizedEmbedding.from_float(W, bits=8)
>>> emb(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 8])
>>> head = QuantizedHead.tied(emb)
>>> head(torch.zeros(2, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..embeddings.lookup import check_ids
from ..heads import cross_entropy
from .quantize import QuantizedTensor, cast, quantize

__all__ = ["QuantizedEmbedding", "QuantizedHead", "CastEmbedding"]

#: rows dequantized at a time by the head (8192 × D=1024 fp32 = 32 MiB peak; big enough for an efficient matmul)
HEAD_BLOCK_ROWS = 8192


class QuantizedEmbedding(nn.Module):
    """Lookup from an int8/int4 table: ``e_t = Ŵ[i_t]`` with ``Ŵ`` dequantized per looked-up row."""

    def __init__(self, qt: QuantizedTensor, *, validate: bool = True, use_kernel: bool = True):
        super().__init__()
        self.num_embeddings, self.embedding_dim = qt.shape
        self.config = qt.config
        self.register_buffer("codes", qt.codes)  # (V, row_bytes) uint8
        self.register_buffer("scale", qt.scale)  # (V, G) float32
        self.register_buffer("bias", qt.bias)  # (V, G) float32 or None
        self.validate = validate
        self.use_kernel = use_kernel

    @classmethod
    def from_float(cls, W, *, bits: int = 8, group_size: int | None = None, symmetric: bool = True, **kwargs):
        """Quantize a float (V, D) table (a tensor or a module with ``weight_matrix()``/``weight``)."""
        return cls(quantize(_matrix_of(W), bits=bits, group_size=group_size, symmetric=symmetric), **kwargs)

    @property
    def qtensor(self) -> QuantizedTensor:
        return QuantizedTensor(self.codes, self.scale, self.bias, (self.num_embeddings, self.embedding_dim), self.config)

    @property
    def nbytes(self) -> int:
        return self.qtensor.nbytes

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings, where="QuantizedEmbedding")
        out = self.qtensor.gather(ids.reshape(-1), use_kernel=self.use_kernel)  # (N, D)
        return out.view(*ids.shape, self.embedding_dim)  # (B, T, D)

    def weight_matrix(self) -> torch.Tensor:
        """The dequantized table ``Ŵ`` (V, D), materialised."""
        return self.qtensor.dequantize()

    def extra_repr(self) -> str:
        c = self.config
        return (f"{self.num_embeddings}, {self.embedding_dim}, bits={c.bits}, group_size={c.group_size}, "
                f"symmetric={c.symmetric}")


class QuantizedHead(nn.Module):
    """``z = Ŵ h + b`` with ``Ŵ`` (V, D) dequantized block by block; untied (own codes) or tied (shared)."""

    def __init__(self, table: QuantizedEmbedding, *, bias: torch.Tensor | None = None, tied: bool = False):
        super().__init__()
        self.table = table
        self.tied = tied
        self.num_embeddings, self.embedding_dim = table.num_embeddings, table.embedding_dim
        self.bias = nn.Parameter(bias.detach().float().clone(), requires_grad=False) if bias is not None else None

    @classmethod
    def from_float(cls, W, *, bias=None, bits: int = 8, group_size: int | None = None, symmetric: bool = True):
        """Untied head from a float (V, D) weight (``nn.Linear(D, V).weight`` layout) and optional bias (V,)."""
        if bias is None and isinstance(W, nn.Module):
            b = getattr(getattr(W, "proj", W), "bias", None)
            bias = b if isinstance(b, torch.Tensor) else None
        table = QuantizedEmbedding.from_float(W, bits=bits, group_size=group_size, symmetric=symmetric)
        return cls(table, bias=bias, tied=False)

    @classmethod
    def tied(cls, embedding: QuantizedEmbedding, *, bias=None) -> "QuantizedHead":
        """Head tied to a quantized embedding: ``z = Ŵ h (+ b)`` with the embedding's own codes."""
        return cls(embedding, bias=bias, tied=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        V = self.num_embeddings
        h2 = h.reshape(-1, self.embedding_dim).float()  # (N, D)
        z = torch.empty(h2.shape[0], V, dtype=torch.float32)  # (N, V)
        qt = self.table.qtensor
        for v0 in range(0, V, HEAD_BLOCK_ROWS):
            v1 = min(v0 + HEAD_BLOCK_ROWS, V)
            Wb = qt.rows(v0, v1)  # (v1 - v0, D): dequantized block
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


class CastEmbedding(nn.Module):
    """fp16/bf16 storage, fp32 output: the trivial baseline (2× smaller than fp32)."""

    def __init__(self, W, *, dtype: str = "fp16", validate: bool = True):
        super().__init__()
        w = cast(_matrix_of(W), dtype)
        self.dtype_name = dtype
        self.register_buffer("weight", w)  # (V, D) half
        self.num_embeddings, self.embedding_dim = w.shape
        self.validate = validate

    @property
    def nbytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings, where="CastEmbedding")
        return F.embedding(ids, self.weight).float()  # (B, T, D)

    def weight_matrix(self) -> torch.Tensor:
        return self.weight.float()


def _matrix_of(W) -> torch.Tensor:
    """A (V, D) tensor from a tensor, ``nn.Embedding``/``nn.Linear`` or anything with ``weight_matrix()``."""
    if isinstance(W, torch.Tensor):
        return W.detach()
    if hasattr(W, "weight_matrix"):
        return W.weight_matrix().detach()
    if hasattr(W, "weight"):
        return W.weight.detach()
    return torch.as_tensor(W)
