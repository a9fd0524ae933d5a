"""Morphological analyzers for the ``morph`` kind, chosen by name: ``analyzer="morfessor"`` (default) or ``"kiwi"``.

Unlike :mod:`tokembed.tokenizers.morph`, which defines what a segmenter must do (the
:class:`~tokembed.tokenizers.morph.Segmenter` protocol) and the tokenizer built on one, this
module holds the analyzers a user picks by name (``tokembed tokenizer train --kind morph
--analyzer kiwi``) and the one rule that keeps an analyzer lossless: **cut the original
word at the analyzer's character offsets, never rebuild it from the analysed forms.**
Kiwi's forms are normalised (``했`` is analysed as ``하`` + ``었``, both spanning the one
syllable), so joining forms would change the text; cutting at ``start``/``start + len``
cannot.

- ``morfessor``: Morfessor Baseline, unsupervised, trained on the corpus (any language).
- ``kiwi``: `kiwipiepy <https://github.com/bab2min/kiwipiepy>`_, the maintained Korean
  morphological analyzer (pretrained; nothing is learned from the corpus). Optional extra
  ``pip install 'tokembed[ko]'``; imported lazily.

Known behaviour (tested): cuts fall only between code points. A composed Hangul syllable
(``갔``) is never split, even when Kiwi analyses it as two morphemes (``가`` + ``았``).
Text in decomposed jamo (NFD, U+1100..U+11FF) stays lossless too; Kiwi reports offsets in
the original code points, so a cut may fall between the jamo of one syllable when Kiwi
puts a morpheme boundary inside it.

>>> morphs_from_spans("했다", [(0, 1), (0, 1), (1, 1)])  # 하/VV 었/EP 다/EF
['했', '다']
>>> morphs_from_spans("API를", [(0, 3), (3, 1)])
['API', '를']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import metrics
from ..errors import ConfigError, require
from .base import Tokenizer
from .morph import CACHE_SIZE, SEGMENTERS, MorfessorSegmenter, Segmenter, morph_chunks, register_segmenter

__all__ = ["ANALYZERS", "KiwiSegmenter", "morphs_from_spans", "letter_cuts", "boundary_agreement", "KO_EXTRA"]

#: The pip extra that installs kiwipiepy (named in the error when it is missing).
KO_EXTRA = "ko"
#: Kiwi instances by model type: loading the model takes about a second and 100 MB, so it is done once per process.
_KIWI: dict[str | None, Any] = {}


def morphs_from_spans(word: str, spans: Iterable[tuple[int, int]]) -> list[str]:
    """Cut ``word`` at every morpheme start and end (``(start, length)`` in code points) strictly inside it.

    The pieces always join to ``word``; overlapping or out-of-range spans only add or drop cuts.

    >>> morphs_from_spans("학교에", [(0, 2), (2, 1)]), morphs_from_spans("abc", [(-1, 9)])
    (['학교', '에'], ['abc'])
    """
    n = len(word)
    cuts = sorted({p for s, k in spans for p in (s, s + k) if 0 < p < n})
    bounds = [0, *cuts, n]
    return [word[a:b] for a, b in zip(bounds, bounds[1:])]


def _kiwi_module():
    return require("kiwipiepy", extra=KO_EXTRA, feature="the kiwi analyzer (Korean morphology)")


@register_segmenter
@dataclass
class KiwiSegmenter:
    """Korean morphemes from kiwipiepy, cut from the original word (lossless).

    Each word (a run of letters, as ``morph`` cuts text) is analysed on its own, so a word
    always gets the same morphs and the tokenizer's per-word cache stays exact. Kiwi is
    pretrained: :meth:`train` learns nothing, it only analyses the corpus's word types in one
    batched call (Kiwi's worker threads) so that the segmentation pass of training is fast.
    """

    name = "kiwi"
    model_type: str | None = None  # kiwipiepy's model ("cong", "knlm", ...); None = kiwipiepy's default
    kiwipiepy_version: str = ""  # the kiwipiepy version the tokenizer was trained with (informational)
    # word -> morphs, not saved
    _cache: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mod = _kiwi_module()  # a missing extra fails here, at train or load time, not at the first encode
        if not self.kiwipiepy_version:
            self.kiwipiepy_version = getattr(mod, "__version__", "")
        if self.model_type is not None and not isinstance(self.model_type, str):
            raise ConfigError(f"model_type={self.model_type!r}; pass a kiwipiepy model name such as 'cong' or 'knlm'")

    @property
    def fingerprint_tag(self) -> str:
        """What the tokenizer fingerprint adds for this analyzer (the same vocab cut by another gives other ids)."""
        return f"kiwi:{self.model_type or 'default'}"

    def _kiwi(self):
        kiwi = _KIWI.get(self.model_type)
        if kiwi is None:
            mod = _kiwi_module()
            try:
                kiwi = mod.Kiwi(model_type=self.model_type) if self.model_type else mod.Kiwi()
            except ValueError as e:  # kiwipiepy names the model types it knows
                raise ConfigError(
                    f"kiwi analyzer: model_type={self.model_type!r} is not a kiwipiepy model ({e})"
                ) from e
            _KIWI[self.model_type] = kiwi
        return kiwi

    def segment(self, word: str) -> list[str]:
        morphs = self._cache.get(word)
        if morphs is None:
            tokens = self._kiwi().tokenize(word)
            morphs = morphs_from_spans(word, ((t.start, t.len) for t in tokens))
        return list(morphs)

    def spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Kiwi's morphemes of each text as ``(start, length)`` in code points, in one batched call."""
        return [[(t.start, t.len) for t in tokens] for tokens in self._kiwi().tokenize(list(texts))]

    def segment_many(self, words: Sequence[str]) -> list[list[str]]:
        """``[segment(w) for w in words]`` in one batched kiwipiepy call."""
        return [morphs_from_spans(w, sp) for w, sp in zip(words, self.spans(words))]

    def train(self, words_with_counts: Iterable[tuple[str, int]]) -> None:
        """Nothing to learn; pre-analyses the corpus's most frequent word types (at most the tokenizer's
        cache size) in one batch, kept in memory, not saved. The others are analysed when met."""
        top = sorted(words_with_counts, key=lambda wc: (-wc[1], wc[0]))[:CACHE_SIZE]
        words = [w for w, _ in top if w not in self._cache]
        if words:
            self._cache.update(zip(words, self.segment_many(words)))

    def to_json(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "kiwipiepy_version": self.kiwipiepy_version}

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> "KiwiSegmenter":
        return cls(model_type=state.get("model_type"), kiwipiepy_version=state.get("kiwipiepy_version", ""))


#: Analyzers a user can name (``analyzer=`` / ``--analyzer``): registered segmenters built from keyword options
#: (``segmenter_options``). ``dict`` (a fixed table; empty = no segmentation) is registered too, for saved tokenizers.
ANALYZERS: dict[str, type] = {"morfessor": MorfessorSegmenter, "kiwi": KiwiSegmenter}
assert set(ANALYZERS) <= set(SEGMENTERS)  # every named analyzer can be saved and loaded


def letter_cuts(text: str, spans: Iterable[tuple[int, int]]) -> set[int]:
    """The span starts and ends that fall between two letters: the morpheme boundaries inside words
    (cuts at spaces and punctuation are left out: every tokenizer makes those).

    >>> sorted(letter_cuts("학교에 갔다.", [(0, 2), (2, 1), (4, 1), (4, 1), (5, 1), (6, 1)]))
    [2, 5]
    """
    n = len(text)
    return {p for s, k in spans for p in (s, s + k) if 0 < p < n and text[p - 1].isalpha() and text[p].isalpha()}


def _segmenter_spans(segmenter: Segmenter, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    """The analyzer's morphemes of each text: on the whole text when it can (Kiwi, in context), else word by word."""
    if hasattr(segmenter, "spans"):
        return segmenter.spans(texts)
    out = []
    for text in texts:
        pos, spans = 0, []
        for chunk in morph_chunks(text, segmenter.segment):
            spans.append((pos, len(chunk)))
            pos += len(chunk)
        out.append(spans)
    return out


def boundary_agreement(tok: Tokenizer, texts: Sequence[str], analyzer: Segmenter) -> tuple[float, float]:
    """Precision and recall of the tokenizer's cuts inside words against the analyzer's morpheme boundaries
    (:func:`letter_cuts` of both), pooled over ``texts``. Precision: share of the tokenizer's cuts that are
    morpheme boundaries; recall: share of morpheme boundaries the tokenizer cuts at."""
    predicted: set[tuple[int, int]] = set()
    reference: set[tuple[int, int]] = set()
    for k, (text, spans) in enumerate(zip(texts, _segmenter_spans(analyzer, texts))):
        _, offsets = tok.encode_with_offsets(text)
        predicted.update((k, p) for p in letter_cuts(text, ((a, b - a) for a, b in offsets)))
        reference.update((k, p) for p in letter_cuts(text, spans))
    return metrics.boundary_precision_recall(predicted, reference)
