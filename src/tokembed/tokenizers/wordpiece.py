"""``wordpiece``: BERT-style WordPiece, trained and run by HF ``tokenizers``.

Unlike the byte-level kinds, WordPiece works on normalized *words*: the BERT normalizer
(control characters removed, CJK characters spaced, optional lowercasing and accent
stripping), the BERT pre-tokenizer (split on whitespace and punctuation), then greedy
longest-match-first pieces, continuations spelled ``##piece``. A word it cannot spell becomes
``[UNK]``.

It is **lossy**: ``decode(encode(x)) == x`` fails for text with

- upper case or accents when ``lowercase``/``strip_accents`` are on (the default, as
  ``bert-base-uncased``);
- whitespace other than single spaces between words (runs, tabs, newlines; leading/trailing),
  and control characters (removed);
- punctuation not followed by a space in the way the decoder re-attaches it
  (``"a.b"`` -> ``"a. b"``), and spaces before punctuation other than ``. , ! ?``;
- characters not seen in training (the whole word becomes ``[UNK]``).

Special tokens (default): ``<pad>``, ``<s>``, ``</s>`` from
:data:`~tokembed.tokenizers.base.DEFAULT_SPECIAL_TOKENS` (so LM training sees the same roles
as every other kind) plus ``unk`` = ``[UNK]``. For a BERT layout pass
``special_tokens={"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}``.
``encode`` adds none of them (no post-processor); add them with ``allowed_special``.

>>> from tokembed.corpus import Corpus
>>> tok = WordPieceTokenizer.train(Corpus([]), 2000, progress=False)
>>> tok.tokens("Tokenization is UNBELIEVABLE")[:3]
['token', '##ization', 'is']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..corpus import DEFAULT_ALPHA, Corpus
from ..errors import VocabSizeError
from .base import DEFAULT_SPECIAL_TOKENS, register
from .progress import show_progress
from .hf_engine import ENGINE_FILE, HFTokenizer, engine_from_file, train_engine

__all__ = ["WordPieceTokenizer", "DEFAULT_WORDPIECE_SPECIALS", "DEFAULT_VOCAB_SIZE"]

#: Default special tokens: the common ones plus BERT's unknown token.
DEFAULT_WORDPIECE_SPECIALS: dict[str, str] = {**DEFAULT_SPECIAL_TOKENS, "unk": "[UNK]"}

#: Default vocabulary size (BERT uses 30522 on 3.3 B words; 4096 suits corpora of a few MB).
DEFAULT_VOCAB_SIZE = 4096


@register("wordpiece")
class WordPieceTokenizer(HFTokenizer):
    """BERT-style WordPiece (``##`` continuations, ``[UNK]``); lossy, see the module docstring."""

    trainable = True

    lossless = False

    def __init__(self, engine, *, special_tokens: Mapping[str, str] | None = None, options: Mapping[str, Any] | None = None):
        super().__init__(engine, special_tokens=special_tokens, add_special_tokens=False, options=options, tiktoken=False)

    @classmethod
    def train(
        cls,
        corpus: Any = None,
        vocab_size: int | None = None,
        *,
        special_tokens: Mapping[str, str] | None = None,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        min_frequency: int = 2,
        limit_alphabet: int | None = None,
        alpha: float = DEFAULT_ALPHA,
        seed: int = 0,
        progress: bool = True,
    ) -> "WordPieceTokenizer":
        """Learn a WordPiece vocabulary on ``corpus.training_texts(alpha=alpha, seed=seed)``.

        Args:
            vocab_size: total size (specials + alphabet + ``##`` alphabet + pieces).
            special_tokens: role -> string; must include ``unk`` (default :data:`DEFAULT_WORDPIECE_SPECIALS`).
            lowercase: lowercase before splitting (BERT uncased).
            strip_accents: remove combining accents; None = same as ``lowercase`` (BERT's rule).
            limit_alphabet: keep only the most frequent characters (others become [UNK]).
        """
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        specials = dict(DEFAULT_WORDPIECE_SPECIALS if special_tokens is None else special_tokens)
        if "unk" not in specials:
            specials["unk"] = "[UNK]"
        vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else int(vocab_size)
        n_special = len(set(specials.values()))
        if vocab_size <= n_special:
            raise VocabSizeError(f"vocab size {vocab_size} cannot hold the {n_special} special tokens and an alphabet; pass a larger vocab_size", param="vocab_size")
        engine = Tokenizer(models.WordPiece(unk_token=specials["unk"], continuing_subword_prefix="##"))
        engine.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase
        )
        engine.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        engine.decoder = decoders.WordPiece(prefix="##")
        # HF's WordPiece trainer numbers the "##c" forms in hash-map order, which breaks ties between
        # equally frequent pairs differently on every run. Fixing their ids up front (sorted, right
        # after the specials) makes training deterministic; they are plain vocab entries afterwards.
        continuation = _continuation_alphabet(engine, corpus)
        fixed = list(dict.fromkeys([*specials.values(), *continuation]))
        limit = {} if limit_alphabet is None else {"limit_alphabet": int(limit_alphabet)}
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=fixed,
            continuing_subword_prefix="##",
            show_progress=progress and show_progress(None),
            **limit,
        )
        train_engine(engine, trainer, corpus, alpha=alpha, seed=seed)
        engine = _drop_added(engine, keep=set(specials.values()))
        got = engine.get_vocab_size(with_added_tokens=True)
        if got > vocab_size:  # the trainer keeps the whole alphabet even past vocab_size
            raise VocabSizeError(
                f"vocab size {vocab_size} cannot hold the {got - n_special} alphabet tokens (characters and their ## forms) "
                f"of this corpus and {n_special} special tokens; pass vocab_size >= {got}, or limit_alphabet",
                param="vocab_size",
            )
        options = {
            "lowercase": lowercase,
            "strip_accents": strip_accents,
            "min_frequency": min_frequency,
            "limit_alphabet": limit_alphabet,
            "alpha": alpha,
            "seed": seed,
        }
        return cls(engine, special_tokens=specials, options=options)

    @classmethod
    def _load(cls, folder, meta):
        return cls(engine_from_file(folder / ENGINE_FILE), special_tokens=meta.get("special_tokens"), options=meta.get("options"))


