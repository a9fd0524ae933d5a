"""Subword regularization for training: several segmentations of one text.

Unlike ``encode(text, dropout=p, seed=s)`` / ``encode(text, alpha=a, nbest=n, seed=s)``, which
give one reproducible sampled segmentation, :func:`sample_segmentations` gives ``n`` of them
with seeds derived from one ``seed`` (so the same call gives the same list, and each epoch of a
training loop can pass its own seed). It is generic: any tokenizer whose ``encode`` accepts
sampling keyword arguments and ``seed`` works (sentencepiece ``unigram``/``bpe``/``morph``,
HF ``bytebpe`` with ``dropout``). Every sampled segmentation decodes to the same text.

Sources: Kudo (2018) "Subword Regularization" (Unigram sampling, α smoothing, n-best);
Provilkov et al. (2020) "BPE-Dropout".

>>> from tokembed.tokenizers import UnigramTokenizer
>>> tok = UnigramTokenizer.train(["unbelievable believers believe in unbelief " * 30], 20, byte_fallback=False)
>>> segs = sample_segmentations(tok, "unbelievable believers", 4, seed=0, alpha=0.5)
>>> len(segs), all(tok.decode(s) == "unbelievable believers" for s in segs)
(4, True)
>>> segs == sample_segmentations(tok, "unbelievable believers", 4, seed=0, alpha=0.5)
True
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import ConfigError

__all__ = ["sample_segmentations", "derived_seed"]


def derived_seed(seed: int, k: int) -> int:
    """The seed of the k-th sample: first 4 bytes of sha256("seed:k") (stable across runs and platforms).

    >>> derived_seed(0, 0), derived_seed(0, 1)
    (2318824108, 709825519)
    """
    return int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:4], "little")


def sample_segmentations(tokenizer: Any, text: str, n: int, *, seed: int = 0, **sampling: Any) -> list[list[int]]:
    """``n`` sampled segmentations (id lists) of ``text``; sample k uses ``derived_seed(seed, k)``.

    ``sampling`` is passed to ``tokenizer.encode`` (``dropout=p`` for BPE kinds, ``alpha=a,
    nbest=m`` for Unigram). Without sampling options, or with zero dropout, all ``n`` are the
    ordinary segmentation.
    """
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n={n!r}; pass the number of segmentations to sample (>= 1)")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r}; pass a non-negative int")
    if not sampling:
        ids = tokenizer.encode(text)
        return [list(ids) for _ in range(n)]
    return [tokenizer.encode(text, seed=derived_seed(seed, k), **sampling) for k in range(n)]
