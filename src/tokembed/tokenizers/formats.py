"""Loaders for the tokenizer files people already have, behind one :func:`load_tokenizer`.

Unlike :meth:`Tokenizer.load <tokembed.tokenizers.base.Tokenizer.load>` (tokembed's own
folders), this module reads foreign formats and dispatches on what a path is:

============================  ===================================================  ==========
path                          format                                               kind
============================  ===================================================  ==========
folder with ``tokembed.json``  a tokembed tokenizer folder                          its kind
folder/file ``tokenizer.json`` Hugging Face ``tokenizers`` (BPE, WordPiece,          ``hf``
                               Unigram, WordLevel)
``vocab.txt``                  BERT WordPiece vocabulary (one token per line)       ``hf``
``*.model``                    sentencepiece model                                  (spm)
``*.tiktoken`` / rank file     ``base64(token) rank`` per line (+ ``pattern=``,      ``bytebpe``
                               ``special_tokens=``)
============================  ===================================================  ==========

Everything is offline: a name that is not a local path but looks like a hub model id
(``bert-base-uncased``, ``org/model``) is a :class:`HubIdError` that says to pass a local
folder. A malformed file is a :class:`TokenizerFileError` naming the file and line; nothing
crashes or hangs on random bytes. Every loaded tokenizer can be ``save``d as a tokembed
folder and reloaded with the same fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._paths import existing_local_path, looks_like_hub_id
from ..errors import ConfigError, TokenizerFileError
from ..options import check_options
from .base import META_FILE, Tokenizer
from .bytebpe import ByteBPETokenizer
from .hf_engine import ENGINE_FILE, HFTokenizer, engine_from_file
from .sentencepiece_engine import SentencePieceTokenizer
from .patterns import resolve_pattern
from .reference import bytes_to_unicode

__all__ = [
    "load_tokenizer",
    "load_hf_json",
    "load_vocab_txt",
    "load_tiktoken",
    "read_tiktoken_ranks",
    "looks_like_hub_id",
    "BERT_SPECIALS",
]

#: The UTF-8 byte-order mark some editors write at the start of a text file.
UTF8_BOM = b"\xef\xbb\xbf"

#: BERT's special tokens, in the roles tokembed gives them.
BERT_SPECIALS: dict[str, str] = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}

def load_tokenizer(path: str | os.PathLike, **kwargs: Any) -> Tokenizer:
    """Load a tokenizer from a local path, whatever its format (see the module docstring).

    Options by format: ``tokenizer.json``: ``add_special_tokens``; ``vocab.txt``: ``lowercase``,
    ``strip_accents``, ``add_special_tokens``; rank files: ``pattern`` (required), ``special_tokens``.
    """
    p = existing_local_path(path, expected="a tokembed tokenizer folder or a tokenizer file", error=TokenizerFileError)
    if p.is_dir():
        if (p / META_FILE).is_file():
            if kwargs:
                raise ConfigError(f"{p}: a tokembed tokenizer folder takes no loader options, got {sorted(kwargs)}")
            return Tokenizer.load(p)
        if (p / ENGINE_FILE).is_file():
            return _call(load_hf_json, p / ENGINE_FILE, kwargs)
        if (p / "vocab.txt").is_file():
            return _call(load_vocab_txt, p / "vocab.txt", kwargs)
        models = sorted(p.glob("*.model"))
        if models:
            return _load_spm(models[0], **kwargs)
        raise TokenizerFileError(
            f"{p}: folder holds no tokembed.json, tokenizer.json, vocab.txt or *.model; pass a tokenizer folder or file"
        )
    name = p.name.lower()
    if name.endswith(".model"):
        return _load_spm(p, **kwargs)
    if name.endswith(".json"):
        return _call(load_hf_json, p, kwargs)
    if name.endswith(".tiktoken"):
        return _call(load_tiktoken, p, kwargs)
    return _sniff(p, **kwargs)


def _call(loader, p: Path, kwargs: dict[str, Any]) -> Tokenizer:
    """``loader(p, **kwargs)`` after checking the options (a wrong name or type is a ConfigError)."""
    check_options(loader, f"{p.name} ({loader.__name__})", kwargs)
    return loader(p, **kwargs)


def _sniff(p: Path, **kwargs: Any) -> Tokenizer:
    """Tell a rank file, a vocab.txt and a JSON file apart by their first line."""
    with open(p, "rb") as f:
        head = f.read(4096)
    try:
        if b"\x00" in head:
            raise UnicodeDecodeError("utf-8", head, head.index(b"\x00"), head.index(b"\x00") + 1, "NUL byte")
        first = head.split(b"\n", 1)[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TokenizerFileError(
            f"{p}:1: not a text file (NUL bytes or invalid UTF-8); pass tokenizer.json, vocab.txt, a sentencepiece .model or a tiktoken rank file"
        ) from None
    if first.startswith("{"):
        return _call(load_hf_json, p, kwargs)
    if re.fullmatch(r"[A-Za-z0-9+/=]+ \d+", first) or "pattern" in kwargs:
        return _call(load_tiktoken, p, kwargs)
    return _call(load_vocab_txt, p, kwargs)


def _load_spm(p: Path, **kwargs: Any) -> Tokenizer:
    check_options(SentencePieceTokenizer.from_model_file, f"{p.name} (sentencepiece loader)", kwargs)
    return SentencePieceTokenizer.from_model_file(p, **kwargs)


# -- Hugging Face tokenizer.json ------------------------------------------------------------
def load_hf_json(path: str | os.PathLike, *, add_special_tokens: bool = True) -> HFTokenizer:
    """A ``tokenizer.json`` of any model type; ids equal ``tokenizers`` and ``transformers``' AutoTokenizer."""
    path = Path(path)
    return HFTokenizer(engine_from_file(path), add_special_tokens=add_special_tokens, options={"source": "tokenizer.json"})


