"""Text -> ids: every tokenizer family behind one interface (:class:`Tokenizer`)."""

from ..options import check_options
from .base import DEFAULT_SPECIAL_TOKENS, KINDS, Tokenizer, register, tokenizer_class
from .byte import ByteTokenizer
from .bytebpe import ByteBPETokenizer
from .hf import HFTokenizer
from .wordpiece import WordPieceTokenizer

__all__ = ["Tokenizer", "ByteTokenizer", "KINDS", "DEFAULT_SPECIAL_TOKENS", "register", "tokenizer_class"]
__all__ += ["HFTokenizer", "ByteBPETokenizer", "WordPieceTokenizer"]


def load_tokenizer(path, **kwargs) -> Tokenizer:
    """Load a tokenizer from a local path: a tokembed folder, ``tokenizer.json``, ``vocab.txt``,
    a sentencepiece ``.model`` or a tiktoken rank file (see :mod:`tokembed.tokenizers.formats`)."""
    from .formats import load_tokenizer as _load

    return _load(path, **kwargs)


def train_tokenizer(kind: str, corpus=None, vocab_size: int | None = None, **opts) -> Tokenizer:
    """Train a tokenizer of ``kind`` on ``corpus`` (a :class:`~tokembed.corpus.Corpus`, a list of
    corpus specs, or None for the built-in corpus)."""
    from ..corpus import Corpus

    cls = tokenizer_class(kind)
    _check_train_options(cls, kind, opts)
    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_args(corpus)
    return cls.train(corpus, vocab_size, **opts)


def _check_train_options(cls, kind: str, opts: dict) -> None:
    """Unknown keyword options of a ``train`` with an explicit signature are a ConfigError
    (listing the valid ones), not a TypeError; kinds taking ``**opts`` check their own."""
    from collections.abc import Mapping

    from ..errors import ConfigError

    sp = opts.get("special_tokens")
    if sp is not None and not (
        isinstance(sp, Mapping) and all(isinstance(r, str) and isinstance(t, str) and t for r, t in sp.items())
    ):
        raise ConfigError(
            f"special_tokens={sp!r}: pass a mapping role -> non-empty string, "
            'e.g. --option \'special_tokens={"pad": "<pad>", "eos": "</s>"}\''
        )
    for role, token in (sp or {}).items():
        if len(token) < 2:  # it would be a character of ordinary text too (ids of "a" and <pad> would merge)
            raise ConfigError(
                f"special token {role}={token!r} must be a string of 2+ characters (a one-character special "
                "would take that character away from ordinary text), e.g. '<pad>'"
            )
    check_options(cls.train, f"{kind} tokenizer", opts)
    if isinstance(opts.get("min_frequency"), int) and opts["min_frequency"] < 0:
        raise ConfigError(f"{kind} tokenizer: min_frequency={opts['min_frequency']} must be >= 0 (default 2)")


__all__ += ["load_tokenizer", "train_tokenizer"]

from .spm import BPETokenizer, CharTokenizer, SentencePieceTokenizer, UnigramTokenizer  # noqa: E402

__all__ += ["SentencePieceTokenizer", "UnigramTokenizer", "BPETokenizer", "CharTokenizer"]
from .morph import DictSegmenter, MorfessorSegmenter, MorphTokenizer, Segmenter, register_segmenter  # noqa: E402

__all__ += ["MorphTokenizer", "Segmenter", "MorfessorSegmenter", "DictSegmenter", "register_segmenter"]
from .analyzers import ANALYZERS, KiwiSegmenter  # noqa: E402  (registers the kiwi analyzer)

__all__ += ["ANALYZERS", "KiwiSegmenter"]
