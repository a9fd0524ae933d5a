"""``unigram``: the Unigram language model (Kudo 2018), trained and run by sentencepiece.

Unlike ``bpe`` (greedy merges), a text is segmented by Viterbi over all pieces that match
(the most probable segmentation under the piece log-probabilities), and subword sampling
draws a segmentation from the lattice: ``encode(text, alpha=a, nbest=n, seed=s)`` (seeded, the
same ids in any process; see :mod:`~tokembed.tokenizers.sampling`). Engine, byte fallback and
special tokens: :mod:`~tokembed.tokenizers.sentencepiece_engine`.

>>> tok = UnigramTokenizer.train(["The cat sat on the mat. " * 20, "A dog, a cat and a rat."], 278)
>>> tok.decode(tok.encode("the cat", alpha=0.5, seed=0))
'the cat'
"""

from __future__ import annotations

from typing import Any

from .base import register
from .sentencepiece_engine import SentencePieceTokenizer

__all__ = ["UnigramTokenizer"]


@register("unigram")
class UnigramTokenizer(SentencePieceTokenizer):
    """Unigram LM (Kudo 2018) trained by sentencepiece; sampling: ``encode(t, alpha=, nbest=, seed=)``."""

    trainable = True

    @classmethod
    def train(cls, corpus: Any = None, vocab_size: int | None = None, **opts: Any) -> "UnigramTokenizer":
        """Train on ``corpus`` (Corpus or list of lines); options: :class:`SpmTrainConfig`."""
        return cls._train_spm("unigram", corpus, vocab_size, opts)
