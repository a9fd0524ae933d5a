"""Slow, readable references of sentencepiece's three encoders, tested against the engine.

Unlike :mod:`tokembed.tokenizers.sentencepiece_engine`, which calls the C++ engine, these re-derive the ids
from the model's pieces and scores in a few lines of Python, for the settings tokembed
trains with (identity normalisation, no dummy prefix, spaces written ``▁``):

- **unigram** (Kudo 2018): Viterbi — the segmentation maximising the sum of piece log
  probabilities; a character that no single-character piece covers becomes an unknown node
  scored ``min_score - 10`` (sentencepiece's ``kUnkPenalty``).
- **bpe**: start from characters, repeatedly merge the adjacent pair whose concatenation is
  the highest-scoring piece (leftmost on ties) until no pair is a piece.
- **char**: one piece per character.

Unknown characters become their UTF-8 byte tokens with byte fallback, else ``<unk>``
(consecutive unknowns merged into one, as sentencepiece does). Scores are summed in float32
like the engine, so near-ties resolve the same way.

>>> from tokembed.tokenizers import BPETokenizer
>>> tok = BPETokenizer.train(["low lower lowest newer wider"] * 20, 280)
>>> reference_encode(tok, "lower newest") == tok.encode("lower newest")
True
"""

from __future__ import annotations

import numpy as np

from ._spm_proto import UNK_PENALTY as _UNK_PENALTY
from ._spm_proto import PieceTable, SpmModelInfo

__all__ = ["reference_encode", "unigram_encode", "bpe_encode", "char_encode"]

UNK_PENALTY = np.float32(_UNK_PENALTY)  # sentencepiece unigram_model.cc: kUnkPenalty


def _normalize(text: str) -> str:
    return text.replace(" ", "\u2581")


def unigram_encode(info: SpmModelInfo, text: str) -> list[int]:
    """Viterbi over the piece lattice: best[j] = max_i best[i] + score(text[i:j])."""
    m, s = PieceTable(info), _normalize(text)
    n = len(s)
    best: list[np.float32 | None] = [None] * (n + 1)
    back: list[tuple[int, bool]] = [(0, False)] * (n + 1)  # (start, known) of the best node ending here
    best[0] = np.float32(0.0)
    for i in range(n):
        if best[i] is None:
            continue
        has_single = False
        for j in range(i + 1, min(n, i + m.max_len) + 1):
            piece = s[i:j]
            if piece in m.score:
                has_single |= j == i + 1
                cand = np.float32(best[i] + m.score[piece])
                if best[j] is None or cand > best[j]:
                    best[j], back[j] = cand, (i, True)
        if not has_single:  # an unknown character: one node of length 1
            cand = np.float32(best[i] + m.min_score - UNK_PENALTY)
            if best[i + 1] is None or cand > best[i + 1]:
                best[i + 1], back[i + 1] = cand, (i, False)
    pieces, j = [], n
    while j > 0:
        i, known = back[j]
        pieces.append((s[i:j], known))
        j = i
    return m.ids(pieces[::-1])


def bpe_encode(info: SpmModelInfo, text: str) -> list[int]:
    """Greedy merges: the adjacent pair forming the best-scoring piece first, leftmost on ties."""
    m = PieceTable(info)
    symbols = list(_normalize(text))
    while True:
        best, at = None, -1
        for k in range(len(symbols) - 1):
            score = m.score.get(symbols[k] + symbols[k + 1])
            if score is not None and (best is None or score > best):
                best, at = score, k
        if best is None:
            break
        symbols[at : at + 2] = [symbols[at] + symbols[at + 1]]
    return m.ids([(p, p in m.id) for p in symbols])


def char_encode(info: SpmModelInfo, text: str) -> list[int]:
    """One piece per character."""
    m = PieceTable(info)
    return m.ids([(c, c in m.id) for c in _normalize(text)])


def reference_encode(tokenizer, text: str) -> list[int]:
    """The reference ids for a tokembed sentencepiece tokenizer trained with tokembed's settings."""
    info = tokenizer.info
    fn = {"unigram": unigram_encode, "bpe": bpe_encode, "char": char_encode}[info.model_type]
    if "\u2581" in text and tokenizer._meta_bytes is not None:  # a literal "▁" is its byte tokens (see sentencepiece_engine.py)
        parts = [fn(info, p) for p in text.split("\u2581")]
        out = parts[0]
        for p in parts[1:]:
            out = out + tokenizer._meta_bytes + p
        return out
    return fn(info, text)