# -- BERT vocab.txt --------------------------------------------------------------------------
def load_vocab_txt(
    path: str | os.PathLike,
    *,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    add_special_tokens: bool = True,
    max_input_chars_per_word: int = 100,
) -> HFTokenizer:
    """A BERT ``vocab.txt`` (id = line number - 1) as BERT's tokenizer: BERT normalizer and
    pre-tokenizer, WordPiece with ``##`` continuations, ``[CLS] ... [SEP]`` around each text.

    ``lowercase`` matches ``do_lower_case`` (True for uncased models); ``strip_accents=None``
    follows ``lowercase`` as in BERT.
    """
    from tokenizers import Tokenizer as Engine
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TokenizerFileError(f"{path}: cannot read ({e})") from None
    if raw.startswith(UTF8_BOM):  # an editor's byte-order mark, not part of token 0 (same ids, same fingerprint)
        raw = raw[len(UTF8_BOM) :]
    vocab: dict[str, int] = {}
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if lineno > 1 and line == b"" and lineno == raw.count(b"\n") + 1:
            break  # the final newline
        try:
            token = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise TokenizerFileError(f"{path}:{lineno}: invalid UTF-8 (byte {e.start} of the line); is this a vocab.txt?") from None
        if token == "" or "\x00" in token:
            raise TokenizerFileError(f"{path}:{lineno}: empty or NUL token; a vocab.txt has one non-empty token per line")
        if token in vocab:
            raise TokenizerFileError(
                f"{path}:{lineno}: token {token!r} already appeared on line {vocab[token] + 1}; tokens must be unique"
            )
        vocab[token] = len(vocab)
    if not vocab:
        raise TokenizerFileError(f"{path}:1: empty vocabulary; a vocab.txt has one token per line")
    unk = "[UNK]" if "[UNK]" in vocab else None
    if unk is None:
        raise TokenizerFileError(f"{path}: no [UNK] token; a BERT vocab.txt has one (add a line '[UNK]')")
    engine = Engine(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=max_input_chars_per_word))
    engine.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase
    )
    engine.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    engine.decoder = decoders.WordPiece(prefix="##")
    specials = {role: s for role, s in BERT_SPECIALS.items() if s in vocab}
    engine.add_special_tokens(list(specials.values()))
    if "cls" in specials and "sep" in specials:
        cls_, sep = specials["cls"], specials["sep"]
        engine.post_processor = processors.TemplateProcessing(
            single=f"{cls_} $A {sep}", pair=f"{cls_} $A {sep} $B:1 {sep}:1", special_tokens=[(cls_, vocab[cls_]), (sep, vocab[sep])]
        )
    options = {"source": "vocab.txt", "lowercase": lowercase, "strip_accents": strip_accents}
    return HFTokenizer(engine, add_special_tokens=add_special_tokens, options=options)


