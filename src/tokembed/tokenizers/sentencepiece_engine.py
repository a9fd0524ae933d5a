"""The sentencepiece engine behind the tokembed interface: any ``.model`` file, and training for the
``unigram`` (:mod:`.unigram`), ``bpe`` (:mod:`.bpe`) and ``char`` (:mod:`.char`) kinds.

Unlike the byte-level kinds (``byte``, ``bytebpe``), these work on Unicode characters and
fall back to the 256 byte tokens ``<0x00>``..``<0xFF>`` for characters outside the
vocabulary (sentencepiece's ``byte_fallback``, as in Llama). The engine is
``sentencepiece``; training runs in memory (``sentence_iterator`` + ``model_writer``), the
model proto is saved as ``spm.model`` in the tokenizer folder.

Lossless settings for trained kinds: no normalisation (``identity``), no dummy prefix, no
removal of extra whitespace, byte fallback, so ``decode(encode(x)) == x`` for every str
without lone surrogates. sentencepiece writes a space as ``▁`` (U+2581) and decodes ``▁``
back to a space, so a literal ``▁`` in user text is encoded as its three byte tokens.
Exceptions: the ``char`` kind with ``byte_fallback=False`` (unknown chars -> ``<unk>``)
and loaded ``.model`` files that normalise (``lossless`` is then False).

Special tokens: ``<unk>`` (id 0), ``<s>``, ``</s>``, ``<pad>`` and any extra roles are
sentencepiece *control* symbols, which the engine never matches in text, so a special
token's string in user text is plain text unless ``allowed_special`` (see base.py). A loaded
model's *user-defined* symbols are special tokens too; the engine would match them in text,
so ordinary encoding runs on a copy of the model where they are retyped ``UNUSED``.

>>> from tokembed.tokenizers import UnigramTokenizer
>>> tok = UnigramTokenizer.train(["The cat sat on the mat. " * 20, "A dog, a cat and a rat."], 278)
>>> tok.vocab_size, tok.special_tokens["unk"], tok.vocab.token(1)
(278, '<unk>', '<s>')
>>> tok.decode(tok.encode("  the cat▁sat\\t"))
'  the cat▁sat\\t'
"""

from __future__ import annotations

import io
import os
import random
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from ..corpus import Corpus
from ..errors import ConfigError, EmptyCorpusError, TokenizerError, TokenizerFileError, VocabSizeError, require
from ..vocab import Vocab
from ._spm_proto import BYTE, CONTROL, UNKNOWN, UNUSED, USER_DEFINED, PieceTable, parse_model, retype_pieces
from .base import DEFAULT_SPECIAL_TOKENS, Tokenizer, register
from .byte import byte_token
from .progress import DELAY_S, elapsed, show_progress
from .spm_hf import probe_texts, spm_to_hf_json
from .sampling import sample_nbest, spm_bpe_dropout, spm_score, spm_unigram_sample

__all__ = [
    "SentencePieceTokenizer",
    "SpmTrainConfig",
    "ENGINE_FILE",
    "META_PIECE",
]

ENGINE_FILE = "spm.model"
#: sentencepiece's whitespace symbol (U+2581): a space in text is the piece "▁".
META_PIECE = "\u2581"
#: Thread count for training. Fixed (not the CPU count) because sentencepiece's Unigram
#: trainer splits work per thread and the float sums differ with it: same options -> same vocab on every machine.
DEFAULT_TRAIN_THREADS = 4
#: sentencepiece's own default vocabulary size for ``unigram``/``bpe``.
DEFAULT_VOCAB_SIZE = 8000
#: Order of the meta pieces at the start of the vocab (Llama convention: unk 0, bos 1, eos 2).
_ROLE_ORDER = ("unk", "bos", "eos", "pad")

_SAMPLING_LOCK = threading.Lock()
_SURROGATE = re.compile("[\ud800-\udfff]")


def _spm():
    return require("sentencepiece", extra="spm", feature="sentencepiece tokenizers")


