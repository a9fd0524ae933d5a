"""HFTokenizer: the tokembed interface around a Hugging Face ``tokenizers.Tokenizer`` engine.

This is the one wrapper behind every HF-backed kind (``bytebpe``, ``wordpiece``) and behind
any loaded ``tokenizer.json`` (BPE, WordPiece, Unigram or WordLevel model). Unlike the
sibling kinds it owns no algorithm: the engine normalizes, pre-tokenizes, runs the model and
post-processes; this module adds tokembed's rules on top:

- **special tokens are plain text** unless ``allowed_special`` allows them. HF matches added
  special tokens inside text by default; here the engine runs with ``encode_special_tokens``
  on, so ``"[CLS]"`` typed by a user is split like any other text, and an allowed special is
  cut out first and inserted as its single id (as HF itself does for an added token).
- **the post-processor's special tokens are added** (``[CLS] ... [SEP]`` for BERT), as
  ``transformers``' ``AutoTokenizer`` does; ``add_special_tokens=False`` turns that off.
- **padding/truncation stored in the file are not applied** to a single ``encode`` unless
  asked (``truncation=True``/``padding=True``), again as ``transformers`` does.

Special-token roles (``unk``, ``cls``, ``sep``, ``pad``, ``mask``, ``bos``, ``eos``) are
read from the engine's added special tokens by their usual spellings (:data:`KNOWN_ROLES`);
a BERT-style ``cls``/``sep`` pair also serves as ``bos``/``eos``. Other special tokens get the
roles ``extra_0``, ``extra_1``, ...

>>> from tokenizers import Tokenizer, models, pre_tokenizers
>>> eng = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1, "there": 2}, unk_token="[UNK]"))
>>> eng.pre_tokenizer = pre_tokenizers.Whitespace()
>>> _ = eng.add_special_tokens(["[UNK]"])
>>> tok = HFTokenizer(eng)
>>> tok.encode("hi there you"), tok.special_tokens
([1, 2, 0], {'unk': '[UNK]'})
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from ..artifacts import atomic_write_text
from ..corpus import Corpus
from ..errors import ConfigError, EmptyCorpusError, TokembedError, TokenizerError, TokenizerFileError
from ..vocab import Vocab
from .base import Tokenizer, register
from .patterns import catastrophic_group
from .tiktoken_engine import TiktokenPath, byte_level_bpe, has_disputed

__all__ = ["HFTokenizer", "KNOWN_ROLES", "ENGINE_FILE", "vocab_from_engine", "detect_roles", "engine_from_file", "train_engine"]

#: File name of the engine inside a tokembed folder (and of HF's own format).
ENGINE_FILE = "tokenizer.json"

#: Interrupts are never turned into file errors; everything else the Rust engine raises is (plain
#: Exceptions, and pyo3's PanicException, which derives from BaseException).
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)

#: Usual spellings of special tokens -> tokembed role (BERT, RoBERTa/XLM-R, T5/Llama, GPT-2, Llama 3).
KNOWN_ROLES: dict[str, str] = {
    "[UNK]": "unk", "<unk>": "unk", "<|unk|>": "unk",
    "[CLS]": "cls", "<cls>": "cls",
    "[SEP]": "sep", "<sep>": "sep",
    "[PAD]": "pad", "<pad>": "pad", "<|pad|>": "pad", "<|padding|>": "pad",
    "[MASK]": "mask", "<mask>": "mask",
    "<s>": "bos", "<bos>": "bos", "<|begin_of_text|>": "bos", "<|startoftext|>": "bos", "[BOS]": "bos",
    "</s>": "eos", "<eos>": "eos", "<|endoftext|>": "eos", "<|end_of_text|>": "eos", "[EOS]": "eos",
}  # fmt: skip


#: Encoded once when a file is loaded, so an engine that fails on text fails at load time.
_SMOKE_TEXT = "Hello, world! 12345 naïve café 東京 🙂\n\t[UNK] <s> </s>"


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first ``needle`` in ``text`` (1 when absent): where to point the user."""
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def max_table_size(n_ids: int) -> int:
    """Largest id table a vocabulary of ``n_ids`` ids may span: ids are dense, with a few reserved gaps.

    A file whose ids run far beyond its token count (one id of 10^9 in a 66 KB file) would make
    every id-indexed table (the Vocab, embedding rows) that large; it is refused before allocating.

    >>> max_table_size(50_000)
    101024
    """
    return 2 * n_ids + 1024


