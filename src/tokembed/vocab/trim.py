"""Trim: keep the tokens one or several corpora need, with the same segmentation of every text in them.

Unlike :mod:`tokembed.vocab.add` (the vocabulary grows) this module shrinks it. What is kept:

- every token the corpus uses (``min_count`` times or more; or the ``keep_top`` most used);
- every special token (and ``[UNK]``), the tokens passed in ``keep``;
- the byte alphabet (byte-level BPE: all 256 byte tokens; ``<0xNN>`` byte fallback), so any
  text still has an encoding;
- BPE: the closure of merges that build every kept token (each merge ``a b -> ab`` with ``ab``
  kept keeps ``a`` and ``b``). BPE applies merges lowest rank first; removing merges that build
  no kept token never removes one the corpus needed, so the corpus encodes the same.
- sentencepiece models (the ``unigram``/``bpe``/``char`` kinds, a loaded ``.model``, ``morph``'s
  subword model) are trimmed piece by piece in the model file (:mod:`tokembed.vocab.spm_file`):
  control, unknown, byte-fallback and user-defined pieces stay; BPE keeps both halves of every
  split of a kept piece, which sentencepiece's merge-any-adjacent-pair algorithm needs.
- WordPiece and Unigram keep their semantics (greedy longest match, Viterbi over scores) over a
  subset; a word whose search took another path (e.g. a WordPiece word that became ``[UNK]``
  after a long prefix) gets back every old piece inside it, and the corpus is re-encoded until
  nothing differs (:func:`_repair`).

>>> from tokembed.tokenizers import train_tokenizer
>>> from tokembed.corpus import Corpus
>>> tok = train_tokenizer("bytebpe", Corpus([]), 400, progress=False)
>>> small, vmap, _ = trim_tokenizer(tok, ["the cat sat on the mat"])
>>> small.encode("the cat") == [vmap.old_to_new[i] for i in tok.encode("the cat")]
True
>>> small.vocab_size < tok.vocab_size
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import EmptyCorpusError, TokenizerError
from .engine_file import alphabet_ids, engine_doc, merge_pairs, model_type, rebuild, remap_doc
from .map import VocabMap
from .spm_file import is_spm, spm_keep, spm_pieces_inside, spm_trimmed

__all__ = ["trim_tokenizer", "count_tokens", "segmentation_changed"]

#: Re-encoding rounds of :func:`_repair` (one is enough for every case seen; the bound makes a bug fail loudly).
MAX_REPAIR_ROUNDS = 8


def count_tokens(tok, texts: Sequence[str]) -> Counter:
    """How often each id occurs in the ordinary encoding of ``texts``."""
    counts: Counter = Counter()
    for ids in tok.encode_batch(list(texts)):
        counts.update(ids)
    return counts


def trim_tokenizer(
    tok,
    texts: Sequence[str],
    *,
    min_count: int = 1,
    keep_top: int | None = None,
    keep: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> tuple[Any, VocabMap, dict[str, Any]]:
    """``(trimmed tokenizer, map, facts)``; see the module docstring for what is kept.

    Args:
        texts: the corpus whose segmentation must not change (with ``min_count=1`` and no ``keep_top``).
        min_count: keep tokens used at least this often.
        keep_top: keep only the N most used tokens (on top of specials, alphabet and ``keep``).
        keep: token strings to keep even if unused.
        drop: token strings to remove even if used (never a special token or ``[UNK]``).
    """
    texts = list(texts)
    spm = is_spm(tok)
    doc = None if spm else engine_doc(tok)
    v = tok.vocab
    counts = count_tokens(tok, texts)
    if not counts:
        raise EmptyCorpusError(f"the trimming corpus ({len(texts)} texts) uses no tokens; pass text the model should keep covering")
    protected = set(v.special_ids) | (spm_keep(tok, set()) if spm else alphabet_ids(tok, doc))
    for name in drop:
        i = v[name]
        if i in v.special_ids or (doc is not None and name == doc["model"].get("unk_token")) or (spm and i in protected):
            raise TokenizerError(f"cannot trim away {name!r}: it is a special token, [UNK], or a piece every text may need (byte fallback, "
                                 "control, single character); the model and tokenizer rely on it: remove it from drop")
    ranked = [i for i, c in counts.most_common() if c >= min_count]
    kept = set(ranked if keep_top is None else ranked[: int(keep_top)])
    kept |= protected | {v[t] for t in keep}
    kept -= {v[t] for t in drop}
    if spm:
        kept = spm_keep(tok, kept) - {v[t] for t in drop}
    elif model_type(doc) == "BPE":
        kept = _merge_closure(doc, v, kept)
    exact = min_count <= 1 and keep_top is None and not list(drop)
    new_tok, vmap = _build(tok, doc, kept)
    rounds = 0
    if exact:
        new_tok, vmap, rounds = _repair(tok, doc, kept, new_tok, vmap, texts)
    facts = {"corpus_texts": len(texts), "used_tokens": len(counts), "repair_rounds": rounds, "exact": exact}
    return new_tok, vmap, facts


def _merge_closure(doc: dict, v, kept: set[int]) -> set[int]:
    """Add both parts of every merge whose result is kept, until nothing changes."""
    pairs = merge_pairs(doc)
    kept = set(kept)
    changed = True
    while changed:
        changed = False
        for a, b in reversed(pairs):  # results come after their parts, so one backward pass usually closes it
            if v.get(a + b) in kept:
                for part in (a, b):
                    i = v.get(part)
                    if i is not None and i not in kept:
                        kept.add(i)
                        changed = True
    return kept


def _build(tok, doc: dict | None, kept: set[int]):
    import copy

    vmap = VocabMap.from_keep(old_size=tok.vocab_size, keep=kept, old_fingerprint=tok.fingerprint, operation="trim")
    if doc is None:  # a sentencepiece model
        new_tok = spm_trimmed(tok, kept, vmap)
    else:
        new_doc = remap_doc(copy.deepcopy(doc), vmap.old_to_new, tok.vocab.tokens)
        new_tok = rebuild(tok, new_doc)
    vmap.new_fingerprint = new_tok.fingerprint
    return new_tok, vmap


def segmentation_changed(old_tok, new_tok, vmap: VocabMap, texts: Sequence[str]) -> list[int]:
    """Indices of ``texts`` whose new encoding is not the old one renumbered by ``vmap``."""
    old_ids = old_tok.encode_batch(list(texts))
    new_ids = new_tok.encode_batch(list(texts))
    return [k for k, (a, b) in enumerate(zip(old_ids, new_ids)) if [vmap.new_id(i) for i in a] != b]


def _repair(tok, doc: dict | None, kept: set[int], new_tok, vmap, texts: list[str]):
    """Re-encode the corpus; for each text that changed, keep every old token that spells part of its words."""
    for rounds in range(MAX_REPAIR_ROUNDS):
        bad = segmentation_changed(tok, new_tok, vmap, texts)
        if not bad:
            return new_tok, vmap, rounds
        before = len(kept)
        for k in bad:
            kept |= spm_pieces_inside(tok, texts[k]) if doc is None else _pieces_inside(tok, texts[k])
        if doc is None:
            kept = spm_keep(tok, kept)
        if len(kept) == before:
            break
        new_tok, vmap = _build(tok, doc, kept)
    raise TokenizerError(
        f"trimming could not keep the segmentation of {len(bad)} corpus texts (first: {texts[bad[0]][:60]!r}); "
        "this tokenizer's model cannot be trimmed exactly, pass min_count=2 to accept changes",
        param="min_count",
    )


def _pieces_inside(tok, text: str) -> set[int]:
    """Old ids of every vocabulary entry that is a substring of a pre-tokenized word of ``text``."""
    eng = tok.engine
    norm = eng.normalizer.normalize_str(text) if eng.normalizer is not None else text
    words = [w for w, _ in eng.pre_tokenizer.pre_tokenize_str(norm)] if eng.pre_tokenizer is not None else [norm]
    v = tok.vocab
    out: set[int] = set()
    for w in words:
        for a in range(len(w)):
            for b in range(a + 1, len(w) + 1):
                for form in (w[a:b], "##" + w[a:b], "▁" + w[a:b]):
                    i = v.get(form)
                    if i is not None:
                        out.add(i)
    return out