@dataclass
class SpmTrainConfig:
    """Training options of the sentencepiece kinds (keyword options of ``train``)."""

    character_coverage: float = 0.9995  # share of character occurrences the alphabet covers, in [0.98, 1] (rest: bytes/unk)
    byte_fallback: bool = True  # unknown chars -> <0xNN> byte tokens (False: -> <unk>, lossy)
    special_tokens: dict[str, str] | None = None  # role -> string; default {"unk": "<unk>"} + DEFAULT_SPECIAL_TOKENS
    alpha: float = 0.3  # language smoothing of LANG=PATH corpora (p_l ∝ n_l^α), see Corpus.training_texts
    seed: int = 0  # sentencepiece's random seed and the language sampling seed
    num_threads: int = DEFAULT_TRAIN_THREADS  # trainer threads (part of the result: keep fixed for reproducibility)
    max_sentence_length: int = 4192  # bytes; longer lines are cut into chunks of at most this many bytes
    max_piece_length: int = 16  # longest piece in characters (sentencepiece max_sentencepiece_length)
    split_digits: bool = False  # one piece per digit (as Llama)
    allow_whitespace_only_pieces: bool = True  # pieces such as "▁▁▁▁" (indentation)
    progress: bool | None = None  # progress bar over the corpus lines; None = when stderr is a terminal
    verbose: bool = False  # sentencepiece's own log on stderr

    def __post_init__(self) -> None:
        if not 0.98 <= self.character_coverage <= 1.0:  # sentencepiece's own bounds (trainer_interface.cc)
            raise ConfigError(f"character_coverage={self.character_coverage} is outside [0.98, 1]; 0.9995 is usual")
        if self.max_sentence_length < 16:
            raise ConfigError(f"max_sentence_length={self.max_sentence_length} is below 16 bytes")
        if self.num_threads < 1:
            raise ConfigError(f"num_threads={self.num_threads}; pass a positive thread count")

    @classmethod
    def from_opts(cls, kind: str, opts: Mapping[str, Any]) -> "SpmTrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(opts) - names)
        if unknown:
            raise ConfigError(f"{kind} tokenizer: unknown option(s) {unknown}; valid options are {sorted(names)}")
        return cls(**opts)

    def specials(self) -> dict[str, str]:
        """role -> string, ``unk`` first (sentencepiece needs an unknown piece)."""
        sp = dict(DEFAULT_SPECIAL_TOKENS if self.special_tokens is None else self.special_tokens)
        sp.setdefault("unk", "<unk>")
        ordered = {r: sp[r] for r in _ROLE_ORDER if r in sp}
        ordered.update((r, s) for r, s in sp.items() if r not in ordered)
        if len(set(ordered.values())) != len(ordered):
            raise ConfigError(f"special_tokens={sp} maps two roles to one string; give each role its own string")
        for r, s in ordered.items():
            if not isinstance(s, str) or len(s) < 2:
                raise ConfigError(
                    f"special token {r}={s!r} must be a string of 2+ characters (a one-character special "
                    "would take that character away from ordinary text), e.g. '<mask>'"
                )
        return ordered