def _check_ids_dense(where: str, ids: Collection[int]) -> None:
    top = max(ids, default=-1)
    if top + 1 > max_table_size(len(ids)):
        raise TokenizerFileError(
            f"{where}: id {top} is far beyond the {len(ids)} ids defined (at most {max_table_size(len(ids)) - 1} "
            "allowed); token ids must be dense (0..N-1, few gaps) - renumber the vocabulary"
        )


def _check_model_vocab(path: Path, text: str, doc: dict) -> None:
    """The model's token -> id table must be a bijection onto non-negative ints, with its unk token in it,
    and the ids (with the added tokens') dense enough to index a table."""
    model = doc["model"]
    vocab = model.get("vocab")
    added = doc.get("added_tokens")
    added_ids = {a["id"] for a in added if isinstance(a, dict) and isinstance(a.get("id"), int)} if isinstance(added, list) else set()
    if isinstance(vocab, dict):
        seen: dict[int, str] = {}
        for tok, i in vocab.items():
            if not isinstance(i, int) or isinstance(i, bool) or i < 0:
                where = f"{path}:{_line_of(text, json.dumps(tok, ensure_ascii=False))}"  # only on error: a find per token is quadratic
                raise TokenizerFileError(f"{where}: token {tok!r} has id {i!r}; ids are non-negative integers")
            if i in seen:
                where = f"{path}:{_line_of(text, json.dumps(tok, ensure_ascii=False))}"
                raise TokenizerFileError(f"{where}: id {i} is given to both {seen[i]!r} and {tok!r}; each id names one token")
            seen[i] = tok
        all_ids = set(seen) | added_ids
        _check_ids_dense(f"{path}:{_line_of(text, str(max(all_ids, default=0)))}", all_ids)
        unk = model.get("unk_token")
        if isinstance(unk, str) and unk not in vocab:
            line = _line_of(text, '"unk_token"')
            raise TokenizerFileError(f"{path}:{line}: unk_token {unk!r} is not in the model vocab; add it or fix unk_token")


def _regexes(node: Any) -> Iterator[str]:
    """Every ``{"Regex": ...}`` pattern in a tokenizer.json (pre-tokenizers, normalizers, decoders)."""
    if isinstance(node, dict):
        if isinstance(node.get("Regex"), str):
            yield node["Regex"]
        for v in node.values():
            yield from _regexes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _regexes(v)


def _check_regexes(path: Path, text: str, doc: dict) -> None:
    """A regex with nested unbounded quantifiers makes the engine panic on some texts: refuse it at load."""
    for rx in _regexes({k: v for k, v in doc.items() if k != "model"}):
        group = catastrophic_group(rx)
        if group is not None:
            line = _line_of(text, json.dumps(rx)[1:-1][:40])
            raise TokenizerFileError(
                f"{path}:{line}: regex {rx!r} nests unbounded quantifiers in {group!r} (exponential backtracking; "
                "the engine aborts on some texts); fix the pattern, e.g. 'a+' instead of '(a+)+'"
            )


@contextmanager
def engine_errors(what: str = "the tokenizer engine") -> Iterator[None]:
    """Turn a failure inside the Rust engine (including pyo3's PanicException, a BaseException) into a
    one-line :class:`TokenizerError`; interrupts pass through."""
    try:
        yield
    except TokembedError:
        raise
    except BaseException as e:
        if isinstance(e, _PASS_THROUGH):
            raise
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise TokenizerError(
            f"{what} failed on this text ({msg}); if the message names a regex (e.g. a retry limit), the tokenizer's "
            "pattern backtracks catastrophically: fix the pattern"
        ) from None


