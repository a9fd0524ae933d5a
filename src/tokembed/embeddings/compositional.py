"""Compositional embeddings: a vector for any token *string*, built from its characters or subword pieces.

Unlike the table designs (:class:`TokenEmbedding`, :class:`HashEmbedding`) nothing here is
stored per token: a token's vector is computed from its spelling, so tokens never seen in
training (or not in the vocabulary at all) still get an informed vector.

- ``mode="chars"``: a character CNN (Kim et al. 2016, "Character-Aware Neural Language
  Models", §2): UTF-8 bytes -> byte embeddings -> 1-D convolutions of several widths ->
  max over time -> linear projection to D. Bytes rather than code points, so the alphabet is
  fixed (256 + pad/begin/end) and any string works.
- ``mode="pieces"``: sum or mean of a given piece embedding over the token's subword pieces
  (e.g. a BPE/WordPiece segmentation of the token), ``e = Σ_j P[p_j]`` (or ``/ n``).

:class:`FrequencyGatedEmbedding` mixes a lookup table with a compositional embedding by token
frequency: rare and unseen tokens get the compositional vector (``mode="hard"``: count below a
threshold) or a blend ``g·E[i] + (1-g)·c(i)`` with ``g = n_i / (n_i + threshold)`` (``"soft"``).

Shapes: B batch, T time, V vocab, D model dim, U unique ids in a batch, L bytes per token,
C byte-embedding dim, F filters.

>>> import torch
>>> emb = CompositionalEmbedding(["the", "cat", "sat"], 8)
>>> emb(torch.tensor([[0, 1, 2]])).shape
torch.Size([1, 3, 8])
>>> emb.embed_strings(["catamaran"]).shape  # a string outside the vocabulary
torch.Size([1, 8])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .lookup import check_ids

__all__ = ["CharCNN", "byte_ids", "CompositionalEmbedding", "FrequencyGatedEmbedding"]

PAD, BOW, EOW = 256, 257, 258  # byte alphabet: 0..255, then padding / begin-of-word / end-of-word
NUM_BYTE_SYMBOLS = 259


def byte_ids(strings: Sequence[str], max_bytes: int) -> torch.Tensor:
    """UTF-8 bytes of each string framed by BOW/EOW, truncated to ``max_bytes``, padded: (N, max_bytes + 2).

    >>> byte_ids(["ab", "é"], 3).tolist()
    [[257, 97, 98, 258, 256], [257, 195, 169, 258, 256]]
    """
    out = torch.full((len(strings), max_bytes + 2), PAD, dtype=torch.long)
    for n, s in enumerate(strings):
        b = list(s.encode("utf-8", errors="surrogatepass")[:max_bytes])
        out[n, : len(b) + 2] = torch.tensor([BOW, *b, EOW], dtype=torch.long)
    return out


class CharCNN(nn.Module):
    """Byte ids (N, L) -> vectors (N, D): byte embedding, convolutions of several widths, max over time, projection.

    Parameters: ``259·C + Σ_w (C·w·F_w + F_w) + (Σ_w F_w)·D + D``.
    """

    def __init__(
        self,
        embedding_dim: int,
        *,
        char_dim: int = 16,
        widths: Sequence[int] = (1, 2, 3, 4),
        filters: Sequence[int] = (32, 32, 64, 64),
    ):
        super().__init__()
        if len(widths) != len(filters) or not widths:
            raise ConfigError(
                f"widths {list(widths)} and filters {list(filters)} must be non-empty and of equal length"
            )
        self.byte_embedding = nn.Embedding(NUM_BYTE_SYMBOLS, char_dim, padding_idx=PAD)  # (259, C)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, f, w) for w, f in zip(widths, filters))
        self.proj = nn.Linear(sum(filters), embedding_dim)  # (ΣF) -> D
        self.min_length = max(widths)

    def forward(self, byte_ids: torch.Tensor) -> torch.Tensor:
        x = self.byte_embedding(byte_ids).transpose(1, 2)  # (N, C, L)
        if x.shape[-1] < self.min_length:
            x = F.pad(x, (0, self.min_length - x.shape[-1]))
        feats = [torch.tanh(conv(x)).amax(dim=-1) for conv in self.convs]  # each (N, F_w): max over time
        return self.proj(torch.cat(feats, dim=-1))  # (N, D)


class CompositionalEmbedding(nn.Module):
    """Token vectors computed from their strings (chars) or subword pieces.

    Args:
        tokens: the V token strings in id order (a list or a :class:`~tokembed.vocab.Vocab`).
        embedding_dim: D.
        mode: ``"chars"`` (char CNN) or ``"pieces"``.
        max_bytes: chars mode: UTF-8 bytes kept per token (longer tokens are truncated).
        char_dim, widths, filters: chars mode: the :class:`CharCNN` sizes.
        piece_embedding: pieces mode: any embedding module of this package with the piece table.
        pieces: pieces mode: piece ids of each of the V tokens (``pieces[i]`` is a non-empty list).
        piece_fn: pieces mode: ``str -> list[int]`` used by :meth:`embed_strings` for new strings.
        reduce: pieces mode: ``"sum"`` or ``"mean"``.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        embedding_dim: int,
        *,
        mode: str = "chars",
        max_bytes: int = 20,
        char_dim: int = 16,
        widths: Sequence[int] = (1, 2, 3, 4),
        filters: Sequence[int] = (32, 32, 64, 64),
        piece_embedding: nn.Module | None = None,
        pieces: Sequence[Sequence[int]] | None = None,
        piece_fn: Callable[[str], list[int]] | None = None,
        reduce: str = "mean",
    ):
        super().__init__()
        self.tokens = list(tokens)
        self.num_embeddings, self.embedding_dim = len(self.tokens), embedding_dim
        self.mode, self.reduce, self.max_bytes = mode, reduce, max_bytes
        self.piece_fn = piece_fn
        if mode == "chars":
            self.encoder = CharCNN(embedding_dim, char_dim=char_dim, widths=widths, filters=filters)
            self.register_buffer("token_units", byte_ids(self.tokens, max_bytes), persistent=False)  # (V, L)
        elif mode == "pieces":
            if piece_embedding is None or pieces is None:
                raise ConfigError(
                    "mode='pieces' needs piece_embedding (the piece table) and pieces (piece ids per token)"
                )
            if piece_embedding.embedding_dim != embedding_dim:
                raise ConfigError(f"piece_embedding has D={piece_embedding.embedding_dim}, expected {embedding_dim}")
            if len(pieces) != len(self.tokens):
                raise ConfigError(
                    f"pieces has {len(pieces)} entries for {len(self.tokens)} tokens; give one list per token"
                )
            if reduce not in ("sum", "mean"):
                raise ConfigError(f"reduce={reduce!r} is not known; choose 'sum' or 'mean'")
            empty = [self.tokens[i] for i, p in enumerate(pieces) if len(p) == 0]
            if empty:
                raise ConfigError(f"tokens {empty[:5]} have no pieces; every token needs at least one piece id")
            self.encoder = piece_embedding
            self.register_buffer("token_units", self._pad_pieces(pieces), persistent=False)  # (V, L), -1 = padding
        else:
            raise ConfigError(f"mode={mode!r} is not known; choose 'chars' or 'pieces'")

    @staticmethod
    def _pad_pieces(pieces: Sequence[Sequence[int]]) -> torch.Tensor:
        width = max(len(p) for p in pieces)
        out = torch.full((len(pieces), width), -1, dtype=torch.long)
        for i, p in enumerate(pieces):
            out[i, : len(p)] = torch.as_tensor(list(p), dtype=torch.long)
        return out

    def _encode_units(self, units: torch.Tensor) -> torch.Tensor:
        """(N, L) bytes or piece ids (-1 padded) -> (N, D)."""
        if self.mode == "chars":
            return self.encoder(units)  # (N, D)
        mask = units >= 0  # (N, L)
        vecs = self.encoder(units.clamp(min=0))  # (N, L, D)
        total = (vecs * mask.unsqueeze(-1).to(vecs.dtype)).sum(1)  # (N, D) = Σ_j P[p_j]
        return total / mask.sum(1, keepdim=True).to(vecs.dtype) if self.reduce == "mean" else total

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.num_embeddings, where="CompositionalEmbedding")
        uniq, inverse = torch.unique(ids, return_inverse=True)  # compose each distinct token once: (U,), (B, T)
        vecs = self._encode_units(self.token_units[uniq])  # (U, D)
        return vecs[inverse]  # (B, T, D)

    def embed_strings(self, strings: Sequence[str]) -> torch.Tensor:
        """Vectors for arbitrary token strings (in the vocabulary or not): (N, D)."""
        device = self.token_units.device
        if self.mode == "chars":
            units = byte_ids(list(strings), self.max_bytes)
        else:
            if self.piece_fn is None:
                raise ConfigError(
                    "embed_strings in mode='pieces' needs piece_fn (str -> piece ids), "
                    "e.g. a subword tokenizer's encode"
                )
            units = self._pad_pieces([self.piece_fn(s) or [] for s in strings])
        return self._encode_units(units.to(device))

    def weight_matrix(self) -> torch.Tensor:
        """All V rows, materialised (V, D), differentiable."""
        return self._encode_units(self.token_units)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}"