# -- tiktoken rank files -------------------------------------------------------------------------
def read_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Parse ``base64(token) rank`` lines; ranks must be unique and contiguous from 0.

    Errors name the file and line: bad base64, a missing rank, a duplicate token or rank.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TokenizerFileError(f"{path}: cannot read ({e})") from None
    ranks: dict[bytes, int] = {}
    line_of_rank: dict[int, int] = {}
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        shown = [x.decode("latin-1")[:40] for x in parts]  # for messages only
        if len(parts) != 2:
            raise TokenizerFileError(f"{path}:{lineno}: expected 'BASE64TOKEN RANK', got {line.decode('latin-1')[:60]!r}")
        try:
            token = base64.b64decode(parts[0], validate=True)
        except (binascii.Error, ValueError):
            raise TokenizerFileError(f"{path}:{lineno}: bad base64 {shown[0]!r}; each line is 'BASE64TOKEN RANK'") from None
        try:
            rank = int(parts[1])
        except ValueError:
            raise TokenizerFileError(f"{path}:{lineno}: rank {shown[1]!r} is not an integer") from None
        if not token:
            raise TokenizerFileError(f"{path}:{lineno}: empty token; every token has at least one byte")
        if token in ranks:
            raise TokenizerFileError(f"{path}:{lineno}: token {token!r} already has rank {ranks[token]}; tokens must be unique")
        if rank in line_of_rank:
            raise TokenizerFileError(f"{path}:{lineno}: rank {rank} already used on line {line_of_rank[rank]}; ranks must be unique")
        ranks[token] = rank
        line_of_rank[rank] = lineno
    if not ranks:
        raise TokenizerFileError(f"{path}:1: no 'BASE64TOKEN RANK' lines; is this a tiktoken rank file?")
    missing = next((r for r in range(len(ranks)) if r not in line_of_rank), None)
    if missing is not None:
        bad = max(line_of_rank)
        raise TokenizerFileError(
            f"{path}:{line_of_rank[bad]}: ranks are not contiguous: rank {missing} is missing but rank {bad} is used; "
            "ranks must be 0..N-1"
        )
    singles = {t[0] for t in ranks if len(t) == 1}
    if len(singles) != 256:
        absent = sorted(set(range(256)) - singles)[:5]
        raise TokenizerFileError(f"{path}: byte-level ranks need all 256 single bytes; missing {absent}...")
    return ranks


def _tiktoken_merge(ranks: Mapping[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's own BPE on ``token`` using only ranks below ``max_rank``: the last two parts are its merge."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def load_tiktoken(
    path: str | os.PathLike,
    *,
    pattern: str | None = None,
    special_tokens: Mapping[str, int] | None = None,
):
    """A tiktoken rank file as a ``bytebpe`` tokenizer with the same ids as ``tiktoken.Encoding``.

    Args:
        pattern: the pre-tokenization regex the ranks were trained with: ``"cl100k"``, ``"gpt2"``
            or the regex itself (rank files do not store it).
        special_tokens: special string -> id (as tiktoken's ``special_tokens``), outside the ranks.

    The HF engine gets one merge per token: the pair tiktoken's algorithm joins last when it
    encodes the token with lower ranks only (as ``transformers`` converts tiktoken files).
    """
    from tokenizers import Tokenizer as Engine

    path = Path(path)
    if pattern is None:
        raise ConfigError(
            f"{path}: a tiktoken rank file does not store its regex; pass pattern='cl100k', 'gpt2' or the regex",
            param="pattern",
        )
    regex = resolve_pattern(pattern)
    ranks = read_tiktoken_ranks(path)
    specials = dict(special_tokens or {})
    for s, i in specials.items():
        if not isinstance(i, int) or i < len(ranks):
            raise ConfigError(f"special token {s!r} has id {i!r}, inside the ranks 0..{len(ranks) - 1}; give ids >= {len(ranks)}")
    if len(set(specials.values())) != len(specials):
        raise ConfigError(f"special_tokens {specials} give two tokens the same id; ids must be unique")
    table = bytes_to_unicode()
    spell = {t: "".join(table[b] for b in t) for t in ranks}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = _tiktoken_merge(ranks, token, rank)
        if len(parts) == 2:
            merges.append([spell[parts[0]], spell[parts[1]]])
    vocab = {spell[t]: r for t, r in ranks.items()}
    vocab.update(specials)
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for s, i in sorted(specials.items(), key=lambda kv: kv[1])
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,  # tiktoken takes a piece that is itself a token whole
            "vocab": vocab,
            "merges": merges,
        },
    }
    try:
        engine = Engine.from_str(json.dumps(doc))
    except Exception as e:
        raise TokenizerFileError(f"{path}: cannot build a BPE engine from the ranks ({e}); check pattern={pattern!r}") from None
    options = {"source": "tiktoken", "pattern": pattern}
    return ByteBPETokenizer(engine, options=options)