def engine_from_file(path: str | os.PathLike):
    """Read a ``tokenizer.json`` into an engine; any defect is a :class:`TokenizerFileError` with file:line.

    Besides the engine's own parsing, the model vocab is checked (one token per id) and a short
    text is encoded and decoded once, so a file the engine accepts but cannot run fails here.
    """
    from tokenizers import Tokenizer as Engine

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TokenizerFileError(f"{path}: cannot read ({e}); pass an existing tokenizer.json") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TokenizerFileError(f"{path}:{line}: not UTF-8 (byte offset {e.start}); this is not a tokenizer.json") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerFileError(f"{path}:{e.lineno}:{e.colno}: malformed JSON ({e.msg}); the file is truncated or corrupt") from None
    except RecursionError:
        raise TokenizerFileError(f"{path}:1: JSON nested too deeply; this is not a tokenizer.json") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise TokenizerFileError(f"{path}:1: no 'model' object; this is not a Hugging Face tokenizer.json")
    _check_model_vocab(path, text, doc)
    _check_regexes(path, text, doc)
    try:
        engine = Engine.from_str(text)
    except BaseException as e:  # serde's messages carry "line X column Y"
        if isinstance(e, _PASS_THROUGH):
            raise
        msg = str(e)
        m = re.search(r"line (\d+)", msg)
        line = m.group(1) if m else "1"
        raise TokenizerFileError(f"{path}:{line}: the tokenizers library rejects this file ({msg}); regenerate it") from None
    try:
        Engine.from_str(engine.to_str())  # what HFTokenizer copies must load too
        engine.decode(engine.encode(_SMOKE_TEXT).ids)
    except BaseException as e:
        if isinstance(e, _PASS_THROUGH):
            raise
        raise TokenizerFileError(f"{path}:1: the tokenizers library loads this file but cannot run it ({e}); regenerate it") from None
    return engine


def vocab_from_engine(engine, special_tokens: Mapping[str, str] | None = None) -> Vocab:
    """The engine's id -> token table (model vocab + added tokens) as a :class:`Vocab`.

    Ids the engine leaves empty become ``<unused:ID>``; a string held by two ids keeps its
    spelling at the lower id and becomes ``STRING<dup:ID>`` at the higher one, so the table is a
    bijection (only odd hand-made files have either).
    """
    ids = set(engine.get_vocab(with_added_tokens=True).values())
    _check_ids_dense("tokenizer engine", ids)
    n = 1 + max(ids, default=-1)
    tokens: list[str] = []
    seen: set[str] = set()
    for i in range(n):
        t = engine.id_to_token(i)
        if t is None:
            t = f"<unused:{i}>"
        elif t in seen:
            t = f"{t}<dup:{i}>"
        seen.add(t)
        tokens.append(t)
    roles = detect_roles(engine) if special_tokens is None else dict(special_tokens)
    return Vocab(tokens, special_tokens=roles)


def detect_roles(engine) -> dict[str, str]:
    """role -> string for the engine's added special tokens (and the model's unk token)."""
    specials = [a.content for _, a in sorted(engine.get_added_tokens_decoder().items()) if a.special]
    unk = getattr(engine.model, "unk_token", None)
    if isinstance(unk, str) and unk and engine.token_to_id(unk) is not None and unk not in specials:
        specials.insert(0, unk)
    roles: dict[str, str] = {}
    extra = 0
    for s in specials:
        role = KNOWN_ROLES.get(s)
        if role is None or role in roles:
            role = f"extra_{extra}"
            extra += 1
        roles[role] = s
    if "cls" in roles and "bos" not in roles:  # BERT: [CLS] opens and [SEP] closes a sequence
        roles["bos"] = roles["cls"]
    if "sep" in roles and "eos" not in roles:
        roles["eos"] = roles["sep"]
    return roles


