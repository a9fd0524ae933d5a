"""``bytebpe``: GPT-2-style byte-level BPE, trained with HF ``tokenizers``, encoded with ``tiktoken``.

Unlike ``bpe`` (character BPE with byte fallback, sentencepiece style), the alphabet here is
the 256 byte values: text is split by a regex (GPT-2 or cl100k style), each piece is written
as UTF-8 bytes and merged by the learned merges. Every string has an encoding (no OOV) and
``decode(encode(x)) == x`` exactly (lossless), except lone surrogates, which cannot be UTF-8
and are replaced by U+FFFD, as tiktoken does.

Engines: training and offsets use the HF engine; ordinary encoding goes through ``tiktoken``
over the same ranks (:mod:`~tokembed.tokenizers.tiktoken_engine`), with identical ids; seeded
BPE-dropout (``encode(text, dropout=p, seed=s)``) runs in :mod:`~tokembed.tokenizers.sampling`;
:mod:`~tokembed.tokenizers.reference` is the readable pure-Python encoder, tested against both.

>>> from tokembed.corpus import Corpus
>>> tok = ByteBPETokenizer.train(Corpus([]), 300, progress=False)
>>> tok.vocab_size, tok.special_tokens
(300, {'pad': '<pad>', 'bos': '<s>', 'eos': '</s>'})
>>> tok.decode(tok.encode("naïve café 🙂")) == "naïve café 🙂"
True
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ..corpus import DEFAULT_ALPHA
from ..errors import ConfigError, TokenizerError, TokenizerFileError, VocabSizeError
from .base import DEFAULT_SPECIAL_TOKENS, register
from .progress import show_progress
from .hf_engine import ENGINE_FILE, HFTokenizer, _without_lone_surrogates, engine_errors, engine_from_file, train_engine
from .patterns import resolve_pattern
from .reference import token_to_bytes
from .sampling import bpe_dropout
from .tiktoken_engine import byte_level_bpe

__all__ = ["ByteBPETokenizer", "DEFAULT_VOCAB_SIZE"]

#: Vocabulary size when none is given: 4096 = 256 bytes + specials + ~3800 merges, enough
#: for ~3.5 bytes/token on English prose, small enough to train on the built-in corpus in seconds.
DEFAULT_VOCAB_SIZE = 4096


@register("bytebpe")
class ByteBPETokenizer(HFTokenizer):
    """Byte-level BPE (no OOV, lossless). Build with :meth:`train` or load a saved folder."""

    trainable = True

    def __init__(
        self,
        engine,
        *,
        special_tokens: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        tiktoken: bool = True,
        source: str = "the engine",
    ):
        bpe = byte_level_bpe(engine)
        if bpe is None:
            raise TokenizerFileError(
                f"{source}: not a plain byte-level BPE (see tiktoken_engine.byte_level_bpe); load the tokenizer.json as kind 'hf'"
            )
        from_ranks = (options or {}).get("source") == "tiktoken"  # a rank file: tiktoken defines its ids
        super().__init__(
            engine,
            special_tokens=special_tokens,
            add_special_tokens=False,
            options=options,
            tiktoken=tiktoken,
            tiktoken_defines_ids=from_ranks,
            _byte_level=bpe,
        )
        self._bpe = bpe
        self._byte_ids = {t[0]: i for t, i in bpe.ranks.items() if len(t) == 1}  # byte value -> id
        #: The readable reference encoder over the same merges (tested against the engines).
        self.reference = bpe.reference()

    @classmethod
    def train(
        cls,
        corpus: Any = None,
        vocab_size: int | None = None,
        *,
        special_tokens: Mapping[str, str] | None = None,
        pattern: str = "cl100k",
        min_frequency: int = 2,
        alpha: float = DEFAULT_ALPHA,
        seed: int = 0,
        progress: bool = True,
    ) -> "ByteBPETokenizer":
        """Learn merges on ``corpus.training_texts(alpha=alpha, seed=seed)``.

        Args:
            vocab_size: total size (256 bytes + specials + merges); default :data:`DEFAULT_VOCAB_SIZE`.
                Training stops earlier when no pair occurs ``min_frequency`` times.
            special_tokens: role -> string; default :data:`~tokembed.tokenizers.base.DEFAULT_SPECIAL_TOKENS`.
                They take ids 0, 1, ... in this order.
            pattern: ``"cl100k"`` (default), ``"gpt2"`` or a regex (Oniguruma/tiktoken/Python-``regex`` syntax).
            alpha, seed: α-smoothed language sampling of ``LANG=PATH`` corpora.
        """
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

        specials = dict(DEFAULT_SPECIAL_TOKENS if special_tokens is None else special_tokens)
        vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else int(vocab_size)
        minimum = 256 + len(set(specials.values()))
        if vocab_size < minimum:
            raise VocabSizeError(
                f"vocab size {vocab_size} cannot hold the 256 byte tokens and {minimum - 256} special tokens; "
                f"pass vocab_size >= {minimum}",
                param="vocab_size",
            )
        regex = resolve_pattern(pattern)
        engine = Tokenizer(models.BPE())
        try:
            split = pre_tokenizers.Split(Regex(regex), behavior="isolated")
        except Exception as e:
            raise ConfigError(f"pattern {regex!r} does not compile ({e}); pass 'cl100k', 'gpt2' or a valid regex") from None
        engine.pre_tokenizer = pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        engine.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(dict.fromkeys(specials.values())),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=progress and show_progress(None),
        )
        train_engine(engine, trainer, corpus, alpha=alpha, seed=seed)
        options = {"pattern": pattern, "min_frequency": min_frequency, "alpha": alpha, "seed": seed}
        return cls(engine, special_tokens=specials, options=options)

    def _sample(self, text: str, *, dropout: float = 0.0, seed: int = 0, **other: Any) -> list[int]:
        """BPE-dropout (:func:`~tokembed.tokenizers.sampling.bpe_dropout`) over the engine's own
        pre-tokenization, seeded by ``random.Random(seed)``; ``dropout=0`` is the ordinary encode."""
        if other:
            raise TokenizerError(f"bytebpe supports dropout=p, seed=s; remove {sorted(other)}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout!r}; pass a probability in [0, 1)")
        if dropout == 0:
            return self._encode_ordinary(text)
        rng = random.Random(seed)
        merges, byte_ids = self._bpe.merges, self._byte_ids

        def rank(a: int, b: int) -> tuple[int, int] | None:
            m = merges.get((a, b))
            return None if m is None else (m, m)  # merged ids grow in merge order: the id is the rank

        with engine_errors():
            pieces = self._plain.pre_tokenizer.pre_tokenize_str(_without_lone_surrogates(text))
        ids: list[int] = []
        for piece, _ in pieces:
            ids.extend(bpe_dropout([byte_ids[b] for b in token_to_bytes(piece)], rank, float(dropout), rng))
        return ids

    @classmethod
    def _load(cls, folder, meta):
        path = folder / ENGINE_FILE
        return cls(engine_from_file(path), special_tokens=meta.get("special_tokens"), options=meta.get("options"), source=str(path))
