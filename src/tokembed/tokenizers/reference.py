"""A small, readable pure-Python byte-level BPE encoder: the reference for the fast engines.

Unlike :mod:`tokembed.tokenizers.bytebpe` (which runs the HF ``tokenizers`` engine, or
``tiktoken``), this module does every step in plain Python so it can be read in one sitting
and used to check the engines id for id:

1. split the text with the pre-tokenization regex (GPT-2 or cl100k style);
2. write each piece as UTF-8 bytes, one token per byte;
3. repeatedly merge the adjacent pair whose merge was learned first (lowest merged id),
   until no learned pair is left.

Seeded BPE-dropout is not here: it runs in :mod:`~tokembed.tokenizers.sampling` (the
production path), which at ``p = 0`` gives these ids (tested).

Its regex engine is Python's ``regex`` module, whose Unicode tables can be newer than the
engines': on code points unassigned in Python's ``unicodedata`` (see
:func:`~tokembed.tokenizers.tiktoken_engine.has_disputed`) it may split differently.

>>> ref = ReferenceBPE.from_merges([(b"a", b"b"), (b"ab", b"c")], pattern=PATTERNS["gpt2"])
>>> ref.encode("abc ab")   # 256 = b"ab", 257 = b"abc"; " ab" has no merge for b" a"
[257, 32, 256]
>>> ref.decode([257, 32, 256])
'abc ab'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from .patterns import PATTERNS

__all__ = ["PATTERNS", "ReferenceBPE", "bytes_to_unicode", "unicode_to_bytes", "token_to_bytes"]

@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by byte-level tokenizer files.

    Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100.. in order,
    so every token string is printable (a space byte is ``"Ġ"``).

    >>> bytes_to_unicode()[ord("a")], bytes_to_unicode()[ord(" ")], bytes_to_unicode()[10]
    ('a', 'Ġ', 'Ċ')
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_bytes(token: str) -> bytes | None:
    """Bytes of a byte-level token string (``"Ġthe"`` -> ``b" the"``), or None if it is not one."""
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in token)
    except KeyError:
        return None


class ReferenceBPE:
    """Byte-level BPE from learned merges, in plain Python.

    Args:
        merges: ``(left_id, right_id) -> merged_id``; the lowest merged id is merged first.
        token_bytes: id -> bytes for every non-special token (all 256 single bytes included).
        pattern: pre-tokenization regex (Python ``regex`` syntax).
        special_tokens: special string -> id (only used by :meth:`decode`).
        whole_pieces: take a piece that is itself a token whole, before merging (tiktoken's rule,
            HF's ``ignore_merges``); used for vocabularies loaded from tiktoken rank files.
    """

    def __init__(
        self,
        merges: Mapping[tuple[int, int], int],
        token_bytes: Mapping[int, bytes],
        pattern: str,
        special_tokens: Mapping[str, int] | None = None,
        *,
        whole_pieces: bool = False,
    ):
        import regex

        self.merges = dict(merges)
        self.token_bytes = dict(token_bytes)
        self.byte_ids = {b[0]: i for i, b in self.token_bytes.items() if len(b) == 1}
        missing = sorted(set(range(256)) - set(self.byte_ids))
        if missing:
            raise ValueError(f"byte-level BPE needs all 256 single bytes; missing {missing[:8]}")
        self.pattern = pattern
        self._re = regex.compile(pattern)
        self.special_tokens = dict(special_tokens or {})
        self._special_bytes = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self.whole_pieces = whole_pieces
        self._whole = {b: i for i, b in self.token_bytes.items()} if whole_pieces else {}

    @classmethod
    def from_merges(cls, merges: Iterable[tuple[bytes, bytes]], *, pattern: str) -> "ReferenceBPE":
        """Ids 0..255 are the bytes; merge ``k`` (in order) makes id ``256 + k``."""
        token_bytes = {b: bytes([b]) for b in range(256)}
        ids = {v: k for k, v in token_bytes.items()}
        table = {}
        for a, b in merges:
            new = len(token_bytes)
            token_bytes[new] = a + b
            ids[a + b] = new
            table[(ids[a], ids[b])] = new
        return cls(table, token_bytes, pattern)

    def pieces(self, text: str) -> list[str]:
        """Pre-tokenization: the regex's matches, in order (they cover the whole text)."""
        return self._re.findall(text)

    def encode(self, text: str) -> list[int]:
        """Text -> ids."""
        ids: list[int] = []
        for piece in self.pieces(text):
            ids.extend(self._merge(piece.encode("utf-8", errors="surrogatepass")))
        return ids

    def _merge(self, data: bytes) -> list[int]:
        if data in self._whole:
            return [self._whole[data]]
        ids = [self.byte_ids[b] for b in data]
        while len(ids) > 1:
            best = None  # (merged id, position)
            for i in range(len(ids) - 1):
                new = self.merges.get((ids[i], ids[i + 1]))
                if new is not None and (best is None or new < best[0]):
                    best = (new, i)
            if best is None:
                break
            new, i = best
            ids[i : i + 2] = [new]
        return ids

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return b"".join(self._special_bytes[i] if i in self._special_bytes else self.token_bytes[i] for i in ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")