def _without_lone_surrogates(text: str) -> str:
    """Lone surrogates cannot cross into the Rust engines; replace them with U+FFFD (as tiktoken does)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def train_engine(engine, trainer, corpus: Any, *, alpha: float, seed: int) -> int:
    """Train ``engine`` with ``trainer`` on ``corpus.training_texts(alpha=alpha, seed=seed)``; returns the text count.

    Texts are streamed (never held in memory); an empty corpus is an :class:`EmptyCorpusError`.
    """
    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_args(corpus)
    count = 0

    def texts():
        nonlocal count
        for t in corpus.training_texts(alpha=alpha, seed=seed):
            count += 1
            yield t

    engine.train_from_iterator(texts(), trainer=trainer)
    if count == 0:
        raise EmptyCorpusError("the training corpus holds no non-blank line; pass files with text")
    return count


def _is_byte_level(doc: dict) -> bool:
    """Byte-level pre-tokenizer (without prefix space) and decoder, BPE model, no normalizer (``doc``: the tokenizer.json)."""
    if doc.get("normalizer") or (doc.get("model") or {}).get("type") != "BPE":
        return False
    dec = doc.get("decoder") or {}
    pre = doc.get("pre_tokenizer") or {}
    pres = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    byte_level = any(p.get("type") == "ByteLevel" and not p.get("add_prefix_space") for p in pres)
    return byte_level and dec.get("type") == "ByteLevel"


@register("hf")
class HFTokenizer(Tokenizer):
    """Any HF ``tokenizers`` engine behind the tokembed interface (kind ``"hf"`` for loaded files).

    Args:
        engine: a ``tokenizers.Tokenizer``. Its stored padding/truncation are kept (and saved)
            but applied only when an encode call asks for them.
        special_tokens: role -> string; default: detected from the engine (see :func:`detect_roles`).
        add_special_tokens: default for ``encode``: add the post-processor's special tokens.
        options: recorded in ``tokembed.json``.
        tiktoken: encode byte-level BPE vocabularies with tiktoken (same ids, faster).
        tiktoken_defines_ids: the vocabulary comes from a tiktoken rank file, so tiktoken's ids are
            the reference on every text (else the engine's are, on the rare texts the two split
            differently; see :func:`~tokembed.tokenizers.tiktoken_engine.has_disputed`).
    """

    trainable = False

    def __init__(
        self,
        engine,
        *,
        special_tokens: Mapping[str, str] | None = None,
        add_special_tokens: bool = True,
        options: Mapping[str, Any] | None = None,
        tiktoken: bool = True,
        tiktoken_defines_ids: bool = False,
        _byte_level: Any = None,
    ):
        from tokenizers import Tokenizer as Engine

        # Before anything indexes by id (HF's own to_str walks the id range: 10 s for one id of 10^9).
        _check_ids_dense("tokenizer engine", set(engine.get_vocab(with_added_tokens=True).values()))
        self.engine = engine  # as given: saved verbatim, padding/truncation included
        self._stored_truncation = engine.truncation
        self._stored_padding = engine.padding
        spec = engine.to_str()
        # _plain treats special strings as text (tokembed's rule); _full (built on first use) matches them.
        self._plain = Engine.from_str(spec)
        self._plain.no_truncation()
        self._plain.no_padding()
        self._plain.encode_special_tokens = True
        self._asked: dict[tuple[bool, bool], Any] = {}  # engines with the stored truncation/padding
        self.vocab = vocab_from_engine(engine, special_tokens)
        #: ids the engine leaves empty (``<unused:ID>`` in the vocab): no token to decode.
        self._holes = {i for i in range(len(self.vocab)) if engine.id_to_token(i) is None}
        self.add_special_tokens = bool(add_special_tokens)
        self.options = {"add_special_tokens": self.add_special_tokens, **dict(options or {})}
        doc = json.loads(spec)
        byte_level = _is_byte_level(doc)
        #: the post-processor adds tokens (e.g. ``[CLS] ... [SEP]``) when asked to.
        self._adds_tokens = engine.num_special_tokens_to_add(False) > 0
        #: decode(encode(x)) == x for every x without lone surrogates (byte-level, nothing added).
        self.lossless = byte_level and not (self.add_special_tokens and self._adds_tokens)
        #: tiktoken over the same vocabulary when it is byte-level BPE (same ids, faster); else None.
        self.fast_path = None
        if tiktoken and byte_level:
            bpe = _byte_level if _byte_level is not None else byte_level_bpe(engine, doc=doc)
            if bpe is not None:
                self.fast_path = TiktokenPath.for_engine(self._plain, bpe=bpe, engine_defines_ids=not tiktoken_defines_ids)

    @cached_property
    def _full(self):
        """An engine copy that matches special tokens in text (for allowed specials and decoding)."""
        from tokenizers import Tokenizer as Engine

        eng = Engine.from_str(self.engine.to_str())
        eng.no_truncation()
        eng.no_padding()
        return eng

    # -- engine facts ------------------------------------------------------------------
    @property
    def model_type(self) -> str:
        """``"BPE"``, ``"WordPiece"``, ``"Unigram"`` or ``"WordLevel"``."""
        return type(self.engine.model).__name__

    # -- encoding ----------------------------------------------------------------------
    def encode(
        self,
        text: str,
        *,
        allowed_special: Collection[str] | Literal["all"] = (),
        disallowed_special: Literal["plain", "raise"] = "plain",
        add_special_tokens: bool | None = None,
        truncation: bool = False,
        padding: bool = False,
        **sampling: Any,
    ) -> list[int]:
        """Text -> ids; see :meth:`encode_with_offsets` for the options.

        Never computes offsets: ordinary text goes through tiktoken when the vocabulary is
        byte-level BPE (:attr:`fast_path`), else through the engine's ``encode_batch_fast``;
        only a post-processor's tokens around allowed specials, truncation or padding need the
        engine's full encoding.
        """
        if sampling:  # subword regularization: the base class cuts out allowed specials, _sample does the rest
            if add_special_tokens or truncation or padding:
                raise ConfigError("subword sampling cannot be combined with add_special_tokens/truncation/padding")
            return Tokenizer.encode(self, text, allowed_special=allowed_special, disallowed_special=disallowed_special, **sampling)
        asp = self.add_special_tokens if add_special_tokens is None else bool(add_special_tokens)
        if not (truncation or padding):
            if not allowed_special or not (asp and self._adds_tokens):
                allowed = self._check_encode_args(text, allowed_special, disallowed_special)
                if not allowed:
                    return self._encode_plain(text, asp)
                return Tokenizer.encode(self, text, allowed_special=allowed, disallowed_special=disallowed_special)
        return self.encode_with_offsets(
            text,
            allowed_special=allowed_special,
            disallowed_special=disallowed_special,
            add_special_tokens=add_special_tokens,
            truncation=truncation,
            padding=padding,
        )[0]

    def _encode_plain(self, text: str, add_special_tokens: bool) -> list[int]:
        """Ordinary text (special strings as text) -> ids, post-processor tokens added if asked; no offsets."""
        with engine_errors():  # a disputed text goes from the fast path to the HF engine
            if self.fast_path is not None and not (add_special_tokens and self._adds_tokens):
                return self.fast_path.encode(text)
            return self._plain.encode_batch_fast([_without_lone_surrogates(text)], add_special_tokens=add_special_tokens)[0].ids

    def encode_with_offsets(
        self,
        text: str,
        *,
        allowed_special: Collection[str] | Literal["all"] = (),
        disallowed_special: Literal["plain", "raise"] = "plain",
        add_special_tokens: bool | None = None,
        truncation: bool = False,
        padding: bool = False,
        **sampling: Any,
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Text -> (ids, character offsets ``(start, end)`` into ``text`` per token).

        Args:
            allowed_special, disallowed_special: as in :meth:`Tokenizer.encode`.
            add_special_tokens: add the post-processor's tokens (e.g. ``[CLS] ... [SEP]``);
                default: the tokenizer's ``add_special_tokens`` (True for loaded files).
            truncation, padding: apply the truncation/padding stored in the tokenizer file.

        Special tokens added by the post-processor or padding have offsets ``(0, 0)``.
        """
        if not isinstance(text, str):
            raise TokenizerError(f"encode takes a str, got {type(text).__name__}; decode bytes first")
        if sampling:
            raise ConfigError(f"offsets are not available with subword sampling {sorted(sampling)}; call encode()")
        asp = self.add_special_tokens if add_special_tokens is None else bool(add_special_tokens)
        allowed = self._allowed(allowed_special)
        self._check_disallowed(text, allowed, disallowed_special)
        fast = self.fast_path
        if fast is not None and fast.engine is None and not (truncation or padding) and has_disputed(text):
            # tiktoken defines the ids (a rank file) and the engine may split this text otherwise:
            # offsets from tiktoken's tokens' bytes (the generic path), so ids equal encode()'s.
            return Tokenizer.encode_with_offsets(self, text, allowed_special=allowed, disallowed_special=disallowed_special)
        engine = self._engine_for(truncation, padding)
        with engine_errors():
            return self._engine_offsets(engine, _without_lone_surrogates(text), allowed, asp)

    def _engine_offsets(self, engine, text: str, allowed: set[str], asp: bool) -> tuple[list[int], list[tuple[int, int]]]:
        """The engine's ids and offsets; allowed specials cut out first (as HF does for added tokens), the
        text between them encoded without post-processing, then the whole post-processed once."""
        from tokenizers import Encoding

        if not allowed:
            enc = engine.encode(text, add_special_tokens=asp)
            return enc.ids, [tuple(o) for o in enc.offsets]
        pattern = re.compile("|".join(re.escape(s) for s in sorted(allowed, key=len, reverse=True)))
        parts, offsets, start = [], [], 0
        for m in [*pattern.finditer(text), None]:
            end = len(text) if m is None else m.start()
            if end > start:
                enc = self._plain.encode(text[start:end], add_special_tokens=False)
                parts.append(enc)
                offsets += [(a + start, b + start) for a, b in enc.offsets]
            if m is not None:
                parts.append(self._full.encode(m.group(), add_special_tokens=False))
                offsets.append(m.span())
                start = m.end()
        merged = Encoding.merge(parts, growing_offsets=False) if parts else self._plain.encode("", add_special_tokens=False)
        out = engine.post_process(merged, None, asp)
        it = iter(offsets)
        final = [next(it) if sid is not None else (0, 0) for sid in out.sequence_ids]
        return out.ids, final

    def encode_batch(self, texts, *, add_special_tokens: bool | None = None, **kwargs: Any) -> list[list[int]]:
        """Encode many texts through the parallel path; ``add_special_tokens`` as in :meth:`encode`."""
        texts = list(texts)
        if add_special_tokens is None or kwargs:
            if add_special_tokens is not None:
                kwargs["add_special_tokens"] = add_special_tokens
            return super().encode_batch(texts, **kwargs)
        for t in texts:
            if not isinstance(t, str):
                raise TokenizerError(f"encode_batch takes str items, got {type(t).__name__}")
        if self.fast_path is not None:  # its vocabularies have no post-processor tokens to add
            with engine_errors():
                return self.fast_path.encode_batch(texts)
        texts = [_without_lone_surrogates(t) for t in texts]
        with engine_errors():
            return [e.ids for e in self._plain.encode_batch_fast(texts, add_special_tokens=bool(add_special_tokens))]

    def _sample(self, text: str, **sampling: Any) -> list[int]:
        """Subword regularization of ordinary text; kinds that support it override this."""
        raise TokenizerError(
            f"{self.kind} tokenizer ({self.model_type} engine) has no subword regularization; remove {sorted(sampling)} "
            "(BPE-dropout is available for the bytebpe kind)"
        )

    def _engine_for(self, truncation: bool, padding: bool):
        if not truncation and not padding:
            return self._plain
        if truncation and self._stored_truncation is None:
            raise ConfigError("truncation=True, but the tokenizer file stores no truncation settings; truncate the ids yourself")
        if padding and self._stored_padding is None:
            raise ConfigError("padding=True, but the tokenizer file stores no padding settings; pad the ids yourself")
        key = (bool(truncation), bool(padding))
        if key not in self._asked:  # an engine copy with the file's own settings, built once
            from tokenizers import Tokenizer as Engine

            eng = Engine.from_str(self.engine.to_str())
            eng.encode_special_tokens = True
            if not truncation:
                eng.no_truncation()
            if not padding:
                eng.no_padding()
            self._asked[key] = eng
        return self._asked[key]

    def _encode_ordinary(self, text: str, **sampling: Any) -> list[int]:
        if sampling:
            return self._sample(text, **sampling)
        if self.fast_path is not None:
            return self.fast_path.encode(text)
        return self._encode_plain(text, False)

    def _encode_ordinary_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """tiktoken in large blocks per worker when available, else the engine's parallel batch encoder
        (``encode_batch_fast``: the same ids, without computing offsets)."""
        if self.fast_path is not None:
            with engine_errors():
                return self.fast_path.encode_batch(texts)
        texts = [_without_lone_surrogates(t) for t in texts]
        with engine_errors():
            return [e.ids for e in self._plain.encode_batch_fast(texts, add_special_tokens=self.add_special_tokens)]

    def _token_bytes(self, i: int) -> bytes:
        if self.fast_path is None:
            return super()._token_bytes(i)
        return self.fast_path.encoding.decode_single_token_bytes(i)

    def _decode(self, ids: Sequence[int]) -> str:
        if self._holes:
            bad = next((p for p, i in enumerate(ids) if i in self._holes), None)
            if bad is not None:
                raise TokenizerError(
                    f"id {ids[bad]} at position {bad} is an unused slot of this vocabulary (no token); "
                    "pass ids this tokenizer produced"
                )
        if self.fast_path is not None:  # exact bytes, invalid UTF-8 -> U+FFFD
            return self.fast_path.encoding.decode(list(ids), errors="replace")
        return self._full.decode(list(ids), skip_special_tokens=False)

    # -- artifacts -----------------------------------------------------------------------
    def _save_engine(self, folder: Path) -> None:
        atomic_write_text(folder / ENGINE_FILE, self.engine.to_str(pretty=True))

    @classmethod
    def _load(cls, folder: Path, meta: dict[str, Any]) -> "HFTokenizer":
        engine = engine_from_file(folder / ENGINE_FILE)
        options = dict(meta.get("options") or {})
        asp = options.pop("add_special_tokens", True)
        return cls(engine, special_tokens=meta.get("special_tokens"), add_special_tokens=asp, options=options)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, add_special_tokens: bool = True) -> "HFTokenizer":
        """Load a Hugging Face ``tokenizer.json`` (any model type)."""
        return cls(engine_from_file(path), add_special_tokens=add_special_tokens)

    @classmethod
    def train(cls, corpus: Any = None, vocab_size: int | None = None, **opts: Any) -> "HFTokenizer":
        raise TokenizerError("kind 'hf' wraps a loaded tokenizer.json and is not trainable; train kind='bytebpe' or "
                             "'wordpiece'", param="kind")
