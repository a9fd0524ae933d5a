"""Vocab: the id <-> token table of a tokenizer, its special tokens and its fingerprint.

A Vocab is pure data; it knows nothing of how text is split. The fingerprint is the
sha256 over the id -> token table and the special tokens, so two tokenizers with the same
fingerprint map every id to the same token string (index stability): a checkpoint trained
with one can be used with the other.

>>> v = Vocab(["<unk>", "a", "b", "ab"], special_tokens={"unk": "<unk>"})
>>> v["ab"], v.token(1), len(v)
(3, 'a', 4)
>>> v.fingerprint[:12]
'5ef61a0d8f73'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping

from ..errors import TokenNotFoundError, TokenizerError

__all__ = ["Vocab", "fingerprint_of"]


def fingerprint_of(tokens: Iterable[str], special_tokens: Mapping[str, str] | None = None) -> str:
    """sha256 (hex) over the id->token table and the special tokens (role -> token string).

    Canonical form: JSON of ``{"tokens": [...], "special": {...sorted}}`` with no spaces,
    UTF-8 (lone surrogates escaped), so it does not depend on the Python version.
    """
    payload = {"tokens": list(tokens), "special": dict(sorted((special_tokens or {}).items()))}
    blob = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


class Vocab:
    """id <-> token table with named special tokens (roles such as ``unk``, ``bos``, ``eos``, ``pad``).

    Args:
        tokens: token strings in id order (id ``i`` is ``tokens[i]``); must be unique.
        special_tokens: role -> token string; each string must be in ``tokens``.
    """

    __slots__ = ("_tokens", "_ids", "special_tokens", "_fingerprint")

    def __init__(self, tokens: Iterable[str], *, special_tokens: Mapping[str, str] | None = None):
        self._tokens: list[str] = list(tokens)
        self._ids: dict[str, int] = {}
        for i, t in enumerate(self._tokens):
            if not isinstance(t, str):
                raise TokenizerError(f"vocab entry {i} is {t!r}, not a string; every token must be a str")
            if t in self._ids:
                raise TokenizerError(
                    f"token {t!r} appears twice in the vocab (ids {self._ids[t]} and {i}); tokens must be unique"
                )
            self._ids[t] = i
        self.special_tokens: dict[str, str] = dict(special_tokens or {})
        for role, t in self.special_tokens.items():
            if t not in self._ids:
                raise TokenizerError(f"special token {role}={t!r} is not in the vocab; add it to the token list")
        self._fingerprint: str | None = None

    # -- lookups -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._tokens)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __getitem__(self, token: str) -> int:
        """Id of ``token``; raises :class:`TokenNotFoundError` with close spellings."""
        try:
            return self._ids[token]
        except KeyError:
            raise TokenNotFoundError(self._not_found_message(token)) from None

    def get(self, token: str, default: int | None = None) -> int | None:
        return self._ids.get(token, default)

    def token(self, i: int) -> str:
        if not 0 <= i < len(self._tokens):
            raise TokenNotFoundError(f"id {i} is outside the vocab [0, {len(self._tokens)}); pass an id below {len(self._tokens)}")
        return self._tokens[i]

    @property
    def tokens(self) -> list[str]:
        """Token strings in id order (a copy)."""
        return list(self._tokens)

    def special_id(self, role: str) -> int | None:
        """Id of the special token with ``role`` (e.g. ``"unk"``), or None."""
        t = self.special_tokens.get(role)
        return None if t is None else self._ids[t]

    @property
    def special_ids(self) -> set[int]:
        return {self._ids[t] for t in self.special_tokens.values()}

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(self._tokens, self.special_tokens)
        return self._fingerprint

    def suggest(self, token: str, n: int = 3) -> list[str]:
        """Close spellings of ``token`` that are in the vocab (difflib ratio)."""
        import difflib

        return difflib.get_close_matches(token, self._tokens, n=n, cutoff=0.6)

    def _not_found_message(self, token: str) -> str:
        close = self.suggest(token)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; check the spelling or the tokenizer"
        return f"token {token!r} is not in the vocab of {len(self)} tokens{hint}"

    # -- (de)serialisation ---------------------------------------------------------
    def to_dict(self) -> dict:
        return {"tokens": self._tokens, "special_tokens": self.special_tokens, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Vocab":
        v = cls(d["tokens"], special_tokens=d.get("special_tokens"))
        want = d.get("fingerprint")
        if want is not None and want != v.fingerprint:
            raise TokenizerError(
                f"vocab fingerprint {v.fingerprint[:12]} differs from the stored {str(want)[:12]}; the file was edited or is corrupt"
            )
        return v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, special={self.special_tokens}, fingerprint={self.fingerprint[:12]})"
