"""The tiktoken fast path for byte-level BPE vocabularies, and its block-parallel batch encoder.

A byte-level BPE vocabulary (GPT-2 style: regex pre-tokenization, bytes mapped to printable
characters, merges applied in learned order, no normalizer and no post-processor that adds
tokens) can be encoded by ``tiktoken`` instead of the HF engine, with the same ids: the
tiktoken *rank* of a token is its id, and merge order equals id order. :func:`byte_level_bpe`
reads an HF engine and returns the ranks, merges, pattern and special tokens when the
vocabulary qualifies (else None); :class:`TiktokenPath` builds the ``tiktoken.Encoding``.

Unlike ``tiktoken.Encoding.encode_ordinary_batch`` (one thread-pool task per text, whose
overhead dominates for short lines), :meth:`TiktokenPath.encode_batch` gives each worker one
large contiguous block of texts; tiktoken releases the GIL inside its Rust encoder, so the
workers run in parallel and per-line cost stays that of a plain loop.

Which ids are identical is not assumed: :func:`byte_level_bpe` checks the conditions below,
``TiktokenPath`` checks a probe text against the HF engine when it is built, and the tests
compare both engines (and :mod:`~tokembed.tokenizers.reference`) on real text and with
hypothesis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

from .patterns import PATTERNS
from .reference import ReferenceBPE, token_to_bytes

__all__ = ["ByteLevelBPE", "byte_level_bpe", "TiktokenPath", "PROBE_TEXT", "MIN_BLOCK", "has_disputed"]

#: Below this many texts per worker, a plain loop beats starting threads (measured on 2 cores).
MIN_BLOCK = 256

#: Checked against the HF engine when a fast path is built: mixed scripts, digits, contractions,
#: whitespace runs, newlines and an emoji (multi-byte pieces).
PROBE_TEXT = (
    "Hello, world! It's 2024-06-01; we'll pay $1,234.56 for 12345 items.\n\n  Indented  \tline\r\n"
    "Käse, Straße und Grüße — naïve café; 東京とソウル. Привет, мир! مرحبا 🙂🙂 x=f(y)**2 {'a': [1, 2]}\n"
)


@lru_cache(maxsize=1)
def _unassigned_table():
    """Bool array over all code points: True where Python's ``unicodedata`` has no character (``Cn``)."""
    import unicodedata

    import numpy as np

    cat = unicodedata.category
    return np.fromiter((cat(chr(cp)) == "Cn" for cp in range(0x110000)), dtype=bool, count=0x110000)


def has_disputed(text: str) -> bool:
    """True when ``text`` holds a code point unassigned in Python's Unicode database (``unicodedata``).

    The engines classify ``\\p{L}``/``\\p{N}`` with their own Unicode tables (Oniguruma in HF
    ``tokenizers``, fancy-regex in ``tiktoken``, each of some version); a code point assigned in a
    recent Unicode version (e.g. U+16EBC) is a letter to one and unassigned to the other, so the
    two split the text differently. Such texts go to the HF engine for tokenizers the HF engine
    defines. ASCII text returns at once; otherwise one table lookup per code point in numpy
    (~1.5 ms per MB; the table is built once per process, ~0.2 s).

    >>> has_disputed("naïve café 🙂"), has_disputed("\U00016ebc")
    (False, True)
    """
    if text.isascii():
        return False
    import numpy as np

    try:
        raw = text.encode("utf-32-le")  # CPython's fast path (an error handler would disable it: 20x slower)
    except UnicodeEncodeError:  # lone surrogates
        raw = text.encode("utf-32-le", "surrogatepass")
    cps = np.frombuffer(raw, dtype=np.uint32)  # (n_chars,)
    return bool(_unassigned_table()[cps[cps > 0x7F]].any())


@dataclass
class ByteLevelBPE:
    """A byte-level BPE vocabulary in engine-independent form."""

    pattern: str  # pre-tokenization regex
    ranks: dict[bytes, int]  # token bytes -> id (= tiktoken rank) for every mergeable token
    merges: dict[tuple[int, int], int]  # (left id, right id) -> merged id, merged in id order
    special_tokens: dict[str, int] = field(default_factory=dict)  # special string -> id
    whole_pieces: bool = False  # a piece that is itself a token is taken whole (HF ignore_merges)

    def reference(self) -> ReferenceBPE:
        """The pure-Python reference encoder over the same vocabulary."""
        token_bytes = {i: b for b, i in self.ranks.items()}
        return ReferenceBPE(self.merges, token_bytes, self.pattern, self.special_tokens, whole_pieces=self.whole_pieces)


def _pre_tokenizer_pattern(pre: dict | None) -> str | None:
    """The regex of a byte-level pre-tokenizer, or None if it is not a plain byte-level one."""
    if not pre:
        return None
    if pre.get("type") == "ByteLevel":
        return PATTERNS["gpt2"] if pre.get("use_regex", True) and not pre.get("add_prefix_space") else None
    if pre.get("type") != "Sequence":
        return None
    steps = pre.get("pretokenizers") or []
    if len(steps) != 2:
        return None
    split, bl = steps
    if (
        split.get("type") != "Split"
        or split.get("behavior") != "Isolated"
        or split.get("invert")
        or not isinstance(split.get("pattern"), dict)
        or "Regex" not in split["pattern"]
    ):
        return None
    if bl.get("type") != "ByteLevel" or bl.get("use_regex", True) or bl.get("add_prefix_space"):
        return None
    return split["pattern"]["Regex"]