#: BERT's pre-tokenizer splits at White_Space and keeps each punctuation character (ASCII
#: punctuation or Unicode P*) as a word of its own (HF ``BertPreTokenizer``).
_BERT_SEPARATORS = r"[\p{White_Space}\p{P}!-/:-@\[-`{-~]"

#: Characters after which a character always starts a word: BERT's normalizer maps them to " "
#: and never removes them (other spaces are not needed for a superset).
_BREAK_CHARS = " \t\n\r"


def _continuation_alphabet(engine, corpus: Any, *, block_bytes: int = 1 << 20) -> list[str]:
    """Sorted ``##c`` for every character ``c`` that can occur inside a word after normalization.

    One cheap pass over the raw text of every corpus file, in blocks of ``block_bytes`` (no
    per-line or per-word Python): a character right after a space, tab or line break starts a
    word, any other occurrence is inside one. The BERT normalizer acts character by character,
    so normalizing each distinct character is enough: an inside character ``c`` gives all of
    its normalized form ``n(c)``, any character gives ``n(c)[1:]`` (``"İ"`` -> ``"i̇"``), and a
    character whose ``n(c)`` holds a separator (punctuation, whitespace, padded CJK) is a word
    of its own and gives nothing. Per block, :func:`_distinct_chars` finds the characters; only those
    not yet seen inside a word are then located (vectorised, numpy), usually none after the
    first block. The result can hold a few extra characters (one glued after punctuation, or
    from a line that α-sampling leaves out), never fewer, so every ``##c`` the trainer needs has
    a fixed id. :func:`_continuation_alphabet_reference` is the slow exact version.
    """
    import regex

    separator = regex.compile(_BERT_SEPARATORS)
    normalize = engine.normalizer.normalize_str
    norm: dict[str, str] = {}  # distinct character -> its normalized form, "" when it never continues a word
    inner: set[str] = set()  # characters seen inside a word
    for text, carry in _text_blocks(corpus, block_bytes=block_bytes):
        chars = _distinct_chars(text)
        for c in chars.difference(norm):
            n = normalize(c)
            norm[c] = "" if separator.search(n) else n
        pending = {c for c in chars.difference(inner) if norm[c]}
        if pending:
            inner.update(_inside_chars(text, carry, pending))
    out: set[str] = set()
    for c, n in norm.items():
        out.update(n if c in inner else n[1:])
    return ["##" + c for c in sorted(out)]


