"""Pruning: zero the small weights of each row (sparse storage), or drop whole rows of unused tokens.

Two different cuts, unlike the quantizers which keep every element:

- **magnitude pruning** (:func:`magnitude_prune`): each row keeps its ``k = round((1 - sparsity)·D)``
  largest-magnitude entries, stored as (values fp32, column indices int16/int32) — a
  fixed-width ("ELLPACK") sparse format, so a lookup is one gather and one scatter. The
  threshold is per row, not global: a global threshold would empty the small-norm rows of
  rare tokens first. Bytes: ``V·k·(4 + index bytes)``.
- **vocabulary trimming** (:func:`trim_vocab`): rows of tokens never produced on a corpus
  are dropped; every dropped id maps to one shared fallback row (the mean of the dropped
  rows). The tokenizer is left unchanged — a BPE/WordPiece vocabulary cannot lose a token
  safely (merges and the id table depend on it) — so ids, the tokenizer and its
  fingerprint stay valid, and every kept token's vector is bit-identical.

Shapes: V vocab, D dims, k kept entries per row, V' kept rows, N looked-up ids.

>>> import torch
>>> W = torch.tensor([[0.1, -3.0, 2.0, 0.5]])
>>> sp = magnitude_prune(W, sparsity=0.5)
>>> sp.decode().tolist()
[[0.0, -3.0, 2.0, 0.0]]
>>> tr = trim_vocab(torch.eye(3), keep=[0, 2])
>>> tr.id_map.tolist(), tr.decode()[1].tolist()
([0, 2, 1], [0.0, 1.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..errors import ConfigError
from ..metrics import corpus_token_counts
from .codec import Spec, check_matrix, check_state, codec_shape

__all__ = ["SparseRows", "magnitude_prune", "Trimmed", "trim_vocab", "token_counts"]


@dataclass
class SparseRows:
    values: torch.Tensor  # (V, k) float32
    index: torch.Tensor  # (V, k) int16 (D <= 32767) or int32 column indices
    shape: tuple[int, int]  # (V, D)

    @property
    def nbytes(self) -> int:
        return self.values.numel() * 4 + self.index.numel() * self.index.element_size()

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(ids.numel(), self.shape[1])  # (N, D)
        return out.scatter_(1, self.index[ids].long(), self.values[ids])  # row i: out[i, index] = values

    def decode(self) -> torch.Tensor:
        return self.gather(torch.arange(self.shape[0]))

    def state(self) -> tuple[dict, dict]:
        return {"values": self.values, "index": self.index}, {"shape": list(self.shape)}

    @staticmethod
    def specs(config: dict, where: str = "pruned table") -> dict[str, Spec]:
        return {"values": Spec(("V", "k"), (torch.float32,), finite=True),
                "index": Spec(("V", "k"), (torch.int16, torch.int32), below="D")}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "pruned table") -> "SparseRows":
        V, D = codec_shape(config, where)
        check_state(tensors, cls.specs(config, where), where, {"V": V, "D": D})
        return cls(tensors["values"], tensors["index"], (V, D))


def magnitude_prune(W: torch.Tensor, *, sparsity: float) -> SparseRows:
    """Keep the ``round((1 - sparsity)·D)`` largest |w| of every row."""
    if not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity={sparsity} must be in [0, 1) (the share of each row set to zero, e.g. 0.5)")
    W = check_matrix(W)
    V, D = W.shape
    k = max(1, round((1 - sparsity) * D))
    idx = W.abs().topk(k, dim=1, sorted=False).indices.sort(dim=1).values  # (V, k) columns kept, in order
    vals = W.gather(1, idx)  # (V, k)
    return SparseRows(vals.contiguous(), idx.to(torch.int16 if D <= 32767 else torch.int32).contiguous(), (V, D))


@dataclass
class Trimmed:
    table: torch.Tensor  # (V' + 1, D): kept rows in id order, then the fallback row
    id_map: torch.Tensor  # (V,) int32: id -> row of ``table`` (dropped ids -> V')
    bias: torch.Tensor | None = None  # (V' + 1,) head bias rows, same mapping

    @property
    def shape(self) -> tuple[int, int]:
        return (self.id_map.numel(), self.table.shape[1])

    @property
    def kept(self) -> torch.Tensor:
        """Ids that keep their own row."""
        return (self.id_map < self.table.shape[0] - 1).nonzero().flatten()

    @property
    def nbytes(self) -> int:
        return self.table.numel() * 4 + self.id_map.numel() * 4 + (self.bias.numel() * 4 if self.bias is not None else 0)

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.id_map[ids].long(), self.table)  # (N, D)

    def decode(self) -> torch.Tensor:
        return self.gather(torch.arange(self.shape[0]))

    def state(self) -> tuple[dict, dict]:
        t = {"table": self.table, "id_map": self.id_map}
        if self.bias is not None:
            t["bias"] = self.bias
        return t, {"shape": list(self.shape), "kept": int(self.kept.numel())}

    def logits(self, h: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Head logits: ``z = T h (+ stored bias)`` over the V'+1 stored rows, spread to all V ids: (N, D) -> (N, V)."""
        z = F.linear(h, self.table, self.bias)[..., self.id_map.long()]  # (N, V'+1) -> (N, V)
        return z + bias if bias is not None else z

    @staticmethod
    def specs(config: dict, where: str = "trimmed table") -> dict[str, Spec]:
        f32 = (torch.float32,)
        return {"table": Spec(("R", "D"), f32, finite=True), "id_map": Spec(("V",), (torch.int32,), below="R"),
                "bias": Spec(("R",), f32, finite=True, optional=True)}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "trimmed table") -> "Trimmed":
        V, D = codec_shape(config, where)
        check_state(tensors, cls.specs(config, where), where, {"V": V, "D": D})
        return cls(tensors["table"], tensors["id_map"], tensors.get("bias"))


