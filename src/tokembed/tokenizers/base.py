"""The one tokenizer interface every family implements, the kind registry, and save/load.

A tokenizer maps text to ids and back. Subclasses implement only the ordinary path
(``_encode_ordinary``/``_decode``) plus their engine's save/load; this base adds special
tokens, batching, tokens, the Vocab and fingerprint, and the ``tokembed.json`` artifact.

Special tokens: a special token's string inside user text is encoded as plain text
(like any other characters) unless the caller allows it, as tiktoken's ``allowed_special``;
``disallowed_special="raise"`` raises :class:`SpecialTokenError` instead.

>>> from tokembed.tokenizers import ByteTokenizer
>>> tok = ByteTokenizer()
>>> tok.encode("hi</s>", allowed_special={"</s>"})
[104, 105, 258]
>>> tok.decode([104, 105, 258])
'hi</s>'
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..artifacts import TOKEMBED_VERSION, atomic_dir, read_json, write_json
from ..errors import ConfigError, SpecialTokenError, TokenizerError, TokenizerFileError
from ..vocab import Vocab
from .spm_hf import hf_side_files

__all__ = [
    "Tokenizer",
    "register",
    "tokenizer_class",
    "trainable_kinds",
    "KINDS",
    "META_FILE",
    "DEFAULT_SPECIAL_TOKENS",
    "char_spans_from_byte_lengths",
]

META_FILE = "tokembed.json"
#: Hugging Face's engine file name (written next to a tokembed engine file where the ids allow).
HF_ENGINE_FILE = "tokenizer.json"

#: Special tokens every trainable kind gets unless the caller passes others (role -> string).
#: ``pad`` for batching, ``bos``/``eos`` to separate documents in LM training.
DEFAULT_SPECIAL_TOKENS: dict[str, str] = {"pad": "<pad>", "bos": "<s>", "eos": "</s>"}

KINDS: dict[str, type["Tokenizer"]] = {}


def register(kind: str) -> Callable[[type["Tokenizer"]], type["Tokenizer"]]:
    """Class decorator: make a Tokenizer subclass loadable/trainable under ``kind``."""

    def deco(cls: type[Tokenizer]) -> type[Tokenizer]:
        cls.kind = kind
        KINDS[kind] = cls
        return cls

    return deco


def tokenizer_class(kind: str, *, trainable: bool = False) -> type["Tokenizer"]:
    """The class registered as ``kind``; ``trainable=True``: only kinds that can be trained."""
    cls = KINDS.get(kind)
    if cls is None or (trainable and not cls.trainable):
        choices = trainable_kinds() if trainable else sorted(KINDS)
        what = "trainable tokenizer kind" if trainable and cls is not None else "tokenizer kind"
        how = " (it wraps a loaded file)" if cls is not None else ""
        raise ConfigError(f"{kind!r} is not a {what}{how}; choose one of {', '.join(choices)}")
    return cls


def trainable_kinds() -> list[str]:
    """Registered kinds that :func:`~tokembed.tokenizers.train_tokenizer` can train, sorted."""
    return sorted(k for k, c in KINDS.items() if c.trainable)


def utf8_len(ch: str) -> int:
    """UTF-8 length of one code point (a lone surrogate counts 3, as ``surrogatepass`` writes it)."""
    o = ord(ch)
    return 1 if o < 0x80 else 2 if o < 0x800 else 3 if o < 0x10000 else 4


def char_spans_from_byte_lengths(text: str, lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Char spans of consecutive tokens covering ``text``'s UTF-8 bytes, token k being ``lengths[k]`` bytes.

    A token's span runs from the character holding its first byte to the one holding its last
    (a byte inside a multi-byte character gets that character's span); a 0-byte token gets an
    empty span where it stands.

    >>> char_spans_from_byte_lengths("hé!", [1, 1, 1, 1])
    [(0, 1), (1, 2), (1, 2), (2, 3)]
    """
    char_of: list[int] = []  # byte position -> index of the character holding it
    for k, ch in enumerate(text):
        char_of.extend([k] * utf8_len(ch))
    char_of.append(len(text))
    if sum(lengths) != len(char_of) - 1:
        raise TokenizerError(
            f"the tokens stand for {sum(lengths)} bytes but the text has {len(char_of) - 1} UTF-8 bytes; "
            "this tokenizer is not lossless on this text, so byte-span offsets do not apply"
        )
    out, pos = [], 0
    for n in lengths:
        out.append((char_of[pos], char_of[pos + n - 1] + 1) if n else (char_of[pos], char_of[pos]))
        pos += n
    return out