class FrequencyGatedEmbedding(nn.Module):
    """Lookup for frequent tokens, compositional vectors for rare/unseen ones, gated by training counts.

    Args:
        lookup: a table embedding over the same V ids (e.g. :class:`TokenEmbedding`).
        compositional: a :class:`CompositionalEmbedding` over the same V tokens.
        counts: training count ``n_i`` of each of the V tokens.
        threshold: ``hard``: tokens with ``n_i < threshold`` use the compositional vector;
            ``soft``: the gate is ``g_i = n_i / (n_i + threshold)``, ``e_i = g_i E[i] + (1-g_i) c(i)``.
        mode: ``"hard"`` or ``"soft"``.
    """

    def __init__(
        self, lookup: nn.Module, compositional: CompositionalEmbedding, counts, threshold: float, *, mode: str = "hard"
    ):
        super().__init__()
        if lookup.num_embeddings != compositional.num_embeddings or lookup.embedding_dim != compositional.embedding_dim:
            raise ConfigError(
                f"lookup is ({lookup.num_embeddings}, {lookup.embedding_dim}) but compositional is "
                f"({compositional.num_embeddings}, {compositional.embedding_dim}); both must cover the same V ids and D"
            )
        counts_t = torch.as_tensor(counts, dtype=torch.float32).flatten()
        if counts_t.numel() != lookup.num_embeddings or bool((counts_t < 0).any()):
            raise ConfigError(
                f"counts must hold {lookup.num_embeddings} non-negative numbers (one per id), got {counts_t.numel()}"
            )
        if mode not in ("hard", "soft") or threshold <= 0:
            raise ConfigError(f"mode={mode!r}, threshold={threshold}: choose mode 'hard' or 'soft' and threshold > 0")
        self.lookup, self.compositional = lookup, compositional
        self.num_embeddings, self.embedding_dim = lookup.num_embeddings, lookup.embedding_dim
        self.mode, self.threshold = mode, float(threshold)
        self.register_buffer("counts", counts_t)
        gate = (counts_t >= threshold).float() if mode == "hard" else counts_t / (counts_t + threshold)
        self.register_buffer("gate", gate)  # (V,) weight of the lookup vector
        self._index = {t: i for i, t in enumerate(compositional.tokens)}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.num_embeddings, where="FrequencyGatedEmbedding")
        g = self.gate[ids].unsqueeze(-1)  # (B, T, 1)
        if self.mode == "hard":  # compute each side only where it is used
            out = self.lookup(ids)  # (B, T, D)
            rare = g.squeeze(-1) == 0
            if bool(rare.any()):
                out = out.masked_scatter(rare.unsqueeze(-1), self.compositional(ids[rare].unsqueeze(0)).squeeze(0))
            return out
        return g * self.lookup(ids) + (1 - g) * self.compositional(ids)  # (B, T, D)

    def embed_strings(self, strings: Sequence[str]) -> torch.Tensor:
        """Vectors for token strings: the gated vector for vocabulary tokens, the compositional one otherwise."""
        comp = self.compositional.embed_strings(strings)  # (N, D)
        known = [(n, self._index[s]) for n, s in enumerate(strings) if s in self._index]
        if not known:
            return comp
        pos = torch.tensor([n for n, _ in known], device=comp.device)
        ids = torch.tensor([[i for _, i in known]], device=comp.device)
        return comp.index_copy(0, pos, self.forward(ids).squeeze(0).to(comp.dtype))

    def weight_matrix(self) -> torch.Tensor:
        g = self.gate.unsqueeze(-1)  # (V, 1)
        return g * self.lookup.weight_matrix() + (1 - g) * self.compositional.weight_matrix()  # (V, D)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, threshold={self.threshold}, rare={int((self.gate == 0).sum())}"