@register("sentencepiece")
class SentencePieceTokenizer(Tokenizer):
    """Any sentencepiece model (unigram, bpe, char, word) behind the tokembed interface.

    Args:
        model_proto: the serialized sentencepiece model (contents of a ``.model`` file).
        special_tokens: role -> piece; default: derived from the model (unk/bos/eos/pad,
            other control symbols as ``control_<k>``, user-defined symbols as ``user_<k>``).
        options: what to store in ``tokembed.json``.
        source: where the proto came from, for error messages.
        user_defined_as_special: treat the model's user-defined symbols as special tokens
            (plain text unless allowed). False: leave them to the engine, which matches them in text.
    """

    trainable = False

    def __init__(
        self,
        model_proto: bytes,
        *,
        special_tokens: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        source: str = "<model proto>",
        user_defined_as_special: bool = True,
    ):
        spm = _spm()
        self._proto = bytes(model_proto)
        try:
            info = parse_model(self._proto)
        except ValueError as e:
            raise TokenizerFileError(f"{source}: not a sentencepiece model ({e}); pass a .model file written by sentencepiece") from e
        if not info.pieces:
            raise TokenizerFileError(f"{source}: sentencepiece model has no pieces; pass a trained .model file")
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        except (RuntimeError, OSError) as e:
            raise TokenizerFileError(f"{source}: sentencepiece cannot load it: {str(e)[:200]}") from e
        if self._sp.get_piece_size() != len(info.pieces):
            raise TokenizerFileError(f"{source}: {len(info.pieces)} pieces on file, sentencepiece loaded {self._sp.get_piece_size()}")
        self.info = info
        tokens = [p for p, _, _ in info.pieces]
        if special_tokens is None:
            special_tokens = self._derive_specials(user_defined_as_special)
        try:
            self.vocab = Vocab(tokens, special_tokens=special_tokens)
        except TokenizerError as e:
            raise TokenizerFileError(f"{source}: {e}") from e
        self._special_ids = frozenset(self.vocab[s] for s in self.vocab.special_tokens.values())
        # The engine matches user-defined pieces in text; where those are special tokens, encode
        # with a copy of the model in which they are UNUSED (never produced from text).
        matched = {i: UNUSED for i in self._special_ids if info.pieces[i][2] == USER_DEFINED}
        self._enc = spm.SentencePieceProcessor(model_proto=retype_pieces(self._proto, matched)) if matched else self._sp
        # A literal "▁" would decode as a space: encode it as its byte tokens when the model has them.
        self._meta_bytes: list[int] | None = None
        if info.escape_whitespaces and all(byte_token(b) in self.vocab for b in META_PIECE.encode()):
            self._meta_bytes = [self.vocab[byte_token(b)] for b in META_PIECE.encode()]
        self.lossless = (
            info.normalizer_name == "identity"
            and not info.add_dummy_prefix
            and not info.remove_extra_whitespaces
            and info.byte_fallback
            and self._meta_bytes is not None
        )
        self._byte_ids = frozenset(i for i, (_, _, typ) in enumerate(info.pieces) if typ == BYTE)
        #: Piece table for seeded sampling in Python (the settings tokembed trains with), else None.
        self._pieces = (
            PieceTable(info)
            if info.normalizer_name == "identity"
            and not info.add_dummy_prefix
            and not info.remove_extra_whitespaces
            and info.escape_whitespaces
            and not any(typ == USER_DEFINED for _, _, typ in info.pieces)
            else None
        )
        self.options = dict(options) if options is not None else {"model_type": info.model_type, "source": source}
        self._threads = os.cpu_count() or 1

    def _derive_specials(self, user_defined_as_special: bool) -> dict[str, str]:
        sp, out, k_ctrl, k_user = self._sp, {}, 0, 0
        for role, i in (("unk", sp.unk_id()), ("bos", sp.bos_id()), ("eos", sp.eos_id()), ("pad", sp.pad_id())):
            if 0 <= i < sp.get_piece_size():
                out[role] = sp.id_to_piece(i)
        named = set(out.values())
        for piece, _, typ in self.info.pieces:
            if piece in named:
                continue
            if typ == CONTROL:
                out[f"control_{k_ctrl}"] = piece
                k_ctrl += 1
            elif typ == USER_DEFINED and user_defined_as_special:
                out[f"user_{k_user}"] = piece
                k_user += 1
        return out

    @classmethod
    def from_model_file(cls, path: str | os.PathLike, *, user_defined_as_special: bool = True) -> "SentencePieceTokenizer":
        """Load any sentencepiece ``.model`` file (Llama, T5, ALBERT, XLNet, ...).

        Raises :class:`TokenizerFileError` naming the file when it is missing or malformed.
        """
        path = Path(path)
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise TokenizerFileError(f"{path}: cannot read sentencepiece model ({e.strerror}); pass an existing .model file") from e
        return SentencePieceTokenizer(blob, source=str(path), user_defined_as_special=user_defined_as_special)

    # -- encode ------------------------------------------------------------------
    def _sampling_args(self, sampling: dict[str, Any]) -> dict[str, Any] | None:
        """Validate subword-regularization kwargs -> sentencepiece encode kwargs (None: no sampling)."""
        if not sampling:
            return None
        mt = self.info.model_type
        seed = sampling.pop("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed={seed!r}; pass a non-negative int")
        if mt == "unigram":
            alpha = sampling.pop("alpha", 0.1)
            nbest = sampling.pop("nbest", -1)
            if sampling:
                raise TokenizerError(
                    f"unigram sampling takes alpha=, nbest=, seed=, not {sorted(sampling)} (BPE-dropout is for the bpe kind)"
                )
            if not 0.0 <= float(alpha):
                raise ConfigError(f"alpha={alpha}; Unigram sampling smoothing must be >= 0 (0.1 is usual)")
            if not isinstance(nbest, int) or nbest == 0 or nbest < -1:
                raise ConfigError(f"nbest={nbest!r}; pass -1 (sample from the whole lattice) or a positive n-best size")
            if nbest == 1:
                return None  # 1-best is the ordinary segmentation
            return {"alpha": float(alpha), "nbest_size": nbest, "seed": seed}
        if mt == "bpe":
            p = sampling.pop("dropout", None)
            if sampling or p is None:
                raise TokenizerError(f"bpe sampling is BPE-dropout: pass dropout=p, seed=s (got {sorted(sampling) or 'no dropout'})")
            if not 0.0 <= float(p) < 1.0:
                raise ConfigError(f"dropout={p} is outside [0, 1); 0.1 is usual")
            if p == 0:
                return None
            return {"alpha": float(p), "nbest_size": -1, "seed": seed}
        raise TokenizerError(f"subword regularization is not available for sentencepiece model type {mt!r} (remove {sorted(sampling)})")

    def _encode_pieces(self, texts: list[str], samp: dict[str, Any] | None, threads: int) -> list[list[int]]:
        """Engine call; seeded sampling in :mod:`.sampling` (the same ids in any process) where the model allows."""
        try:
            if samp is None:
                return self._enc.encode(texts, num_threads=threads)
            if self._pieces is not None:  # one random stream over the texts of one call, in order
                rng = random.Random(samp["seed"])
                return [self._sample_one(t, samp, rng) for t in texts]
            # Models the Python sampler does not cover (normalising, dummy prefix, user-defined pieces):
            # the engine's own sampling, seeded, reproducible within one process only.
            with _SAMPLING_LOCK:
                _spm().set_random_generator_seed(samp["seed"])
                return self._enc.encode(
                    texts, enable_sampling=True, alpha=samp["alpha"], nbest_size=samp["nbest_size"], num_threads=1
                )
        except (UnicodeEncodeError, TypeError) as e:
            raise _encode_error(texts, e) from None

    def _sample_one(self, text: str, samp: dict[str, Any], rng: random.Random) -> list[int]:
        if _SURROGATE.search(text):
            raise _encode_error([text], UnicodeEncodeError("utf-8", text, 0, 1, "surrogate"))
        if self.info.model_type == "bpe":
            return spm_bpe_dropout(self._pieces, text, samp["alpha"], rng)
        if samp["nbest_size"] < 0:
            return spm_unigram_sample(self._pieces, text, samp["alpha"], rng)
        best = [list(ids) for ids in self._enc.nbest_encode_as_ids(text, samp["nbest_size"])]  # deterministic n-best
        return sample_nbest(best, [spm_score(self._pieces, ids) for ids in best], samp["alpha"], rng)

    def _encode_chunks(self, texts: list[str], samp: dict[str, Any] | None = None, threads: int = 1) -> list[list[int]]:
        """Encode each text; a literal "▁" becomes its byte tokens (else it would decode as a space)."""
        meta = self._meta_bytes
        if meta is None or not any(META_PIECE in t for t in texts):
            return self._encode_pieces(texts, samp, threads)
        # Split at "▁", encode the parts in one call, then join the parts with the byte ids.
        parts_of = [t.split(META_PIECE) for t in texts]
        flat = [p for parts in parts_of for p in parts]
        enc = self._encode_pieces(flat, samp, threads)
        out, k = [], 0
        for parts in parts_of:
            ids: list[int] = []
            for j in range(len(parts)):
                if j:
                    ids.extend(meta)
                ids.extend(enc[k])
                k += 1
            out.append(ids)
        return out

    def _offsets_pieces(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """(ids, char offsets) per text from the engine's offset mapping. The engine gives the bytes
        of one byte-fallback character empty spans but the last; each gets the character's span."""
        try:
            res = self._enc.encode(texts, return_type="offset_mapping", num_threads=1)
        except (UnicodeEncodeError, TypeError) as e:
            raise _encode_error(texts, e) from None
        out = []
        byte_ids = self._byte_ids
        for r in res:
            ids, offsets = list(r["ids"]), [tuple(o) for o in r["offsets"]]
            for k in range(len(ids) - 2, -1, -1):
                a, b = offsets[k]
                if a == b and ids[k] in byte_ids and ids[k + 1] in byte_ids and offsets[k + 1][0] == a:
                    offsets[k] = offsets[k + 1]
            out.append((ids, offsets))
        return out

    def _offsets_chunks(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """:meth:`_encode_chunks` with char offsets: a literal "▁"'s three byte tokens get its span."""
        meta = self._meta_bytes
        if meta is None or not any(META_PIECE in t for t in texts):
            return self._offsets_pieces(texts)
        parts_of = [t.split(META_PIECE) for t in texts]
        enc = self._offsets_pieces([p for parts in parts_of for p in parts])
        out, k = [], 0
        for parts in parts_of:
            ids: list[int] = []
            offsets: list[tuple[int, int]] = []
            pos = 0
            for j, part in enumerate(parts):
                if j:
                    ids.extend(meta)
                    offsets.extend([(pos, pos + 1)] * len(meta))
                    pos += 1
                ids.extend(enc[k][0])
                offsets.extend((a + pos, b + pos) for a, b in enc[k][1])
                pos += len(part)
                k += 1
            out.append((ids, offsets))
        return out

    def _ordinary_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        return self._offsets_chunks([text])[0]

    def _token_bytes(self, i: int) -> bytes:
        """Bytes of a piece in text (slow reference for offsets; only for lossless models)."""
        piece, _, typ = self.info.pieces[i]
        if typ == BYTE:
            return bytes([int(piece[3:5], 16)])
        if i in self._special_ids or typ in (UNKNOWN, CONTROL):
            raise TokenizerError(f"piece {piece!r} (id {i}) stands for no fixed bytes; use encode_with_offsets")
        return piece.replace(META_PIECE, " ").encode("utf-8")

    def _encode_ordinary(self, text: str, **sampling: Any) -> list[int]:
        return self._encode_chunks([text], self._sampling_args(dict(sampling)))[0]

    def _encode_ordinary_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._encode_chunks(list(texts), None, self._threads)

    # -- decode ------------------------------------------------------------------
    def _decode(self, ids: Sequence[int]) -> str:
        specials = self._special_ids
        if not any(i in specials for i in ids):
            return self._sp.decode(ids)
        # Special tokens decode to their own string (the engine would drop control symbols).
        out, run = [], []
        for i in ids:
            if i in specials:
                if run:
                    out.append(self._sp.decode(run))
                    run = []
                out.append(self.vocab.token(i))
            else:
                run.append(i)
        if run:
            out.append(self._sp.decode(run))
        return "".join(out)

    # -- save / load ---------------------------------------------------------------
    def _save_engine(self, folder: Path) -> None:
        (folder / ENGINE_FILE).write_bytes(self._proto)

    def _hf_tokenizer_json(self) -> dict[str, Any] | None:
        """The model as a ``tokenizer.json`` (:mod:`.spm_hf`), checked to give the engine's ids on probe texts;
        None (with a warning) for a model it cannot express (``word`` models, unusual normalisers). Built once
        per tokenizer (checkpoints save the tokenizer again and again)."""
        if not hasattr(self, "_hf_json"):
            self._hf_json = self._convert_to_hf_json()
        return self._hf_json

    def _convert_to_hf_json(self) -> dict[str, Any] | None:
        import json
        import warnings

        from tokenizers import Tokenizer as Engine

        try:
            doc = spm_to_hf_json(self.info, special=self.vocab.special_tokens)
        except ValueError as e:
            warnings.warn(f"no tokenizer.json written: {e}", stacklevel=3)
            return None
        engine = Engine.from_str(json.dumps(doc))
        engine.encode_special_tokens = True
        probes = probe_texts(self.info)
        got = [e.ids for e in engine.encode_batch(probes, add_special_tokens=False)]
        want = self._enc.encode(probes)
        if got != want:
            k = next(k for k, (a, b) in enumerate(zip(got, want)) if a != b)
            warnings.warn(f"no tokenizer.json written: the converted model gives other ids than sentencepiece on {probes[k][:40]!r}",
                          stacklevel=3)
            return None
        return doc

    @classmethod
    def _load(cls, folder: Path, meta: dict[str, Any]) -> "SentencePieceTokenizer":
        path = folder / ENGINE_FILE
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise TokenizerFileError(f"{path}: missing or unreadable ({e.strerror}); the tokenizer folder is incomplete") from e
        return cls(blob, special_tokens=meta.get("special_tokens"), options=meta.get("options", {}), source=str(path))

    @classmethod
    def train(cls, corpus: Any, vocab_size: int | None = None, **opts: Any) -> "SentencePieceTokenizer":
        raise TokenizerError("train a sentencepiece model with kind 'unigram', 'bpe' or 'char'")

    # -- training ----------------------------------------------------------------
    @classmethod
    def _train_spm(cls, model_type: str, corpus: Any, vocab_size: int | None, opts: Mapping[str, Any], *,
                   texts: Iterable[str] | None = None, tsv: bool = False, extra: Mapping[str, Any] | None = None) -> "SentencePieceTokenizer":
        """Train sentencepiece in memory on ``corpus.training_texts`` (or ``texts``) and wrap the result."""
        spm = _spm()
        cfg = SpmTrainConfig.from_opts(model_type, opts)
        specials = cfg.specials()
        roles = list(specials)
        ids = {r: (roles.index(r) if r in specials else -1) for r in _ROLE_ORDER}
        control = [s for r, s in specials.items() if r not in _ROLE_ORDER]
        if model_type == "char":
            spm_vocab = 1 << 20  # the char trainer keeps every covered character; vocab_size is an upper bound
        else:
            spm_vocab = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
        if not isinstance(spm_vocab, int) or spm_vocab < 1:
            raise VocabSizeError(f"vocab_size={vocab_size!r}; pass a positive int")
        if texts is None:
            texts = _corpus_texts(corpus, cfg)
        feed = _Feed(texts, cfg.max_sentence_length, cfg.progress, tsv=tsv)
        model = io.BytesIO()
        kwargs = dict(
            model_type=model_type,
            vocab_size=spm_vocab,
            character_coverage=cfg.character_coverage,
            byte_fallback=cfg.byte_fallback,
            normalization_rule_name="identity",
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            split_digits=cfg.split_digits,
            allow_whitespace_only_pieces=cfg.allow_whitespace_only_pieces,
            max_sentencepiece_length=cfg.max_piece_length,
            max_sentence_length=cfg.max_sentence_length,
            num_threads=cfg.num_threads,
            unk_id=ids["unk"], bos_id=ids["bos"], eos_id=ids["eos"], pad_id=ids["pad"],
            unk_piece=specials["unk"], bos_piece=specials.get("bos", "<s>"),
            eos_piece=specials.get("eos", "</s>"), pad_piece=specials.get("pad", "<pad>"),
            control_symbols=control,
            minloglevel=0 if cfg.verbose else 2,
            input_format="tsv" if tsv else "text",
            **(extra or {}),
        )  # fmt: skip
        spm.set_random_generator_seed(cfg.seed)
        try:
            with elapsed(f"{model_type} training (sentencepiece)", enabled=cfg.progress):
                spm.SentencePieceTrainer.train(sentence_iterator=iter(feed), model_writer=model, **kwargs)
        except RuntimeError as e:
            if feed.error is not None:
                raise feed.error from None
            if feed.n_lines == 0:
                raise EmptyCorpusError("the corpus holds no text to train on; pass files with at least one non-blank line") from None
            raise _typed_train_error(str(e), model_type, vocab_size, cfg, len(specials)) from e
        finally:
            feed.close()
        if feed.error is not None:
            raise feed.error
        if feed.n_lines == 0:
            raise EmptyCorpusError("the corpus holds no text to train on; pass files with at least one non-blank line")
        options = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "verbose", "special_tokens")}
        options["model_type"] = model_type
        tok = cls(model.getvalue(), special_tokens=specials, options=options, source=f"trained {model_type}")
        if model_type == "char" and vocab_size is not None and tok.vocab_size > vocab_size:
            raise VocabSizeError(
                f"vocab size {vocab_size} cannot hold the {tok.vocab_size} tokens that character_coverage="
                f"{cfg.character_coverage} needs (characters + {256 if cfg.byte_fallback else 0} byte tokens + "
                f"{len(specials)} specials); pass vocab_size >= {tok.vocab_size}, omit it, or lower character_coverage"
            )
        return tok