def token_counts(tokenizer, texts: Iterable[str], *, batch: int = 1024) -> torch.Tensor:
    """How often each id is produced when ``tokenizer`` encodes ``texts``: (V,) int64
    (:func:`tokembed.metrics.corpus_token_counts` as a tensor)."""
    counts, _ = corpus_token_counts(tokenizer, texts, vocab_size=tokenizer.vocab_size, batch=batch)
    return torch.from_numpy(counts)


def trim_vocab(W: torch.Tensor, *, keep: Sequence[int] | torch.Tensor, bias: torch.Tensor | None = None) -> Trimmed:
    """Keep rows ``keep`` bit-identical; map every other id to one fallback row (mean of the dropped rows)."""
    W = W.detach().cpu()
    if W.ndim != 2:
        raise ConfigError(f"matrix must be 2-D (V, D), got shape {tuple(W.shape)}")
    V = W.shape[0]
    keep = torch.as_tensor(keep, dtype=torch.long).unique()  # sorted
    if keep.numel() and (keep.min() < 0 or keep.max() >= V):
        raise ConfigError(f"keep ids must be in [0, {V}); got {keep.min().item()}..{keep.max().item()}")
    mask = torch.zeros(V, dtype=torch.bool)
    mask[keep] = True
    dropped = W[~mask]
    fallback = dropped.float().mean(0, keepdim=True) if len(dropped) else torch.zeros(1, W.shape[1])
    table = torch.cat([W[mask].float(), fallback]).contiguous()  # (V'+1, D)
    id_map = torch.full((V,), keep.numel(), dtype=torch.int32)
    id_map[keep] = torch.arange(keep.numel(), dtype=torch.int32)
    b = None
    if bias is not None:
        bias = bias.detach().float().cpu()
        bd = bias[~mask]
        b = torch.cat([bias[mask], bd.mean(0, keepdim=True) if len(bd) else torch.zeros(1)])
    return Trimmed(table, id_map, b)