class Tokenizer(ABC):
    """Base of every tokenizer. Subclasses set ``self.vocab`` and implement the ``_`` hooks.

    Attributes:
        kind: registry name (``"byte"``, ``"bytebpe"``, ...).
        vocab: the id <-> token table with special tokens; ``vocab.fingerprint`` identifies it.
        options: the options the tokenizer was trained or loaded with (saved in tokembed.json).
    """

    kind: ClassVar[str] = "abstract"
    #: ``train`` builds one from a corpus (False: the kind only wraps loaded files, e.g. ``hf``).
    trainable: ClassVar[bool] = True
    #: True when decode(encode(x)) == x for every str x without lone surrogates.
    lossless: ClassVar[bool] = True

    vocab: Vocab
    options: dict[str, Any]

    # -- hooks -------------------------------------------------------------------
    @abstractmethod
    def _encode_ordinary(self, text: str, **sampling: Any) -> list[int]:
        """Encode text that holds no special tokens to handle (sampling: dropout/alpha/nbest/seed)."""

    @abstractmethod
    def _decode(self, ids: Sequence[int]) -> str:
        """Decode ids (specials included) to text."""

    def _encode_ordinary_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Batch path without sampling; engines override with their parallel batch encoder."""
        return [self._encode_ordinary(t) for t in texts]

    def _save_engine(self, folder: Path) -> None:
        """Write the engine's own file(s) into ``folder`` (tokembed.json is written by :meth:`save`)."""

    def _hf_tokenizer_json(self) -> dict[str, Any] | None:
        """A Hugging Face ``tokenizer.json`` document with this tokenizer's ids, for kinds whose engine file
        is another format; None when there is none (kinds whose engine file already is one need none)."""
        return None

    @classmethod
    @abstractmethod
    def _load(cls, folder: Path, meta: dict[str, Any]) -> "Tokenizer":
        """Rebuild from a folder written by :meth:`save`."""

    # -- public API ----------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def fingerprint(self) -> str:
        return self.vocab.fingerprint

    @property
    def special_tokens(self) -> dict[str, str]:
        return dict(self.vocab.special_tokens)

    def encode(
        self,
        text: str,
        *,
        allowed_special: Collection[str] | Literal["all"] = (),
        disallowed_special: Literal["plain", "raise"] = "plain",
        **sampling: Any,
    ) -> list[int]:
        """Text -> ids.

        Args:
            allowed_special: special token strings to encode as their special id when they
                occur in ``text`` (``"all"`` for every one); others are plain text.
            disallowed_special: ``"plain"`` (default) encodes a non-allowed special string as
                ordinary text; ``"raise"`` raises :class:`SpecialTokenError`.
            sampling: subword regularization for kinds that support it
                (``dropout=p, seed=s`` for BPE; ``alpha=a, nbest=n, seed=s`` for Unigram).
        """
        allowed = self._check_encode_args(text, allowed_special, disallowed_special)
        if not allowed:
            return self._encode_ordinary(text, **sampling)
        ids: list[int] = []
        pattern = re.compile("|".join(re.escape(s) for s in sorted(allowed, key=len, reverse=True)))
        start = 0
        for m in pattern.finditer(text):
            if m.start() > start:
                ids.extend(self._encode_ordinary(text[start : m.start()], **sampling))
            ids.append(self.vocab[m.group()])
            start = m.end()
        if start < len(text):
            ids.extend(self._encode_ordinary(text[start:], **sampling))
        return ids

    def encode_with_offsets(
        self,
        text: str,
        *,
        allowed_special: Collection[str] | Literal["all"] = (),
        disallowed_special: Literal["plain", "raise"] = "plain",
        **sampling: Any,
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Text -> (ids, character offsets ``(start, end)`` into ``text`` per token).

        ``ids`` equal :meth:`encode` with the same options. An allowed special token gets the
        span of its string in ``text``; a token that is part of one character (a byte of a
        multi-byte character) gets that character's span, so several tokens may share a span.
        Offsets are non-decreasing; for lossless kinds the distinct spans cover ``text``.

        >>> from tokembed.tokenizers import ByteTokenizer
        >>> ByteTokenizer().encode_with_offsets("hé</s>", allowed_special={"</s>"})
        ([104, 195, 169, 258], [(0, 1), (1, 2), (1, 2), (2, 6)])
        """
        allowed = self._check_encode_args(text, allowed_special, disallowed_special)
        if sampling:
            raise ConfigError(f"offsets are not available with subword sampling {sorted(sampling)}; call encode()")
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        matches = []
        if allowed:
            pattern = re.compile("|".join(re.escape(s) for s in sorted(allowed, key=len, reverse=True)))
            matches = list(pattern.finditer(text))
        start = 0
        for m in [*matches, None]:
            end = len(text) if m is None else m.start()
            if end > start:
                seg_ids, seg_offsets = self._ordinary_offsets(text[start:end])
                ids.extend(seg_ids)
                offsets.extend((a + start, b + start) for a, b in seg_offsets)
            if m is not None:
                ids.append(self.vocab[m.group()])
                offsets.append(m.span())
                start = m.end()
        return ids, offsets

    def _ordinary_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and char offsets of text without specials to handle. Generic version (also the slow
        reference of the engines' own versions): each token's bytes from :meth:`_token_bytes`."""
        ids = self._encode_ordinary(text)
        return ids, char_spans_from_byte_lengths(text, [len(self._token_bytes(i)) for i in ids])

    def _token_bytes(self, i: int) -> bytes:
        """The UTF-8 bytes token ``i`` stands for in text; kinds whose tokens map to byte spans override it."""
        raise TokenizerError(
            f"{self.kind} tokenizer does not map its tokens to byte spans, so it has no offsets; use encode()"
        )

    def _check_encode_args(self, text: str, allowed_special: Collection[str] | str, disallowed_special: str) -> set[str]:
        """Validate encode's arguments; returns the allowed special strings."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode takes a str, got {type(text).__name__}; decode bytes first")
        allowed = self._allowed(allowed_special)
        self._check_disallowed(text, allowed, disallowed_special)
        return allowed

    def _check_disallowed(self, text: str, allowed: set[str], disallowed_special: str) -> None:
        if disallowed_special not in ("plain", "raise"):
            raise ConfigError(f"disallowed_special={disallowed_special!r}; pass 'plain' or 'raise'")
        if disallowed_special == "raise":
            for s in self.vocab.special_tokens.values():
                if s not in allowed and s in text:
                    raise SpecialTokenError(
                        f"text contains the special token {s!r} at char {text.index(s)}; to encode it as a special "
                        f"token pass allowed_special={{{s!r}}}, or disallowed_special='plain' to encode it as text"
                    )

    def _allowed(self, allowed_special: Collection[str] | str) -> set[str]:
        if allowed_special == "all":
            return set(self.vocab.special_tokens.values())
        if isinstance(allowed_special, str):
            raise ConfigError(f"allowed_special={allowed_special!r}; pass 'all' or a set of special token strings")
        specials = set(self.vocab.special_tokens.values())
        unknown = set(allowed_special) - specials
        if unknown:
            raise SpecialTokenError(
                f"allowed_special names {sorted(unknown)}, which are not special tokens of this tokenizer; "
                f"its special tokens are {sorted(specials)}"
            )
        return set(allowed_special)

    def encode_batch(self, texts: Iterable[str], **kwargs: Any) -> list[list[int]]:
        """Encode many texts (in parallel where the engine allows); same ids as :meth:`encode`."""
        texts = list(texts)
        if not kwargs:
            for t in texts:
                if not isinstance(t, str):
                    raise TokenizerError(f"encode_batch takes str items, got {type(t).__name__}")
            return self._encode_ordinary_batch(texts)
        return [self.encode(t, **kwargs) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        ids = list(ids)
        n = len(self.vocab)
        for pos, i in enumerate(ids):
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n:
                raise TokenizerError(f"id {i!r} at position {pos} is outside the vocab [0, {n}); pass ids from this tokenizer")
        return self._decode(ids)

    def tokens(self, text: str, **kwargs: Any) -> list[str]:
        """The token strings of ``encode(text)``."""
        return [self.vocab.token(i) for i in self.encode(text, **kwargs)]

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the engine's file(s) and ``tokembed.json`` into ``folder`` atomically.

        Where the ids can be expressed as a Hugging Face ``tokenizer.json`` (the engine's own file, or
        :meth:`_hf_tokenizer_json`), the folder also gets ``tokenizer_config.json`` and
        ``special_tokens_map.json``, so ``transformers.AutoTokenizer.from_pretrained(folder)`` loads it
        with the same ids and pad/bos/eos/unk set.
        """
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            self._save_engine(tmp)
            write_json(tmp / META_FILE, self.meta())
            self._save_hf_files(tmp)
        return folder

    def _save_hf_files(self, folder: Path) -> None:
        if not (folder / HF_ENGINE_FILE).is_file():
            doc = self._hf_tokenizer_json()
            if doc is None:
                return
            write_json(folder / HF_ENGINE_FILE, doc)
        config, special_map = hf_side_files(self)
        write_json(folder / "tokenizer_config.json", config)
        write_json(folder / "special_tokens_map.json", special_map)

    def meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "options": self.options,
            "vocab_size": self.vocab_size,
            "special_tokens": self.special_tokens,
            "fingerprint": self.fingerprint,
            "tokembed_version": TOKEMBED_VERSION,
        }

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Tokenizer":
        """Load a tokembed tokenizer folder; checks the fingerprint stored in tokembed.json."""
        folder = Path(folder)
        meta = read_json(folder / META_FILE)
        if not isinstance(meta, dict) or "kind" not in meta:
            raise TokenizerFileError(f"{folder / META_FILE}: no 'kind' field; is this a tokembed tokenizer folder?")
        klass = tokenizer_class(meta["kind"]) if cls is Tokenizer else cls
        tok = klass._load(folder, meta)
        want = meta.get("fingerprint")
        if want and want != tok.fingerprint:
            raise TokenizerFileError(
                f"{folder}: vocab fingerprint {tok.fingerprint[:12]} differs from the {want[:12]} stored in {META_FILE}; "
                "the engine file was changed after saving — retrain or restore it"
            )
        return tok

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, vocab_size={self.vocab_size}, fingerprint={self.fingerprint[:12]})"
