"""``char``: one token per character seen in training, byte fallback (or ``<unk>``) for the rest.

Unlike ``byte`` (the 256 byte values, no training), the alphabet is the characters that
``character_coverage`` keeps; ``vocab_size`` is only an upper bound. Trained and run by
sentencepiece (:mod:`~tokembed.tokenizers.sentencepiece_engine`).

>>> tok = CharTokenizer.train(["abc abd"] * 5)
>>> tok.tokens("abc")
['a', 'b', 'c']
"""

from __future__ import annotations

from typing import Any

from .base import register
from .sentencepiece_engine import SentencePieceTokenizer

__all__ = ["CharTokenizer"]


@register("char")
class CharTokenizer(SentencePieceTokenizer):
    """Characters seen in training (``character_coverage``), byte fallback or ``<unk>`` for the rest."""

    trainable = True

    @classmethod
    def train(cls, corpus: Any = None, vocab_size: int | None = None, **opts: Any) -> "CharTokenizer":
        """``vocab_size`` is an upper bound: the alphabet is what ``character_coverage`` keeps."""
        return cls._train_spm("char", corpus, vocab_size, opts)
