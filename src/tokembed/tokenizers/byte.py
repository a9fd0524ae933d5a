"""Byte tokenizer: one token per UTF-8 byte (ids 0..255), special tokens after.

Unlike every other kind it needs no training and has no out-of-vocabulary input: any
text is a byte sequence. Its sequences are the longest (1 token per byte), which is why
bits per byte, not perplexity, is the fair comparison with subword kinds.

>>> tok = ByteTokenizer()
>>> tok.encode("hé")
[104, 195, 169]
>>> tok.tokens("hé")
['<0x68>', '<0xC3>', '<0xA9>']
>>> tok.vocab_size
259
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import TokenizerError
from ..vocab import Vocab
from .base import DEFAULT_SPECIAL_TOKENS, Tokenizer, register, utf8_len

__all__ = ["ByteTokenizer", "byte_token"]


def byte_token(b: int) -> str:
    """Token string of byte ``b``, in sentencepiece's byte-fallback spelling: ``<0x41>``."""
    return f"<0x{b:02X}>"


@register("byte")
class ByteTokenizer(Tokenizer):
    """The 256 byte values plus special tokens (default ``<pad>``, ``<s>``, ``</s>``)."""

    def __init__(self, *, special_tokens: Mapping[str, str] | None = None):
        specials = dict(DEFAULT_SPECIAL_TOKENS if special_tokens is None else special_tokens)
        table = [byte_token(b) for b in range(256)]
        for s in specials.values():
            if s in table:
                raise TokenizerError(f"special token {s!r} collides with a byte token; choose another string")
            if s not in table:
                table.append(s)
        self.vocab = Vocab(table, special_tokens=specials)
        self.options = {}

    def _encode_ordinary(self, text: str, **sampling: Any) -> list[int]:
        if sampling:
            raise TokenizerError(f"byte tokenizer has no subword regularization; remove {sorted(sampling)}")
        return list(text.encode("utf-8", errors="surrogatepass"))

    def _encode_ordinary_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(t.encode("utf-8", errors="surrogatepass")) for t in texts]

    def _ordinary_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Every byte of character k gets the span (k, k + 1)."""
        ids = list(text.encode("utf-8", errors="surrogatepass"))
        return ids, [(k, k + 1) for k, ch in enumerate(text) for _ in range(utf8_len(ch))]

    def _token_bytes(self, i: int) -> bytes:
        return bytes([i])

    def _decode(self, ids: Sequence[int]) -> str:
        out = bytearray()
        parts: list[str] = []
        for i in ids:
            if i < 256:
                out.append(i)
            else:
                parts.append(out.decode("utf-8", errors="replace"))
                out = bytearray()
                parts.append(self.vocab.token(i))
        parts.append(out.decode("utf-8", errors="replace"))
        return "".join(parts)

    @classmethod
    def train(cls, corpus: Any = None, vocab_size: int | None = None, **opts: Any) -> "ByteTokenizer":
        """Nothing to learn; ``vocab_size`` if given must be 256 + number of specials."""
        tok = cls(special_tokens=opts.pop("special_tokens", None))
        if opts:
            raise TokenizerError(f"byte tokenizer takes no options {sorted(opts)}")
        if vocab_size not in (None, tok.vocab_size):
            raise TokenizerError(
                f"byte tokenizer has exactly {tok.vocab_size} tokens (256 bytes + specials), not {vocab_size}; omit vocab_size",
                param="vocab_size",
            )
        return tok

    def _hf_tokenizer_json(self) -> dict[str, Any]:
        """A byte-fallback BPE without merges over the same ids: every character becomes its UTF-8 bytes."""
        added = [{"id": self.vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for s in self.special_tokens.values()]  # fmt: skip
        model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                 "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": True, "ignore_merges": False,
                 "vocab": {t: i for i, t in enumerate(self.vocab)}, "merges": []}  # fmt: skip
        decoder = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}
        return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
                "pre_tokenizer": None, "post_processor": None, "decoder": decoder, "model": model}

    @classmethod
    def _load(cls, folder: Path, meta: dict[str, Any]) -> "ByteTokenizer":
        return cls(special_tokens=meta.get("special_tokens"))
