"""Text -> ids: every tokenizer family behind one interface (:class:`Tokenizer`).

Layout: one module per family (:mod:`.byte`, :mod:`.char`, :mod:`.bpe`, :mod:`.bytebpe`,
:mod:`.wordpiece`, :mod:`.unigram`, :mod:`.morph`); :mod:`.formats` loads the files people
already have; engine adapters put an engine behind the interface
(:mod:`.hf_engine` for HF ``tokenizers``, :mod:`.sentencepiece_engine`,
:mod:`.tiktoken_engine` for the byte-level fast path); readable pure-Python references of the
ordinary encoders, tested against the engines (:mod:`.reference`, :mod:`.spm_reference`); and
seeded subword sampling (:mod:`.sampling`, :mod:`.regularization`); the morph kind's named
analyzers (:mod:`.analyzers`: Morfessor, Kiwi for Korean); statistics over a corpus
(:mod:`.stats`) and across languages (:mod:`.parity`).
"""

from collections.abc import Mapping

from ..corpus import Corpus
from ..errors import ConfigError
from ..options import check_options
from .analyzers import ANALYZERS, KiwiSegmenter  # the morph kind's named analyzers (registers "kiwi")
from .base import DEFAULT_SPECIAL_TOKENS, KINDS, Tokenizer, register, tokenizer_class, trainable_kinds
from .bpe import BPETokenizer
from .byte import ByteTokenizer
from .bytebpe import ByteBPETokenizer
from .char import CharTokenizer
from .formats import load_tokenizer
from .hf_engine import HFTokenizer
from .morph import DictSegmenter, MorfessorSegmenter, MorphTokenizer, Segmenter, register_segmenter
from .sentencepiece_engine import SentencePieceTokenizer
from .unigram import UnigramTokenizer
from .wordpiece import WordPieceTokenizer

__all__ = ["Tokenizer", "ByteTokenizer", "KINDS", "DEFAULT_SPECIAL_TOKENS", "register", "tokenizer_class", "trainable_kinds"]
__all__ += ["HFTokenizer", "ByteBPETokenizer", "WordPieceTokenizer"]
__all__ += ["load_tokenizer", "train_tokenizer"]
__all__ += ["SentencePieceTokenizer", "UnigramTokenizer", "BPETokenizer", "CharTokenizer"]
__all__ += ["MorphTokenizer", "Segmenter", "MorfessorSegmenter", "DictSegmenter", "register_segmenter"]
__all__ += ["ANALYZERS", "KiwiSegmenter"]


def train_tokenizer(kind: str, corpus=None, vocab_size: int | None = None, **opts) -> Tokenizer:
    """Train a tokenizer of ``kind`` on ``corpus`` (a :class:`~tokembed.corpus.Corpus`, a list of
    corpus specs, or None for the built-in corpus)."""
    cls = tokenizer_class(kind, trainable=True)
    _check_train_options(cls, kind, opts)
    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_args(corpus)
    return cls.train(corpus, vocab_size, **opts)


def _check_train_options(cls, kind: str, opts: dict) -> None:
    """Unknown keyword options of a ``train`` with an explicit signature are a ConfigError
    (listing the valid ones), not a TypeError; kinds taking ``**opts`` check their own."""
    sp = opts.get("special_tokens")
    if sp is not None and not (
        isinstance(sp, Mapping) and all(isinstance(r, str) and isinstance(t, str) and t for r, t in sp.items())
    ):
        raise ConfigError(
            f"special_tokens={sp!r}: pass a mapping role -> non-empty string, "
            'e.g. special_tokens={"pad": "<pad>", "eos": "</s>"}',
            param="special_tokens",
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
