"""Tokenization statistics of one or more tokenizers on a corpus (what ``tokembed tokenizer compare`` shows).

Unlike :mod:`tokembed.metrics` (the definitions, one number each), this module runs the
tokenizers over text and counts what the metrics need: tokens, whitespace words, UTF-8 bytes,
unknown tokens, distinct ids, exact round trips, and encode time. Per language when the corpus
is given as ``LANG=PATH``. The study reuses :func:`tokenizer_stats` and :func:`compare_tokenizers`.

>>> from tokembed.tokenizers import ByteTokenizer
>>> s = tokenizer_stats(ByteTokenizer(), ["hello world", "héllo"])
>>> s.n_tokens, s.n_words, s.fertility, s.bytes_per_token, s.round_trip
(17, 3, 5.666..., 1.0, 1.0)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

from .. import metrics
from ..corpus import Corpus
from .base import Tokenizer

__all__ = ["TokenizerStats", "tokenizer_stats", "compare_tokenizers", "language_texts", "STAT_COLUMNS"]


@dataclass
class TokenizerStats:
    """Counts of one tokenizer on one text set, and the metrics derived from them."""

    name: str  # label of the tokenizer (its path, usually)
    language: str | None  # LANG of a LANG=PATH corpus, None for all text
    vocab_size: int  # V
    n_lines: int  # texts (non-blank lines) encoded
    n_words: int  # whitespace-separated words
    n_bytes: int  # UTF-8 bytes of the texts
    n_tokens: int  # ids produced
    n_unk: int  # ids equal to the unknown token (0 for kinds without one)
    n_seen: int  # distinct ids produced
    n_exact: int  # lines with decode(encode(x)) == x
    seconds: float  # wall time of encode_batch over all lines

    @property
    def fertility(self) -> float:
        return metrics.fertility(n_tokens=self.n_tokens, n_words=self.n_words)

    @property
    def bytes_per_token(self) -> float:
        return metrics.bytes_per_token(n_bytes=self.n_bytes, n_tokens=self.n_tokens)

    @property
    def unk_rate(self) -> float:
        return metrics.unk_rate(n_unk=self.n_unk, n_tokens=self.n_tokens)

    @property
    def vocab_utilisation(self) -> float:
        return metrics.vocab_utilisation(n_seen=self.n_seen, vocab_size=self.vocab_size)

    @property
    def round_trip(self) -> float:
        """Share of lines that decode back to exactly the same string."""
        return self.n_exact / self.n_lines if self.n_lines else float("nan")

    @property
    def mb_per_s(self) -> float:
        """Encode throughput in MB (10^6 UTF-8 bytes) per second."""
        return self.n_bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in STAT_COLUMNS:
            d[k] = getattr(self, k)
        return d


#: Derived columns, in display order.
STAT_COLUMNS = ("fertility", "bytes_per_token", "unk_rate", "vocab_utilisation", "round_trip", "mb_per_s")


def tokenizer_stats(tok: Tokenizer, texts: Iterable[str], *, name: str = "", language: str | None = None) -> TokenizerStats:
    """Encode ``texts`` with ``tok.encode_batch`` (timed) and count what the metrics need.

    Only the text's own tokens count: a loaded file's post-processor tokens (``[CLS] ... [SEP]``)
    are left out (``add_special_tokens=False``), as they are not part of the text.
    """
    texts = list(texts)
    kwargs = {"add_special_tokens": False} if getattr(tok, "add_special_tokens", False) else {}
    t0 = time.perf_counter()
    batches = tok.encode_batch(texts, **kwargs)
    seconds = time.perf_counter() - t0
    unk = tok.vocab.special_id("unk")
    seen: set[int] = set()
    n_tokens = n_unk = n_exact = 0
    for text, ids in zip(texts, batches):
        n_tokens += len(ids)
        seen.update(ids)
        if unk is not None:
            n_unk += ids.count(unk)
        n_exact += tok.decode(ids) == text
    return TokenizerStats(
        name=name or repr(tok),
        language=language,
        vocab_size=tok.vocab_size,
        n_lines=len(texts),
        n_words=sum(len(t.split()) for t in texts),
        n_bytes=sum(len(t.encode("utf-8", errors="surrogatepass")) for t in texts),
        n_tokens=n_tokens,
        n_unk=n_unk,
        n_seen=len(seen),
        n_exact=n_exact,
        seconds=seconds,
    )


def compare_tokenizers(tokenizers: Mapping[str, Tokenizer], corpus: Any = None, *, max_lines: int | None = None) -> list[TokenizerStats]:
    """Stats of every tokenizer on ``corpus`` (a Corpus, specs, or None for the built-in corpus).

    With ``LANG=PATH`` sources, one row per tokenizer and language (and no pooled row, so that
    a large language does not hide a small one); otherwise one row per tokenizer.
    ``max_lines`` caps the lines per language (the first ones, so runs are comparable).
    """
    texts = language_texts(corpus, max_lines=max_lines)
    return [
        tokenizer_stats(tok, t, name=name, language=lang) for name, tok in tokenizers.items() for lang, t in texts.items()
    ]


def language_texts(corpus: Any, *, max_lines: int | None = None) -> dict[str | None, list[str]]:
    """The texts each comparison encodes: per language of a ``LANG=PATH`` corpus (key None when untagged),
    at most ``max_lines`` per language (the first ones, so runs are comparable)."""
    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_args(corpus)
    groups: list[str | None] = list(corpus.languages) or [None]
    return {lang: list(islice(corpus.texts(lang), max_lines)) for lang in groups}
