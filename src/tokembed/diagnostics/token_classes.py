"""Token classes and string labels derived from the token strings alone.

The projection plots colour points by class, the probes predict these labels from the
embedding rows. Unlike :mod:`tokembed.diagnostics.frequency` nothing here needs a corpus:
every label is a function of the token string and the tokenizer's spelling conventions
(WordPiece ``##`` continuation, GPT-2 ``Ġ`` and sentencepiece ``▁`` word starts).

>>> token_class("##ing", convention="wordpiece"), token_class("Ġthe", convention="bytelevel")
('continuation', 'word-initial')
>>> token_class("42", convention="wordpiece"), token_class(",", convention="wordpiece")
('digit', 'punctuation')
>>> detect_convention(["[PAD]", "the", "##s", "##ing", "a"])
'wordpiece'
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "CLASSES",
    "LENGTH_BANDS",
    "detect_convention",
    "surface",
    "token_class",
    "token_classes",
    "string_labels",
]

#: token classes, in plotting order
CLASSES = ("word-initial", "continuation", "digit", "punctuation", "special", "other")
#: length bands of the token's surface string (characters): 1, 2-3, 4-6, 7+
LENGTH_BANDS = ((1, 1, "1"), (2, 3, "2-3"), (4, 6, "4-6"), (7, 10**9, "7+"))
_WORD_START = ("Ġ", "▁", " ")


def detect_convention(tokens: Iterable[str]) -> str:
    """Spelling convention of a vocabulary: ``wordpiece`` (``##x``), ``bytelevel`` (``Ġx``),
    ``sentencepiece`` (``▁x``) or ``words`` (whole words, e.g. word2vec)."""
    n = wp = bl = sp = 0
    for t in tokens:
        n += 1
        wp += t.startswith("##") and len(t) > 2
        bl += t.startswith("Ġ")
        sp += t.startswith("▁")
    if n == 0:
        return "words"
    best = max((wp, "wordpiece"), (bl, "bytelevel"), (sp, "sentencepiece"))
    return best[1] if best[0] > 0.02 * n else "words"


def surface(token: str, convention: str) -> str:
    """The token's text without its convention markers (``##ing`` -> ``ing``, ``Ġthe`` -> ``the``)."""
    if convention == "wordpiece" and token.startswith("##") and len(token) > 2:
        return token[2:]
    if convention in ("bytelevel", "sentencepiece") and token[:1] in _WORD_START:
        return token[1:]
    return token


def _is_punct(s: str) -> bool:
    return bool(s) and all(unicodedata.category(c)[0] in "PS" for c in s)


def token_class(token: str, *, convention: str, special: bool = False) -> str:
    """One of :data:`CLASSES` for a token string."""
    if special:
        return "special"
    s = surface(token, convention)
    if s and all(c.isdigit() for c in s):
        return "digit"
    if _is_punct(s):
        return "punctuation"
    if convention == "wordpiece":
        return "continuation" if token.startswith("##") and len(token) > 2 else ("word-initial" if s else "other")
    if convention in ("bytelevel", "sentencepiece"):
        if token[:1] in _WORD_START and s:
            return "word-initial"
        return "continuation" if s.strip() else "other"
    return "word-initial" if s.strip() else "other"


def token_classes(
    tokens: Sequence[str], *, special_ids: Iterable[int] = (), convention: str | None = None
) -> np.ndarray:
    """(V,) array of class names for every token."""
    conv = convention or detect_convention(tokens)
    sp = set(special_ids)
    return np.array([token_class(t, convention=conv, special=i in sp) for i, t in enumerate(tokens)], dtype=object)


def string_labels(
    tokens: Sequence[str], *, special_ids: Iterable[int] = (), convention: str | None = None
) -> dict[str, np.ndarray]:
    """Built-in probe labels (name -> (V,) labels), derived from the token strings.

    ``word-initial`` and ``capitalised`` are binary, ``digit`` and ``punctuation`` too,
    ``length`` is the surface length band of :data:`LENGTH_BANDS`. Special tokens get ``None``
    (left out of every probe).

    >>> {k: v.tolist() for k, v in string_labels(["The", "##s", "7", "!"], convention="wordpiece").items()}["capitalised"]
    [True, False, False, False]
    """
    conv = convention or detect_convention(tokens)
    sp = set(special_ids)
    out: dict[str, list] = {"word-initial": [], "capitalised": [], "digit": [], "punctuation": [], "length": []}
    for i, t in enumerate(tokens):
        if i in sp:
            for v in out.values():
                v.append(None)
            continue
        s = surface(t, conv)
        cls = token_class(t, convention=conv)
        out["word-initial"].append(cls == "word-initial")
        out["capitalised"].append(bool(s[:1].isupper()))
        out["digit"].append(cls == "digit")
        out["punctuation"].append(cls == "punctuation")
        n = len(s)
        out["length"].append(next(name for lo, hi, name in LENGTH_BANDS if lo <= max(n, 1) <= hi))
    return {k: np.array(v, dtype=object) for k, v in out.items()}
