"""Surgery on a tokenizer's engine file (``tokenizer.json``): renumber, drop and append entries.

Unlike :mod:`tokembed.vocab.map` (ids only) this module knows where a ``tokenizer.json``
keeps ids: the model vocabulary (a dict for BPE/WordPiece/WordLevel, a list of
``[piece, score]`` for Unigram, plus ``unk_id``), the BPE merges (by string), the added
tokens, and the post-processor's special ids (``TemplateProcessing``, ``BertProcessing``,
``RobertaProcessing``). Every modified file is loaded back by the engine and wrapped in the
same tokembed class as the source tokenizer, so the result is an ordinary tokenizer.

It serves tokenizers with a ``tokenizer.json`` engine (kinds ``bytebpe``, ``wordpiece`` and
``hf``, i.e. any loaded Hugging Face file); the sentencepiece kinds and ``morph`` are changed
in their ``.model`` by :mod:`tokembed.vocab.spm_file`, and the ``byte`` kind (a fixed table)
gets a :class:`~tokembed.errors.TokenizerError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TokenizerError, TokenizerFileError
from ..tokenizers import ByteBPETokenizer, HFTokenizer, WordPieceTokenizer
from ..tokenizers.reference import bytes_to_unicode

__all__ = ["engine_doc", "model_type", "remap_doc", "rebuild", "merge_pairs", "set_merges", "alphabet_ids", "is_byte_level"]


def engine_doc(tok) -> dict[str, Any]:
    """The ``tokenizer.json`` of ``tok`` as a dict; a tokenizer without one is a TokenizerError."""
    if not isinstance(tok, HFTokenizer):
        raise TokenizerError(
            f"vocabulary surgery edits tokenizer.json files; the {tok.kind} tokenizer has none "
            "(supported: bytebpe, wordpiece, any Hugging Face tokenizer.json (kind 'hf'), the sentencepiece kinds "
            "unigram, bpe, char and a loaded .model, and morph)"
        )
    return json.loads(tok.engine.to_str())


def model_type(doc: Mapping[str, Any]) -> str:
    return str(doc["model"].get("type") or ("Unigram" if isinstance(doc["model"].get("vocab"), list) else "BPE"))


def merge_pairs(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """BPE merges as string pairs (both the ``"a b"`` and the ``["a", "b"]`` spellings)."""
    out = []
    for m in doc["model"].get("merges") or []:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        out.append((a, b))
    return out


def set_merges(doc: dict[str, Any], pairs: Sequence[tuple[str, str]]) -> None:
    doc["model"]["merges"] = [[a, b] for a, b in pairs]


def alphabet_ids(tok, doc: Mapping[str, Any]) -> set[int]:
    """Ids that must survive any trim so every text keeps an encoding: the byte-level alphabet (256
    tokens), ``<0xNN>`` byte fallback, and single characters (``c``, ``##c``) of WordPiece/Unigram."""
    v = tok.vocab
    ids = {v.get(f"<0x{b:02X}>") for b in range(256)}
    if is_byte_level(doc):
        ids |= {v.get(ch) for ch in bytes_to_unicode().values()}
    else:
        ids |= {i for i, t in enumerate(v) if len(t) == 1 or (len(t) == 3 and t.startswith("##"))}
    return {i for i in ids if i is not None}


def is_byte_level(doc: Mapping[str, Any]) -> bool:
    """The engine file pre-tokenizes with ByteLevel (tokens are byte strings spelled with GPT-2's alphabet)."""
    pre = doc.get("pre_tokenizer") or {}
    pres = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return any(p.get("type") == "ByteLevel" for p in pres)


def remap_doc(doc: dict[str, Any], old_to_new: Sequence[int], tokens: Sequence[str]) -> dict[str, Any]:
    """Renumber every id in ``doc`` (old id ``i`` -> ``old_to_new[i]``, -1 removes the entry).

    ``tokens`` is the old id -> string table; merges whose parts or result are removed are dropped.
    """
    new_of = {t: old_to_new[i] for i, t in enumerate(tokens)}
    model = doc["model"]
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        model["vocab"] = {t: new_of[t] for t, i in sorted(vocab.items(), key=lambda kv: kv[1]) if new_of.get(t, -1) >= 0}
    elif isinstance(vocab, list):  # Unigram: the list position is the id
        kept = sorted(((new_of[p], [p, s]) for p, s in vocab if new_of.get(p, -1) >= 0), key=lambda x: x[0])
        model["vocab"] = [entry for _, entry in kept]
        if model.get("unk_id") is not None:
            model["unk_id"] = old_to_new[model["unk_id"]]
    if model.get("merges") is not None:
        alive = {t for t, j in new_of.items() if j >= 0}
        set_merges(doc, [(a, b) for a, b in merge_pairs(doc) if a in alive and b in alive and a + b in alive])
    added = []
    for a in doc.get("added_tokens") or []:
        j = old_to_new[a["id"]] if a["id"] < len(old_to_new) else -1
        if j >= 0:
            added.append({**a, "id": j})
    doc["added_tokens"] = added
    _remap_post_processor(doc.get("post_processor"), new_of)
    return doc


def _remap_post_processor(post: Any, new_of: Mapping[str, int]) -> None:
    """Rewrite the special ids a post-processor inserts (``[CLS] ... [SEP]``), recursively for Sequence."""
    if not isinstance(post, dict):
        return
    for p in post.get("processors") or []:
        _remap_post_processor(p, new_of)
    for key in ("sep", "cls"):  # BertProcessing / RobertaProcessing: [token, id]
        if isinstance(post.get(key), list) and len(post[key]) == 2:
            post[key][1] = _alive(new_of, post[key][0])
    for spec in (post.get("special_tokens") or {}).values():  # TemplateProcessing
        spec["ids"] = [_alive(new_of, t) for t in spec.get("tokens", [])]


def _alive(new_of: Mapping[str, int], token: str) -> int:
    j = new_of.get(token, -1)
    if j < 0:
        raise TokenizerError(f"the post-processor inserts {token!r}, which this change removes; keep it (special tokens stay)")
    return j


def rebuild(tok, doc: Mapping[str, Any], *, special_tokens: Mapping[str, str] | None = None):
    """A tokenizer of ``tok``'s class over the engine file ``doc`` (its specials by default)."""
    from tokenizers import Tokenizer as Engine

    engine = Engine.from_str(json.dumps(doc, ensure_ascii=False))
    specials = dict(tok.special_tokens if special_tokens is None else special_tokens)
    options = {k: v for k, v in tok.options.items() if k != "add_special_tokens"}
    if isinstance(tok, ByteBPETokenizer):
        try:
            return ByteBPETokenizer(engine, special_tokens=specials, options=options)
        except TokenizerFileError:  # merges no longer in id order (tiktoken cannot run them): the HF engine does
            return HFTokenizer(engine, special_tokens=specials, add_special_tokens=False, options=options)
    if isinstance(tok, WordPieceTokenizer):
        return WordPieceTokenizer(engine, special_tokens=specials, options=options)
    return HFTokenizer(engine, special_tokens=specials, add_special_tokens=tok.add_special_tokens, options=options)