def byte_level_bpe(engine, *, doc: dict | None = None) -> ByteLevelBPE | None:
    """Ranks, merges, pattern and specials of a tiktoken-compatible HF engine, else None.

    Conditions: BPE model without dropout, byte fallback, prefixes or suffixes; no normalizer;
    a byte-level pre-tokenizer (ByteLevel with its regex, or Split(regex) + ByteLevel); a
    ByteLevel decoder; no post-processor other than ByteLevel (which only trims offsets); every
    added token special; all 256 bytes in the vocab; merges that produce ids in increasing order.
    """
    doc = json.loads(engine.to_str()) if doc is None else doc  # doc: the engine's tokenizer.json, parsed
    model = doc.get("model") or {}
    if model.get("type") != "BPE" or model.get("dropout") or model.get("byte_fallback"):
        return None
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return None
    if doc.get("normalizer") or (doc.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    post = doc.get("post_processor")
    if post and post.get("type") != "ByteLevel":
        return None
    pattern = _pre_tokenizer_pattern(doc.get("pre_tokenizer"))
    if pattern is None:
        return None
    added = doc.get("added_tokens") or []
    if any(not a.get("special") for a in added):
        return None
    specials = {a["content"]: a["id"] for a in added}
    vocab: dict[str, int] = model.get("vocab") or {}
    byte_of = {}
    for tok, i in vocab.items():
        if tok in specials:
            continue
        b = token_to_bytes(tok)
        if b is None:
            return None
        byte_of[i] = b
    whole = bool(model.get("ignore_merges"))
    ranks = {b: i for i, b in byte_of.items() if len(b) == 1 or whole}
    if sum(len(b) == 1 for b in ranks) != 256:
        return None
    merges: dict[tuple[int, int], int] = {}
    last = -1
    for m in model.get("merges") or []:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        ia, ib, ab = vocab.get(a), vocab.get(b), vocab.get(a + b)
        if ia is None or ib is None or ab is None or ab <= last:
            return None
        last = ab
        merges[(ia, ib)] = ab
        ranks[byte_of[ab]] = ab
    return ByteLevelBPE(pattern=pattern, ranks=ranks, merges=merges, special_tokens=specials, whole_pieces=whole)


class TiktokenPath:
    """A ``tiktoken.Encoding`` over a :class:`ByteLevelBPE` vocabulary (ids = the HF engine's ids)."""

    def __init__(self, bpe: ByteLevelBPE, *, name: str = "tokembed", workers: int | None = None, engine=None):
        import tiktoken

        self.bpe = bpe
        #: HF engine (special strings as text) for texts with code points the engines' Unicode tables may
        #: classify differently (see :func:`has_disputed`); None: tiktoken for every text.
        self.engine = engine
        self.encoding = tiktoken.Encoding(
            name, pat_str=bpe.pattern, mergeable_ranks=bpe.ranks, special_tokens=bpe.special_tokens
        )
        self._core = self.encoding._core_bpe  # the Rust encoder; releases the GIL while encoding
        self.workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))

    @classmethod
    def for_engine(
        cls, engine, *, bpe: ByteLevelBPE | None = None, engine_defines_ids: bool = True, **kwargs
    ) -> "TiktokenPath | None":
        """The fast path for an HF engine, or None when the vocabulary does not qualify or the probe differs.

        ``bpe``: :func:`byte_level_bpe` of the engine when the caller already has it.
        ``engine_defines_ids``: True (trained or ``tokenizer.json`` vocabularies): texts the two
        engines may split differently (:func:`has_disputed`) go to the HF engine. False (a
        tiktoken rank file, whose ids tiktoken defines): tiktoken encodes every text.
        """
        bpe = bpe if bpe is not None else byte_level_bpe(engine)
        if bpe is None:
            return None
        try:
            path = cls(bpe, engine=engine if engine_defines_ids else None, **kwargs)
        except Exception:  # e.g. a regex tiktoken's fancy-regex cannot compile
            return None
        was = engine.encode_special_tokens
        engine.encode_special_tokens = True
        try:
            same = path.encode(PROBE_TEXT) == engine.encode(PROBE_TEXT, add_special_tokens=False).ids
        finally:
            engine.encode_special_tokens = was
        return path if same else None

    def _is_disputed(self, text: str) -> bool:
        return self.engine is not None and has_disputed(text)

    def _engine_encode(self, text: str) -> list[int]:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return self.engine.encode_batch_fast([text], add_special_tokens=False)[0].ids  # no offsets

    def encode(self, text: str) -> list[int]:
        """Ordinary text -> ids (special strings are plain text)."""
        if self._is_disputed(text):
            return self._engine_encode(text)
        try:
            return self._core.encode_ordinary(text)
        except UnicodeEncodeError:  # lone surrogates: as tiktoken, replace them with U+FFFD
            return self.encoding.encode_ordinary(text)

    def _encode_block(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self._core.encode_ordinary
        if not self._is_disputed("".join(texts)):  # one check for the block; the rare disputed block goes text by text
            try:
                return list(map(enc, texts))  # the common case: no lone surrogates anywhere
            except UnicodeEncodeError:
                pass
        return [self.encode(t) for t in texts]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts: one contiguous block per worker thread (ids in input order)."""
        n = len(texts)
        workers = min(self.workers, n // MIN_BLOCK)
        if workers <= 1:
            return self._encode_block(texts)
        step = -(-n // workers)
        blocks = [texts[i : i + step] for i in range(0, n, step)]
        with ThreadPoolExecutor(len(blocks)) as ex:
            results = list(ex.map(self._encode_block, blocks))
        return [ids for block in results for ids in block]
