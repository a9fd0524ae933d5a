"""Cross-language parity of tokenizers: premium, parity, per-script coverage and byte/UNK fallback per language.

Unlike :mod:`tokembed.tokenizers.stats`, which counts each language on its own (fertility,
bytes/token), this module puts the languages of a ``LANG=PATH`` corpus side by side against
a *reference* language, as Petrov et al. 2023 ("Language Model Tokenizers Introduce
Unfairness Between Languages") do:

- **premium**: tokens per UTF-8 byte, or tokens per aligned sentence when the languages'
  texts are parallel (line i of every language is a translation of line i of the others);
- **parity**: a language's premium over the reference's (1.0 = parity; 2.0 = the language
  needs twice the tokens for the same content);
- **coverage** per Unicode script: the share of a script's characters that get a token of
  their own (not split into byte tokens, not ``[UNK]``), and **fallback**: the share of all of a
  language's characters that do not.

The definitions are in :mod:`tokembed.metrics`; this module counts. Python's ``unicodedata``
has no Script property, so :func:`script_of` reads it from the character's name.

>>> script_of("한"), script_of("a"), script_of("Ж"), script_of("東"), script_of(" ")
('Hangul', 'Latin', 'Cyrillic', 'Han', 'Common')
>>> from tokembed.tokenizers import ByteTokenizer
>>> fallback_flags(ByteTokenizer(), "aé")  # "é" is two byte tokens: it falls back
[False, True]
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .. import metrics
from ..corpus import Corpus
from ..errors import ConfigError, TokembedError
from . import train_tokenizer
from .base import Tokenizer
from .stats import TokenizerStats, language_texts, tokenizer_stats

__all__ = [
    "LanguageRow",
    "compare_languages",
    "alpha_sweep",
    "parse_alphas",
    "script_of",
    "fallback_flags",
    "fallback_positions",
    "script_coverage",
    "pick_reference",
]

#: Words that open a character name without naming its script ("FULLWIDTH LATIN CAPITAL LETTER A" is Latin).
_NAME_PREFIXES = {"FULLWIDTH", "HALFWIDTH", "MATHEMATICAL", "CIRCLED", "PARENTHESIZED", "SMALL", "MODIFIER", "SQUARED"}
#: Name words that are not the script's usual name.
_SCRIPT_ALIASES = {"CJK": "Han", "IDEOGRAPHIC": "Han", "KANGXI": "Han"}


@lru_cache(maxsize=1 << 16)
def script_of(ch: str) -> str:
    """The Unicode script of a character, read from its name: letters and marks by the name's first word
    (``HANGUL SYLLABLE GA`` -> ``Hangul``), everything else (spaces, digits, punctuation, symbols) ``Common``."""
    if not unicodedata.category(ch).startswith(("L", "M")):
        return "Common"
    words = unicodedata.name(ch, "").split()
    while words and words[0] in _NAME_PREFIXES:
        words = words[1:]
    if not words:
        return "Unknown"
    return _SCRIPT_ALIASES.get(words[0], words[0].capitalize())


def fallback_flags(tok: Tokenizer, text: str) -> list[bool] | None:
    """Per character of ``text``: True when it has no token of its own (its bytes are split over several
    tokens, a token holding it is the unknown token, or no token holds it and it is not whitespace).

    Read from :meth:`Tokenizer.encode_with_offsets`; None for a tokenizer that has no offsets. The slow,
    readable reference of :func:`fallback_positions` (tested equal).
    """
    try:
        ids, offsets = tok.encode_with_offsets(text)
    except TokembedError:
        return None
    unk = tok.vocab.special_id("unk")
    holders = [0] * len(text)  # tokens whose span holds the character
    flags = [False] * len(text)
    for i, (a, b) in zip(ids, offsets):
        for k in range(a, b):
            holders[k] += 1
            if i == unk:
                flags[k] = True
    for k, ch in enumerate(text):
        if holders[k] > 1 or (holders[k] == 0 and not ch.isspace()):
            flags[k] = True
    return flags


def fallback_positions(tok: Tokenizer, text: str) -> set[int] | None:
    """The positions :func:`fallback_flags` marks, in one pass over the tokens instead of the characters.

    Offsets are non-decreasing, so a character held by two tokens is one where a token starts
    before the furthest end seen so far; a gap past that end holds characters no token covers.

    >>> from tokembed.tokenizers import ByteTokenizer
    >>> sorted(fallback_positions(ByteTokenizer(), "a한b"))
    [1]
    """
    try:
        ids, offsets = tok.encode_with_offsets(text)
    except TokembedError:
        return None
    unk = tok.vocab.special_id("unk")
    out: set[int] = set()
    reach = 0  # furthest end of the spans so far
    for i, (a, b) in zip(ids, offsets):
        if a < reach:  # shares [a, min(b, reach)) with an earlier token
            out.update(range(a, min(b, reach)))
        elif a > reach:  # nothing holds [reach, a)
            out.update(k for k in range(reach, a) if not text[k].isspace())
        if i == unk:
            out.update(range(a, b))
        reach = max(reach, b)
    out.update(k for k in range(reach, len(text)) if not text[k].isspace())
    return out


def script_coverage(tok: Tokenizer, texts: Sequence[str]) -> tuple[dict[str, tuple[int, int]], int, int] | None:
    """``({script: (covered, total)}, n_fallback, n_chars)`` over ``texts``; None without offsets."""
    chars: Counter[str] = Counter()  # character -> occurrences
    fell: Counter[str] = Counter()  # character -> occurrences without a token of its own
    for text in texts:
        positions = fallback_positions(tok, text)
        if positions is None:
            return None
        chars.update(text)
        fell.update(text[k] for k in positions)
    total: Counter[str] = Counter()
    covered: Counter[str] = Counter()
    for ch, n in chars.items():
        s = script_of(ch)
        total[s] += n
        covered[s] += n - fell[ch]
    cov = {s: (covered[s], total[s]) for s in sorted(total, key=lambda s: (-total[s], s))}
    return cov, sum(fell.values()), sum(chars.values())


@dataclass
class LanguageRow:
    """One tokenizer on one language: its :class:`TokenizerStats` and where it stands against the reference."""

    stats: TokenizerStats  # fertility, bytes/token, ... of this language
    reference: str  # the reference language
    unit: str  # "byte", or "sentence" for parallel text
    premium: float  # tokens per unit
    parity: float  # premium / the reference's premium (1.0 for the reference itself)
    fallback: float  # share of characters split into bytes or mapped to UNK (nan without offsets)
    coverage: dict[str, float] = field(default_factory=dict)  # script -> share of its characters with their own token

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.stats.to_dict(),
            "reference": self.reference,
            "unit": self.unit,
            "premium": self.premium,
            "parity": self.parity,
            "fallback": self.fallback,
            "coverage": self.coverage,
        }


def pick_reference(languages: Sequence[str], reference: str | None) -> str:
    """The reference language: ``reference`` if it is one of ``languages`` (else a ConfigError); by default
    ``en`` if present, else the first.

    >>> pick_reference(["ko", "en"], None), pick_reference(["ko", "fi"], None)
    ('en', 'ko')
    """
    if not languages:
        raise ConfigError(
            "parity needs a corpus of LANG=PATH arguments (e.g. en=en.txt ko=ko.txt); this one has no languages"
        )
    if reference is None:
        return "en" if "en" in languages else languages[0]
    if reference not in languages:
        raise ConfigError(
            f"reference language {reference!r} is not among the corpus languages {list(languages)}; pass one of them",
            param="reference",
        )
    return reference


def compare_languages(
    tokenizers: Mapping[str, Tokenizer],
    corpus: Any,
    *,
    reference: str | None = None,
    parallel: bool = False,
    max_lines: int | None = None,
) -> list[LanguageRow]:
    """One row per tokenizer and language of a ``LANG=PATH`` corpus: its stats, premium, parity, coverage.

    ``parallel=True`` counts tokens per aligned sentence (every language must have the same number of
    lines); otherwise per UTF-8 byte. ``reference`` defaults to ``en`` when present, else the first language.
    """
    texts = language_texts(corpus, max_lines=max_lines)
    ref = pick_reference([lang for lang in texts if lang is not None], reference)
    if parallel:
        counts = {lang: len(t) for lang, t in texts.items()}
        if len(set(counts.values())) > 1:
            raise ConfigError(
                f"parallel text needs the same number of non-blank lines in every language, got {counts}; "
                "align the files line by line (or pass max_lines) or compare per byte",
                param="max_lines",
            )
    rows: list[LanguageRow] = []
    for name, tok in tokenizers.items():
        stats = {lang: tokenizer_stats(tok, t, name=name, language=lang) for lang, t in texts.items()}
        prem = {
            lang: metrics.premium(n_tokens=s.n_tokens, n_units=s.n_lines if parallel else s.n_bytes)
            for lang, s in stats.items()
        }
        for lang, s in stats.items():
            cov = script_coverage(tok, texts[lang])
            rows.append(
                LanguageRow(
                    stats=s,
                    reference=ref,
                    unit="sentence" if parallel else "byte",
                    premium=prem[lang],
                    parity=metrics.parity(premium_lang=prem[lang], premium_reference=prem[ref]),
                    fallback=float("nan") if cov is None else metrics.fallback_share(n_fallback=cov[1], n_chars=cov[2]),
                    coverage={} if cov is None else {sc: c / n for sc, (c, n) in cov[0].items()},
                )
            )
    return rows


def parse_alphas(spec: str) -> list[float]:
    """``"0.1,0.3,1"`` -> ``[0.1, 0.3, 1.0]``; each α of the language sampling must lie in [0, 1].

    >>> parse_alphas("0.1, 0.3,1")
    [0.1, 0.3, 1.0]
    """
    out = []
    for item in str(spec).split(","):
        try:
            a = float(item)
        except ValueError:
            raise ConfigError(
                f"alpha {item.strip()!r} in {spec!r} is not a number; pass e.g. 0.1,0.3,0.5,1.0", param="alpha"
            ) from None
        if not 0.0 <= a <= 1.0:
            raise ConfigError(
                f"alpha {a} in {spec!r} is outside [0, 1] (1 = proportional to size, 0 = uniform)", param="alpha"
            )
        out.append(a)
    return out


def alpha_sweep(
    kind: str, corpus: Any, vocab_size: int | None, alphas: Sequence[float], **opts: Any
) -> dict[str, Tokenizer]:
    """One ``kind`` tokenizer per α of the language sampling ``p_l ∝ n_l^α``, all trained on ``corpus``,
    named ``"{kind}@alpha={α}"``; compare them with :func:`compare_languages` to see each language's fertility move."""
    if not isinstance(corpus, Corpus):
        corpus = Corpus.from_args(corpus)
    if not corpus.languages:
        raise ConfigError(
            "an alpha sweep samples languages: pass the corpus as LANG=PATH arguments (e.g. en=en.txt ko=ko.txt)"
        )
    if "alpha" in opts:
        raise ConfigError("the sweep sets alpha itself; pass the values as alphas, not as an option")
    return {f"{kind}@alpha={a:g}": train_tokenizer(kind, corpus, vocab_size, **opts, alpha=a) for a in alphas}
