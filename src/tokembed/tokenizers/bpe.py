"""``bpe``: character BPE with byte fallback (sentencepiece BPE, as Llama).

Unlike ``bytebpe`` (merges over the 256 byte values after a regex split), merges run over
Unicode characters of the whole text (a space is ``▁``), and characters outside the vocabulary
fall back to byte tokens. BPE-dropout: ``encode(text, dropout=p, seed=s)`` (seeded, the same ids
in any process; see :mod:`~tokembed.tokenizers.sampling`). Engine and special tokens:
:mod:`~tokembed.tokenizers.sentencepiece_engine`.

>>> tok = BPETokenizer.train(["low lower lowest newer wider"] * 20, 280)
>>> tok.decode(tok.encode("lower newest", dropout=0.3, seed=1))
'lower newest'
"""

from __future__ import annotations

from typing import Any

from .base import register
from .sentencepiece_engine import SentencePieceTokenizer

__all__ = ["BPETokenizer"]


@register("bpe")
class BPETokenizer(SentencePieceTokenizer):
    """Character BPE with byte fallback (sentencepiece BPE, as Llama); BPE-dropout: ``encode(t, dropout=p, seed=)``."""

    trainable = True

    @classmethod
    def train(cls, corpus: Any = None, vocab_size: int | None = None, **opts: Any) -> "BPETokenizer":
        """Train on ``corpus`` (Corpus or list of lines); options: :class:`SpmTrainConfig`."""
        return cls._train_spm("bpe", corpus, vocab_size, opts)