def _encode_error(texts: Sequence[str], e: Exception) -> TokenizerError:
    """The typed error for an input sentencepiece refuses (a lone surrogate, named with its place)."""
    for t in texts:
        if m := _SURROGATE.search(t):
            return TokenizerError(
                f"text has a lone surrogate {m.group()!r} at char {m.start()}; it is not valid Unicode text — "
                "decode your bytes with errors='replace'"
            )
    return TokenizerError(f"sentencepiece cannot encode this input: {e}")


def _corpus_texts(corpus: Any, cfg: SpmTrainConfig) -> Iterable[str]:
    """Training lines: a Corpus (α-smoothed over languages), or any iterable of str (tests, docs)."""
    if corpus is None:
        corpus = Corpus.from_args(None)
    if hasattr(corpus, "training_texts"):
        return corpus.training_texts(alpha=cfg.alpha, seed=cfg.seed)
    if isinstance(corpus, str):
        raise ConfigError("corpus is a str; pass a Corpus, a list of corpus paths via train_tokenizer, or a list of lines")
    return corpus


class _Feed:
    """The sentence iterator handed to sentencepiece: cuts long lines, counts, shows progress,
    and keeps any exception of the corpus (e.g. EmptyCorpusError) to re-raise after training."""

    def __init__(self, texts: Iterable[str], max_bytes: int, progress: bool | None, *, tsv: bool):
        self.texts, self.max_bytes, self.tsv = texts, max_bytes, tsv
        self.n_lines = 0
        self.error: BaseException | None = None
        from tqdm import tqdm

        self.bar = tqdm(desc="tokenizer training: lines", unit=" lines", disable=not show_progress(progress), delay=DELAY_S)

    def __iter__(self) -> Iterator[str]:
        limit = self.max_bytes // 4  # chars per chunk: <= max_bytes bytes in UTF-8 (<= 4 bytes a char)
        tsv, n, update = self.tsv, 0, self.bar.update
        try:
            for t in self.texts:
                if not t:
                    continue
                n += 1
                if not n & 0xFFF:  # the bar every 4,096 lines: per-line updates cost more than sentencepiece's reading
                    update(0x1000)
                if tsv or len(t) <= limit:  # tsv rows ("piece<TAB>count") are built short by the caller
                    yield t
                else:
                    for k in range(0, len(t), limit):
                        yield t[k : k + limit]
        except Exception as e:  # noqa: BLE001 - re-raised by the caller after sentencepiece returns
            self.error = e
        finally:
            self.n_lines = n
            update(n & 0xFFF)

    def close(self) -> None:
        self.bar.close()


_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def _typed_train_error(msg: str, kind: str, vocab_size: int | None, cfg: SpmTrainConfig, n_specials: int) -> Exception:
    if m := _TOO_SMALL.search(msg):
        need = int(m.group(2))
        return VocabSizeError(
            f"{kind}: vocab size {m.group(1)} cannot hold the alphabet: {need} tokens are needed (characters for "
            f"character_coverage={cfg.character_coverage} + {256 if cfg.byte_fallback else 0} byte tokens + "
            f"{n_specials} specials); pass vocab_size > {need} or lower character_coverage"
        )
    if m := _TOO_HIGH.search(msg):
        return VocabSizeError(
            f"{kind}: vocab size {m.group(1)} is more than this corpus supports (at most {m.group(2)}); "
            f"pass vocab_size <= {m.group(2)} or a larger corpus"
        )
    if "No valid sentence" in msg or "size() > 0" in msg:
        return EmptyCorpusError(f"{kind}: sentencepiece found no usable text in the corpus ({msg[-120:]}); pass more text")
    return TokenizerError(f"{kind}: sentencepiece training failed: {msg[:300]}")
