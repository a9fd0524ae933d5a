"""Languages in a study: which language every document is in, through sharding, training and evaluation.

Unlike :mod:`tokembed.study.run` (which trains the grid), this module only keeps track of languages:
a study over ``en=… fi=… ko=…`` tokenizes its documents language by language (so no document
straddles two files), knows the language of every document of the train and validation shards
(the split is :func:`~tokembed.training.shards.is_validation` of the document's global index),
and from that gives each run

- bits per byte per language: the validation documents of one language, scored as their own shard;
- the training budget per language, in bytes and tokens: what the train shard holds, and the tokens
  of each language the run's :class:`~tokembed.training.shards.TokenStream` actually read as targets
  (its bytes estimated with that language's bytes per token).

>>> split_languages(["en", "en", "fi", "fi", "fi"], seed=0, val_fraction=0.5)
{'train': ['en', 'en', 'fi'], 'val': ['fi', 'fi']}
>>> split_languages(["en", "fi"], seed=0, val_fraction=0.01)  # none hashed to validation: the last one goes
{'train': ['en'], 'val': ['fi']}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..corpus import check_language_tag
from ..errors import ConfigError, EmptyCorpusError
from ..training.shards import Shard, is_validation

__all__ = ["language_documents", "split_languages", "language_shard", "language_counts", "seen_tokens",
           "budget_rows"]

def language_documents(corpus) -> tuple[list[str], list[str]] | None:
    """``(documents, language of each)`` of a ``LANG=PATH`` corpus, the languages interleaved document by
    document (en, fi, ko, en, fi, ko, ...; a language that runs out drops out), so that any prefix of a
    shard (the evaluated part of the validation split) and any region of the training stream mixes the
    languages; None for an untagged corpus. A tag that is not a language tag, or a language without a
    document, is an error naming it."""
    langs = list(getattr(corpus, "languages", []) or [])
    if not langs:
        return None
    per_lang: list[list[str]] = []
    for lang in langs:
        check_language_tag(lang, where=f"study corpus {lang}=PATH")  # a Corpus checks its tags; a duck-typed one may not
        mine = list(corpus.documents(lang))
        if not mine:
            raise EmptyCorpusError(f"corpus: language {lang!r} has no document (blank-line separated text); "
                                   f"pass text for it or drop {lang}=PATH", param="corpus")
        per_lang.append(mine)
    docs: list[str] = []
    of: list[str] = []
    for i in range(max(len(m) for m in per_lang)):
        for lang, mine in zip(langs, per_lang):
            if i < len(mine):
                docs.append(mine[i])
                of.append(lang)
    return docs, of


def split_languages(doc_langs: list[str], *, seed: int, val_fraction: float) -> dict[str, list[str]]:
    """The language of every document of the train and validation shards, in shard order (the rule of
    :func:`~tokembed.training.shards.build_shards`)."""
    out: dict[str, list[str]] = {"train": [], "val": []}
    for i, lang in enumerate(doc_langs):
        out["val" if is_validation(i, seed=seed, val_fraction=val_fraction) else "train"].append(lang)
    if val_fraction > 0 and not out["val"] and len(doc_langs) > 1:  # build_shards holds out the last document
        out["val"].append(out["train"].pop())
    return out


def _doc_spans(shard: Shard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, bytes) of every document of a shard: tokens[start:end] are its ids and its closing eos."""
    ends = shard.doc_index[:, 0]
    cum = shard.doc_index[:, 1]
    starts = np.concatenate([[1], ends[:-1]])  # after the leading eos
    nbytes = np.diff(np.concatenate([[0], cum]))
    return starts, ends, nbytes


