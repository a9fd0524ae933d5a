"""Morpheme-aware tokenizer (kind ``morph``): a morphological segmenter, then a subword model over the morphs.

Unlike ``unigram``/``bpe``, which learn pieces from raw character statistics, ``morph``
first splits every word (a run of letters) into morphs with a :class:`Segmenter` — by
default :class:`MorfessorSegmenter`, Morfessor Baseline trained unsupervised on the
corpus's word counts — and then trains a sentencepiece ``unigram`` (or ``bpe``) model whose
pieces never cross a morph boundary. It suits agglutinative languages (Finnish, Turkish);
an analyzer for a specific language plugs in as any object with ``segment(word) -> list[str]``
and ``train(words_with_counts)``, or by name: ``analyzer="kiwi"`` for Korean (:mod:`.analyzers`).

How the text is cut (no boundary marker ever enters the text, so there is nothing to escape):
a word with its preceding space becomes the chunks ``" " + m1, m2, ..., mk`` (morphs joined
give the word back — checked); everything between words (spaces, digits, punctuation) is a
chunk of its own. Each chunk is encoded separately by the subword model, the ids are
concatenated, so ``decode(ids)`` is the concatenation of the chunks: exactly the input text.

>>> seg = DictSegmenter({"unhappiness": ["un", "happi", "ness"]})
>>> list(morph_chunks("The unhappiness, 42x", seg.segment))
['The', ' un', 'happi', 'ness', ', 42', 'x']
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..artifacts import read_json, write_json
from ..errors import ConfigError, TokenizerError, TokenizerFileError, VocabSizeError, require
from .base import Tokenizer, register
from .progress import DELAY_S, elapsed, show_progress
from .sentencepiece_engine import SentencePieceTokenizer, SpmTrainConfig, _corpus_texts

__all__ = [
    "MorphTokenizer",
    "Segmenter",
    "MorfessorSegmenter",
    "DictSegmenter",
    "register_segmenter",
    "SEGMENTERS",
    "morph_chunks",
    "SEGMENTER_FILE",
]

SEGMENTER_FILE = "segmenter.json"
#: A word: a run of letters (no digits/underscore), with the one space before it if any.
WORD_RE = re.compile(r"( ?)([^\W\d_]+)")
#: A word as WORD_RE finds it, or a run of non-letters that stops before " " + letter (one findall, C speed).
UNIT_RE = re.compile(r" ?[^\W\d_]+|(?:(?! [^\W\d_])[\W\d_])+")
#: Longer letter runs are not segmented (bounded time on pathological input; the subword model still covers them).
MAX_WORD_CHARS = 64
#: Entries kept in the per-tokenizer chunk -> ids cache.
CACHE_SIZE = 1 << 18


@runtime_checkable
class Segmenter(Protocol):
    """What ``morph`` needs from a morphological segmenter.

    ``segment(word)`` must return morphs that join to ``word``. To be saved with the tokenizer, a
    segmenter also has ``name`` (registered with :func:`register_segmenter`), ``to_json() -> dict``
    and a classmethod ``from_json(dict)``.
    """

    def segment(self, word: str) -> list[str]: ...

    def train(self, words_with_counts: Iterable[tuple[str, int]]) -> None: ...


SEGMENTERS: dict[str, type] = {}


def register_segmenter(cls: type) -> type:
    """Class decorator: make a segmenter loadable from a saved ``morph`` tokenizer by its ``name``."""
    SEGMENTERS[cls.name] = cls
    return cls


@register_segmenter
class DictSegmenter:
    """A fixed word -> morphs table (words not in it stay whole); e.g. the output of an analyzer.

    >>> DictSegmenter({"cats": ["cat", "s"]}).segment("cats"), DictSegmenter({}).segment("dog")
    (['cat', 's'], ['dog'])
    """

    name = "dict"

    def __init__(self, table: Mapping[str, Sequence[str]] | None = None):
        self.table = {w: list(m) for w, m in (table or {}).items()}

    def segment(self, word: str) -> list[str]:
        return list(self.table.get(word, (word,)))

    def train(self, words_with_counts: Iterable[tuple[str, int]]) -> None:
        """Nothing to learn."""

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table}

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> "DictSegmenter":
        return cls(state["table"])


def _dampen(count: int, how: str) -> int:
    """Count dampening for Morfessor training: ``log`` -> round(log2(c + 1)), ``ones`` -> 1, ``none`` -> c."""
    if how == "log":
        return max(1, int(round(math.log2(count + 1))))
    if how == "ones":
        return 1
    return count


@register_segmenter
@dataclass
class MorfessorSegmenter:
    """Morfessor Baseline (Creutz & Lagus 2007; ``morfessor`` package), unsupervised.

    Trained on the ``max_types`` most frequent word types with dampened counts (training
    cost grows with types, and log counts give linguistically better morphs). Words seen in
    training keep their trained analysis; others get Viterbi segmentation. Saved as JSON of
    the trained analyses, from which Morfessor's lexicon (and so every Viterbi result) is rebuilt.
    """

    name = "morfessor"
    max_types: int = 20000  # most frequent word types trained on
    dampening: str = "log"  # "log", "ones" or "none" (Morfessor's count modifiers)
    corpusweight: float = 1.0  # Morfessor's α: weight of the corpus cost against the lexicon cost
    finish_threshold: float = 0.005  # stop when the cost improves less than this share per epoch
    seed: int = 0  # Morfessor shuffles words with the `random` module
    trained: bool = False  # True after train() (even on a corpus without words)
    analyses: dict[str, list[str]] = field(default_factory=dict)  # trained word -> morphs
    counts: dict[str, int] = field(default_factory=dict)  # trained word -> dampened count
    _model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.dampening not in ("log", "ones", "none"):
            raise ConfigError(f"dampening={self.dampening!r}; pass 'log', 'ones' or 'none'")
        if self.max_types < 1:
            raise ConfigError(f"max_types={self.max_types}; pass a positive number of word types")
        if self.analyses and self._model is None:
            self._rebuild()

    def _new_model(self):
        morfessor = require("morfessor", extra="morph", feature="the morph tokenizer")
        return morfessor.BaselineModel(corpusweight=self.corpusweight)

    def _rebuild(self) -> None:
        self._model = self._new_model()
        self._model.load_segmentations((self.counts[w], w, tuple(m)) for w, m in self.analyses.items())

    def train(self, words_with_counts: Iterable[tuple[str, int]]) -> None:
        top = sorted(words_with_counts, key=lambda wc: (-wc[1], wc[0]))[: self.max_types]
        model = self._new_model()  # raises DependencyError without morfessor
        from morfessor import utils as morfessor_utils

        self.trained = True
        if not top:  # a corpus without letters: every word stays whole
            self.analyses, self.counts, self._model = {}, {}, None
            return
        state, shown = random.getstate(), morfessor_utils.show_progress_bar
        random.seed(self.seed)
        morfessor_utils.show_progress_bar = False
        try:
            model.load_data([(_dampen(c, self.dampening), w) for w, c in top])
            model.train_batch(finish_threshold=self.finish_threshold)
        finally:
            random.setstate(state)
            morfessor_utils.show_progress_bar = shown
        self.counts = {w: _dampen(c, self.dampening) for w, c in top}
        self.analyses = {w: list(model.segment(w)) for w, _ in top}
        self._model = model

    def segment(self, word: str) -> list[str]:
        if word in self.analyses:
            return list(self.analyses[word])
        if self._model is None:
            if self.trained:
                return [word]
            raise TokenizerError("MorfessorSegmenter is not trained; call train() or load a saved one")
        return list(self._model.viterbi_segment(word)[0])

    def to_json(self) -> dict[str, Any]:
        keys = ("max_types", "dampening", "corpusweight", "finish_threshold", "seed", "trained", "analyses", "counts")
        return {k: getattr(self, k) for k in keys}

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> "MorfessorSegmenter":
        return cls(**state)


def _count_chunks(corpus: Any, cfg: SpmTrainConfig) -> tuple[Counter, Counter, Counter]:
    """Counts of words, of words that follow a space, and of the runs between words, over the corpus."""
    words: Counter[str] = Counter()  # word -> count
    spaced: Counter[str] = Counter()  # word that follows a space -> count
    other: Counter[str] = Counter()  # non-word chunk -> count
    from tqdm import tqdm

    bar = tqdm(desc="morph: counting words", unit=" lines", disable=not show_progress(cfg.progress), delay=DELAY_S)
    for text in _corpus_texts(corpus, cfg):
        bar.update()
        pos = 0
        for m in WORD_RE.finditer(text):
            if m.start() > pos:
                other[text[pos : m.start()]] += 1
            (spaced if m.group(1) else words)[m.group(2)] += 1
            pos = m.end()
        if pos < len(text):
            other[text[pos:]] += 1
    bar.close()
    return words, spaced, other


def check_morph_vocab_size(vocab_size: int | None, words: Counter, spaced: Counter, other: Counter, cfg: SpmTrainConfig) -> None:
    """Refuse a vocab size the subword model cannot reach, before any training.

    sentencepiece's seed pieces are the characters and the substrings (2..``max_piece_length``
    characters) that occur at least twice in its input (``unigram_model_trainer.cc``: repeated
    substrings of the suffix array). The morph chunks it is given are substrings of the words,
    spaced words and runs between words counted here, so pieces + 256 byte tokens + specials
    bound the vocabulary. Counting stops once the bound reaches ``vocab_size``.
    """
    if vocab_size is None:
        return
    fixed = (256 if cfg.byte_fallback else 0) + len(cfg.specials())
    once: set[str] = set()
    pieces: set[str] = set()  # characters, and substrings seen twice
    longest = cfg.max_piece_length
    for src, prefix in ((words, ""), (spaced, " "), (other, "")):
        for w in src:
            s = prefix + w
            pieces.update(s)
            for i in range(len(s) - 1):
                for k in range(i + 2, min(i + longest, len(s)) + 1):
                    sub = s[i:k]
                    if sub in once:
                        pieces.add(sub)
                    else:
                        once.add(sub)
            if len(pieces) + fixed >= vocab_size:
                return
    bound = len(pieces) + fixed
    raise VocabSizeError(
        f"morph: vocab size {vocab_size} is more than this corpus can fill: at most {bound} tokens ({len(pieces)} "
        f"characters and repeated substrings + {fixed} byte and special tokens); pass a vocab size <= {bound} "
        "or a larger corpus"
    )


def _named_segmenter(name: Any, options: Mapping[str, Any]) -> Segmenter:
    """A fresh registered segmenter by name (the ``analyzer`` option), built from ``segmenter_options``.

    >>> type(_named_segmenter("morfessor", {"max_types": 10})).__name__
    'MorfessorSegmenter'
    """
    klass = SEGMENTERS.get(name) if isinstance(name, str) else None
    if klass is None:
        raise ConfigError(f"analyzer={name!r} is not known; pass one of {', '.join(sorted(SEGMENTERS))}", param="analyzer")
    try:
        return klass(**options)
    except TypeError as e:
        raise ConfigError(f"analyzer {name!r}: segmenter_options {dict(options)} do not fit it ({e})") from e


def morph_chunks(text: str, segment: Callable[[str], list[str]]) -> Iterator[str]:
    """Cut ``text`` into chunks whose concatenation is ``text``: ``" " + m1, m2, ...`` per word, other runs whole."""
    pos = 0
    for m in WORD_RE.finditer(text):
        if m.start() > pos:
            yield text[pos : m.start()]
        space, word = m.group(1), m.group(2)
        morphs = segment(word) if len(word) <= MAX_WORD_CHARS else [word]
        if "".join(morphs) != word or not all(morphs):
            raise TokenizerError(
                f"segmenter returned {morphs!r} for {word!r}; morphs must be non-empty and join to the word"
            )
        yield space + morphs[0]
        yield from morphs[1:]
        pos = m.end()
    if pos < len(text):
        yield text[pos:]


def _units(text: str) -> list[str]:
    """``text`` cut into words (with their leading space) and the runs between them, as WORD_RE cuts it.

    >>> _units("The unhappiness, 42x  y")
    ['The', ' unhappiness', ', 42', 'x', ' ', ' y']
    """
    return UNIT_RE.findall(text)


@register("morph")
class MorphTokenizer(Tokenizer):
    """Segmenter + sentencepiece subword model; ids and vocab are the subword model's.

    Args:
        segmenter: the trained segmenter.
        subword: the sentencepiece model over morph chunks.
        options: stored in ``tokembed.json`` (includes training times and the segmenter's share).
    """

    def __init__(self, segmenter: Segmenter, subword: SentencePieceTokenizer, *, options: Mapping[str, Any] | None = None):
        self.segmenter = segmenter
        self.subword = subword
        self.vocab = subword.vocab
        self.lossless = subword.lossless
        self.options = dict(options or {})
        self._seg_cache: dict[str, list[str]] = {}
        self._ids_cache: dict[str, list[int]] = {}

    @property
    def fingerprint(self) -> str:
        """The vocab fingerprint, extended by the segmenter's ``fingerprint_tag`` when it has one (``kiwi``): the
        same pieces cut by another analyzer give other ids. Morfessor has none, so its fingerprints are unchanged."""
        tag = getattr(self.segmenter, "fingerprint_tag", "")
        return hashlib.sha256(f"{self.vocab.fingerprint}|analyzer={tag}".encode()).hexdigest() if tag else self.vocab.fingerprint

    def _segment(self, word: str) -> list[str]:
        morphs = self._seg_cache.get(word)
        if morphs is None:
            morphs = self.segmenter.segment(word)
            if len(self._seg_cache) < CACHE_SIZE:
                self._seg_cache[word] = morphs
        return morphs

    def chunks(self, text: str) -> list[str]:
        """The chunks the subword model sees (morphs, with a word's leading space on its first morph)."""
        return list(morph_chunks(text, self._segment))

    def _encode_ordinary(self, text: str, **sampling: Any) -> list[int]:
        if sampling:
            samp = self.subword._sampling_args(dict(sampling))
            return [i for ids in self.subword._encode_chunks(self.chunks(text), samp) for i in ids]
        units = _units(text)
        found = self._encode_units(units)
        cache = self._ids_cache
        return [i for u in units for i in (found[u] if u in found else cache[u])]

    def _encode_ordinary_batch(self, texts: Sequence[str]) -> list[list[int]]:
        per_text = [_units(t) for t in texts]
        found = self._encode_units([u for units in per_text for u in units], threads=self.subword._threads)
        cache = self._ids_cache
        return [[i for u in units for i in (found[u] if u in found else cache[u])] for units in per_text]

    def _encode_units(self, units: list[str], threads: int = 1) -> dict[str, list[int]]:
        """Fast path: ids per unit (a word with its space, or the text between words), cached; one
        engine call for all uncached units. The reference is :meth:`_encode_reference` (tested equal)."""
        cache = self._ids_cache
        todo = [u for u in dict.fromkeys(units) if u not in cache]
        found: dict[str, list[int]] = {}
        if todo:
            spans = [self.chunks(u) for u in todo]  # the chunks of a unit are exactly morph_chunks(unit)
            flat = self.subword._encode_chunks([c for cs in spans for c in cs], None, threads)
            k = 0
            for u, cs in zip(todo, spans):
                found[u] = [i for ids in flat[k : k + len(cs)] for i in ids]
                k += len(cs)
            if len(cache) < CACHE_SIZE:
                cache.update(found)
        return found

    def _encode_reference(self, text: str) -> list[int]:
        """Slow path: every chunk encoded on its own, no cache."""
        return [i for c in self.chunks(text) for i in self.subword._encode_chunks([c])[0]]

    def _ordinary_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """The subword model's offsets within each chunk, shifted by the chunk's place (chunks join to ``text``)."""
        chunks = self.chunks(text)
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        pos = 0
        for c, (c_ids, c_offsets) in zip(chunks, self.subword._offsets_chunks(chunks) if chunks else []):
            ids.extend(c_ids)
            offsets.extend((a + pos, b + pos) for a, b in c_offsets)
            pos += len(c)
        return ids, offsets

    def _token_bytes(self, i: int) -> bytes:
        return self.subword._token_bytes(i)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.subword._decode(ids)

    def _save_engine(self, folder: Path) -> None:
        self.subword._save_engine(folder)
        name = getattr(self.segmenter, "name", None)
        if name not in SEGMENTERS or not hasattr(self.segmenter, "to_json"):
            raise TokenizerError(
                f"cannot save segmenter {type(self.segmenter).__name__}: give it a `name`, `to_json()` and "
                "`from_json()` and decorate its class with @register_segmenter"
            )
        write_json(folder / SEGMENTER_FILE, {"name": name, "state": self.segmenter.to_json()})

    @classmethod
    def _load(cls, folder: Path, meta: dict[str, Any]) -> "MorphTokenizer":
        subword = SentencePieceTokenizer._load(folder, {**meta, "options": meta.get("options", {}).get("subword_options", {})})
        path = folder / SEGMENTER_FILE
        blob = read_json(path)
        if not isinstance(blob, dict) or "name" not in blob or "state" not in blob:
            raise TokenizerFileError(f"{path}: expected {{'name': ..., 'state': ...}}; the tokenizer folder is damaged")
        klass = SEGMENTERS.get(blob["name"])
        if klass is None:
            raise TokenizerFileError(
                f"{path}: segmenter {blob['name']!r} is not registered (known: {sorted(SEGMENTERS)}); "
                "import the module that defines it (decorated with @register_segmenter) before loading"
            )
        try:
            segmenter = klass.from_json(blob["state"])
        except (TypeError, KeyError, ValueError) as e:
            raise TokenizerFileError(f"{path}: bad {blob['name']} segmenter state ({e})") from e
        return cls(segmenter, subword, options=meta.get("options", {}))

    @classmethod
    def train(cls, corpus: Any = None, vocab_size: int | None = None, **opts: Any) -> "MorphTokenizer":
        """Train the segmenter on the corpus's word counts, then the subword model on morph-chunk counts.

        Options: ``segmenter`` (a Segmenter; default ``MorfessorSegmenter()``) or ``analyzer`` (a registered
        segmenter's name: ``"morfessor"``, ``"kiwi"`` for Korean, see :mod:`.analyzers`), ``subword``
        (``"unigram"`` or ``"bpe"``), ``segmenter_options`` (dict for the default segmenter),
        and every :class:`~tokembed.tokenizers.sentencepiece_engine.SpmTrainConfig` option.
        """
        subword_kind = opts.pop("subword", "unigram")
        if subword_kind not in ("unigram", "bpe"):
            raise ConfigError(f"subword={subword_kind!r}; pass 'unigram' or 'bpe'")
        segmenter = opts.pop("segmenter", None)
        seg_opts = opts.pop("segmenter_options", None) or {}
        analyzer = opts.pop("analyzer", None)  # a registered segmenter by name: morfessor, kiwi (analyzers.py), dict
        if analyzer is not None and segmenter is not None:
            raise ConfigError(f"pass segmenter= (an object) or analyzer={analyzer!r} (a name), not both")
        if segmenter is None:
            segmenter = _named_segmenter(analyzer or "morfessor", seg_opts)
        elif seg_opts:
            raise ConfigError("segmenter_options configure the default Morfessor segmenter; configure your segmenter object instead")
        if not isinstance(segmenter, Segmenter):
            raise ConfigError(f"segmenter {segmenter!r} lacks segment(word) and train(words_with_counts)")
        cfg = SpmTrainConfig.from_opts("morph", opts)

        t0 = time.perf_counter()
        words, spaced, other = _count_chunks(corpus, cfg)
        total = words + spaced
        t1 = time.perf_counter()
        check_morph_vocab_size(vocab_size, words, spaced, other, cfg)  # before the slow segmenter training
        with elapsed(f"morph: training the {getattr(segmenter, 'name', 'segmenter')} segmenter", enabled=cfg.progress):
            segmenter.train([(w, n) for w, n in total.items() if len(w) <= MAX_WORD_CHARS])
        t2 = time.perf_counter()
        chunks: Counter[str] = Counter(other)
        for src, space in ((words, ""), (spaced, " ")):
            for w, n in src.items():
                ms = segmenter.segment(w) if len(w) <= MAX_WORD_CHARS else [w]
                if "".join(ms) != w:
                    raise TokenizerError(f"segmenter returned {ms!r} for {w!r}; morphs must join to the word")
                chunks[space + ms[0]] += n
                for mm in ms[1:]:
                    chunks[mm] += n
        t3 = time.perf_counter()
        limit = cfg.max_sentence_length // 4
        rows = (
            f"{piece[k : k + limit]}\t{n}"
            for c, n in sorted(chunks.items())  # sorted: the same rows in the same order every run
            for piece in c.split("\t")  # tsv rows cannot hold a tab; tabs fall back to byte tokens
            if piece
            for k in range(0, len(piece), limit)
        )
        sub_opts = dict(opts)
        sub_opts.pop("alpha", None)  # language smoothing was applied while counting
        subword = SentencePieceTokenizer._train_spm(subword_kind, None, vocab_size, sub_opts, texts=rows, tsv=True)
        t4 = time.perf_counter()
        total_s = t4 - t0
        options = {
            "subword": subword_kind,
            "segmenter": getattr(segmenter, "name", type(segmenter).__name__),
            "subword_options": subword.options,
            "timing_s": {
                "count": round(t1 - t0, 3),
                "segmenter_train": round(t2 - t1, 3),
                "segment_words": round(t3 - t2, 3),
                "subword_train": round(t4 - t3, 3),
                "total": round(total_s, 3),
            },
            # the benchmark reports this: share of training time spent in the segmenter (train + segmenting words)
            "segmenter_share": round((t3 - t1) / total_s, 4) if total_s > 0 else 0.0,
            "word_types": len(total),
        }
        return cls(segmenter, subword, options=options)