def _distinct_chars(text: str) -> set[str]:
    """``set(text)``, faster on mostly-ASCII text: ASCII from a byte histogram, then ``set`` over
    the non-ASCII bytes only (each multi-byte UTF-8 sequence is all bytes >= 0x80, so they decode whole).
    """
    import numpy as np

    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)  # (bytes,)
    out = {chr(b) for b in np.flatnonzero(np.bincount(data, minlength=256)[:128])}
    high = data[data >= 0x80]
    if high.size:
        out.update(high.tobytes().decode("utf-8", "surrogatepass"))
    return out


def _text_blocks(corpus: Any, *, block_bytes: int):
    """Yield (text block, the character before it) over every file; a file starts after a line break."""
    import codecs
    import gzip

    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_args(corpus)
    for path in corpus.files:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # bad bytes fail later, in training
        carry = "\n"
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            while True:
                raw = f.read(block_bytes)
                text = decoder.decode(raw, final=not raw)
                if text:
                    yield text, carry
                    carry = text[-1]
                if not raw:
                    break


def _inside_chars(text: str, carry: str, wanted: set[str]) -> set[str]:
    """Those of ``wanted`` that occur in ``text`` right after a character other than a word break.

    ``carry`` is the character before ``text``, so a word cut by a block edge stays one word.
    A rare character is looked up occurrence by occurrence (``str.find``); the others in one
    vectorised pass over the N code points ``a``, ``prev[i]`` being the one before ``a[i]``.
    """
    import numpy as np

    found: set[str] = set()
    common: set[str] = set()
    for c in wanted:
        i, hits = text.find(c), 0
        while i >= 0:
            if (text[i - 1] if i else carry) not in _BREAK_CHARS:
                found.add(c)
                break
            hits += 1
            if hits == 64:  # frequent, and so far only at word starts
                common.add(c)
                break
            i = text.find(c, i + 1)
    if common:
        a = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (N,)
        prev = np.empty_like(a)
        prev[0], prev[1:] = ord(carry), a[:-1]
        inside = np.ones(a.shape, dtype=bool)  # (N,)
        for b in _BREAK_CHARS:
            inside &= prev != ord(b)
        seen = np.zeros(0x110000, dtype=bool)  # indexed by code point
        seen[a[inside]] = True
        found.update(c for c in common if seen[ord(c)])
    return found


def _continuation_alphabet_reference(engine, corpus: Any, *, alpha: float, seed: int) -> list[str]:
    """The exact ``##c`` set, slowly: normalize and pre-tokenize every training text."""
    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_args(corpus)
    out: set[str] = set()
    for text in corpus.training_texts(alpha=alpha, seed=seed):
        for word, _ in engine.pre_tokenizer.pre_tokenize_str(engine.normalizer.normalize_str(text)):
            out.update(word[1:])
    return ["##" + c for c in sorted(out)]


def _drop_added(engine, *, keep: set[str]):
    """A copy of ``engine`` whose added tokens are only ``keep`` (the model vocab is unchanged)."""
    import json

    from tokenizers import Tokenizer

    doc = json.loads(engine.to_str())
    doc["added_tokens"] = [a for a in doc.get("added_tokens") or [] if a["content"] in keep]
    return Tokenizer.from_str(json.dumps(doc))