def language_shard(shard: Shard, langs: list[str], lang: str) -> Shard:
    """The documents of ``lang`` in ``shard`` as a shard of their own: ``[eos] d_1 [eos] d_2 [eos] ...``."""
    if len(langs) != shard.n_docs:
        raise ConfigError(f"{len(langs)} document languages for a shard of {shard.n_docs} documents; rebuild the shards")
    starts, ends, nbytes = _doc_spans(shard)
    pick = [j for j, lg in enumerate(langs) if lg == lang]
    parts = [np.asarray([shard.eos_id], dtype=np.int64)] + [np.asarray(shard.tokens[starts[j]:ends[j]], dtype=np.int64)
                                                            for j in pick]
    tokens = np.concatenate(parts)
    lens = np.asarray([ends[j] - starts[j] for j in pick], dtype=np.int64)
    index = np.stack([1 + np.cumsum(lens), np.cumsum(nbytes[pick])], axis=1) if pick else np.zeros((0, 2), np.int64)
    return Shard(tokens=tokens, n_bytes=int(nbytes[pick].sum()), n_docs=len(pick), fingerprint=shard.fingerprint,
                 doc_index=index, vocab_size=shard.vocab_size, eos_id=shard.eos_id, split=f"{shard.split}:{lang}")


def language_counts(shard: Shard, langs: list[str]) -> dict[str, dict[str, int]]:
    """``{lang: {"bytes", "tokens", "docs"}}`` held by a shard (tokens include each document's eos)."""
    starts, ends, nbytes = _doc_spans(shard)
    out: dict[str, dict[str, int]] = {}
    for j, lang in enumerate(langs):
        c = out.setdefault(lang, {"bytes": 0, "tokens": 0, "docs": 0})
        c["bytes"] += int(nbytes[j])
        c["tokens"] += int(ends[j] - starts[j])
        c["docs"] += 1
    return out


def seen_tokens(shard: Shard, langs: list[str], *, batch_size: int, seq_len: int, steps: int) -> dict[str, int]:
    """Target tokens of each language a run read in ``steps`` steps of :class:`~tokembed.training.shards.TokenStream`
    (rows of ``L = (N-1)//B`` tokens read ``seq_len`` at a time, wrapping at the end of a row); the
    leading eos counts for no language."""
    n = len(shard)
    L = (n - 1) // batch_size
    windows_per_epoch = max(1, (L - 1) // seq_len)  # cursor 0, T, 2T, ... while cursor + T + 1 <= L
    per_row = windows_per_epoch * seq_len
    full, rest = divmod(steps, windows_per_epoch)
    lang_of = np.full(n, -1, dtype=np.int64)
    starts, ends, _ = _doc_spans(shard)
    names = sorted(set(langs))
    for j, lang in enumerate(langs):
        lang_of[starts[j]:ends[j]] = names.index(lang)
    counts = np.zeros(len(names), dtype=np.int64)
    for r in range(batch_size):
        base = r * L
        row = lang_of[base + 1: base + 1 + per_row]  # targets of one epoch of this row
        if full:
            counts += full * np.bincount(row[row >= 0], minlength=len(names))
        part = row[: rest * seq_len]
        counts += np.bincount(part[part >= 0], minlength=len(names))
    return {lang: int(counts[i]) for i, lang in enumerate(names)}


def budget_rows(train_counts: dict[str, dict[str, int]], seen: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per language: the train shard's bytes and tokens, the tokens a run read and the bytes they stand for.

    >>> budget_rows({"en": {"bytes": 400, "tokens": 100, "docs": 2}}, {"en": 50})["en"]
    {'train_bytes': 400, 'train_tokens': 100, 'seen_tokens': 50, 'seen_bytes': 200, 'bytes_per_token': 4.0}
    """
    out = {}
    for lang, c in train_counts.items():
        bpt = c["bytes"] / c["tokens"] if c["tokens"] else float("nan")
        out[lang] = {"train_bytes": c["bytes"], "train_tokens": c["tokens"], "seen_tokens": seen.get(lang, 0),
                     "seen_bytes": int(round(seen.get(lang, 0) * bpt)) if c["tokens"] else 0, "bytes_per_token": bpt}
    return out
