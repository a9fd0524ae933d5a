"""Pre-tokenization regexes: the named patterns (``gpt2``, ``cl100k``) and the check of user patterns.

Byte-level BPE splits text with a regex before merging (:mod:`.bytebpe`, rank files in
:mod:`.formats`, any ``tokenizer.json`` with a ``Split`` pre-tokenizer). Unlike the named
patterns, a user's regex can be invalid, or *catastrophic*: a quantified group whose body is
itself unboundedly quantified, such as ``(a+)+$``, backtracks exponentially; Oniguruma (HF
``tokenizers``) then gives up with a Rust panic on some texts. :func:`resolve_pattern` refuses
both before any engine sees the pattern, with a :class:`~tokembed.errors.ConfigError`.

>>> resolve_pattern("gpt2") == PATTERNS["gpt2"]
True
>>> catastrophic_group(r"(a+)+$"), catastrophic_group(r"(?:\\w+\\s)*x"), catastrophic_group(PATTERNS["cl100k"])
('(a+)+', '(?:\\\\w+\\\\s)*', None)
"""

from __future__ import annotations

import re

from ..errors import ConfigError

__all__ = ["PATTERNS", "resolve_pattern", "catastrophic_group"]

#: Pre-tokenization regexes. ``gpt2``: Radford et al. 2019 (openai/gpt-2 encoder.py, also tiktoken's
#: ``gpt2``); ``cl100k``: tiktoken's ``cl100k_base`` (digits in groups of 1-3, case-insensitive
#: contractions, punctuation keeps a following newline). Written without possessive quantifiers so
#: Oniguruma (HF ``tokenizers``), fancy-regex (``tiktoken``) and Python ``regex`` read them alike.
PATTERNS: dict[str, str] = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "cl100k": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
    ),
}

_UNBOUNDED = re.compile(r"[+*]|\{\d*,\}")  # a quantifier with no upper bound
_GROUP_FLAGS = re.compile(r"^\?(?:[:=!>|]|<[=!]|<\w+>|P<\w+>|[a-zA-Z-]+:)")  # (?:  (?=  (?<name>  (?i:


def _structure(pattern: str) -> tuple[str, list[int]]:
    """The pattern with each escape and character class replaced by one ``x`` (quantifier and
    bracket characters are literal inside them), and where each of its characters starts in ``pattern``."""
    out: list[str] = []
    starts: list[int] = []
    i, n = 0, len(pattern)
    while i < n:
        starts.append(i)
        c = pattern[i]
        if c == "\\":
            i += 2
            if pattern[i - 1 : i] in ("p", "P", "x", "u") and pattern[i : i + 1] == "{":  # \p{L}, \x{41}
                i = pattern.find("}", i) + 1 or n
            out.append("x")
        elif c == "[":
            i += 1
            i += pattern[i : i + 1] == "^"
            i += pattern[i : i + 1] == "]"  # a leading ] is literal
            depth = 1
            while i < n and depth:
                if pattern[i] == "\\":
                    i += 2
                    continue
                depth += pattern[i] == "[" and pattern[i + 1 : i + 2] == ":"
                depth -= pattern[i] == "]"
                i += 1
            out.append("x")
        else:
            out.append(c)
            i += 1
    starts.append(n)
    return "".join(out), starts


def catastrophic_group(pattern: str) -> str | None:
    """The first group that is unboundedly quantified and holds an unbounded quantifier itself
    (nested quantifiers: exponential backtracking), else None. A syntactic check: it may miss
    exotic cases (overlapping alternatives), and never flags a pattern without nested quantifiers."""
    s, starts = _structure(pattern)
    opens: list[int] = []
    for k, c in enumerate(s):
        if c == "(":
            opens.append(k)
        elif c == ")" and opens:
            start = opens.pop()
            body = _GROUP_FLAGS.sub("", s[start + 1 : k], count=1)
            after = _UNBOUNDED.match(s, k + 1)
            if after and _UNBOUNDED.search(body):
                return pattern[starts[start] : starts[after.end()]]
    return None


def resolve_pattern(pattern: object, *, what: str = "pattern") -> str:
    """A named pattern's regex, or ``pattern`` itself once checked: a non-empty string that Python's
    ``regex`` module compiles and without nested unbounded quantifiers; else a ConfigError."""
    import regex

    resolved = PATTERNS.get(pattern, pattern) if isinstance(pattern, str) else pattern
    if not isinstance(resolved, str) or not resolved:
        raise ConfigError(f"{what}={pattern!r}; pass 'cl100k', 'gpt2' or a regex string")
    try:
        regex.compile(resolved)
    except regex.error as e:
        raise ConfigError(f"{what} {resolved!r} does not compile ({e}); pass 'cl100k', 'gpt2' or a valid regex") from None
    group = catastrophic_group(resolved)
    if group is not None:
        raise ConfigError(
            f"{what} {resolved!r} nests unbounded quantifiers in {group!r}, which backtracks exponentially "
            "(the engine aborts on some texts); quantify the inner part once, e.g. 'a+' instead of '(a+)+'"
        )
    return resolved
