"""Transplant: move a model to another tokenizer, possibly of another family.

Unlike :meth:`VocabMap.between <tokembed.vocab.map.VocabMap.between>` (exact strings only),
tokens are matched on their text with the family markers normalised away: ``##ing``
(WordPiece continuation), ``Ġthe`` (byte-level BPE, the byte ``Ġ`` is a space) and ``▁the``
(sentencepiece) all become ``ing`` / ``the``; a match of the same position class (word start
or continuation) is preferred. A matched token's row is copied; the others are composed from
the old tokenizer's pieces of their text (or get the ``mean``/``random`` init when nothing
matches).

The new tokenizer takes over the model's special tokens: for each role of the old tokenizer
(``cls``, ``sep``, ``pad``, ...) the new tokenizer's token of that role (or the old string,
appended as a special token when the new tokenizer has none) gets the old row, and the old
post-processor (``[CLS] $A [SEP]``) is installed with the new ids, so the model sees the input
shape it was trained on.

>>> marker_key("##ing"), marker_key("Ġthe"), marker_key("▁the"), marker_key("the")
(('cont', 'ing'), ('word', 'the'), ('word', 'the'), ('plain', 'the'))
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import TokenizerError
from ..tokenizers.reference import token_to_bytes
from .engine_file import engine_doc, is_byte_level, rebuild
from .map import NewToken, VocabMap, compose_pieces
from .spm_file import is_spm, spm_add_specials

__all__ = ["transplant_tokenizer", "marker_key"]


def marker_key(token: str, *, byte_level: bool = False) -> tuple[str, str]:
    """(position class, text) of a token string with its family marker removed."""
    if token.startswith("##") and len(token) > 2:
        return ("cont", token[2:])
    if token.startswith("▁"):
        return ("word", token[1:].replace("▁", " "))
    if byte_level or token.startswith("Ġ"):
        raw = token_to_bytes(token)
        text = raw.decode("utf-8", "replace") if raw is not None else token
        if text.startswith(" "):
            return ("word", text[1:])
        return ("cont" if byte_level else "plain", text)
    return ("plain", token)


def _byte_level(tok) -> bool:
    return not is_spm(tok) and is_byte_level(engine_doc(tok))


def _index(tok) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    byte_level = _byte_level(tok)
    exact: dict[tuple[str, str], int] = {}
    loose: dict[str, int] = {}
    specials = tok.vocab.special_ids
    for i, t in enumerate(tok.vocab):
        if i in specials:
            continue
        key = marker_key(t, byte_level=byte_level)
        exact.setdefault(key, i)
        loose.setdefault(key[1], i)
    return exact, loose


def transplant_tokenizer(old_tok, new_tok) -> tuple[Any, VocabMap, dict[str, int]]:
    """``(new tokenizer with the old specials and post-processing, map, counts)``."""
    new_tok = _take_over_specials(old_tok, new_tok)
    exact, loose = _index(old_tok)
    byte_level = _byte_level(new_tok)
    old_special_of = {s: old_tok.vocab[s] for s in old_tok.special_tokens.values()}
    role_old = {r: old_tok.vocab[s] for r, s in old_tok.special_tokens.items()}
    old_to_new = [-1] * old_tok.vocab_size
    new_tokens: list[NewToken] = []
    counts = {"copied": 0, "composed": 0, "random": 0}
    new_specials = {s: r for r, s in new_tok.special_tokens.items()}
    unmatched: list[int] = []
    for j, t in enumerate(new_tok.vocab):
        if t in new_specials:
            i = old_special_of.get(t, role_old.get(new_specials[t]))
        else:
            key = marker_key(t, byte_level=byte_level)
            i = exact.get(key, loose.get(key[1]))
        if i is not None and old_to_new[i] < 0:
            old_to_new[i] = j
        elif i is not None:  # a second new token with the same text: a copy of the same old row
            new_tokens.append(NewToken(j, t, [i], special=t in new_specials))
        else:
            unmatched.append(j)
    counts["copied"] = new_tok.vocab_size - len(unmatched)
    plain = [j for j in unmatched if new_tok.vocab.token(j) not in new_specials]
    composed = dict(zip(plain, compose_pieces(old_tok, new_tok, plain)))
    for j in unmatched:
        pieces = composed.get(j, [])
        new_tokens.append(NewToken(j, new_tok.vocab.token(j), pieces, special=j not in composed))
        counts["composed" if pieces else "random"] += 1
    new_tokens.sort(key=lambda t: t.id)
    vmap = VocabMap(old_size=old_tok.vocab_size, new_size=new_tok.vocab_size, old_to_new=old_to_new, new_tokens=new_tokens,
                    old_fingerprint=old_tok.fingerprint, new_fingerprint=new_tok.fingerprint, operation="transplant")
    return new_tok, vmap, counts


def _take_over_specials(old_tok, new_tok):
    """The new tokenizer with a token for every old special role and the old post-processor."""
    post = None if is_spm(old_tok) else engine_doc(old_tok).get("post_processor")
    carried = post and post.get("type") != "ByteLevel"
    if is_spm(new_tok):
        if carried:
            raise TokenizerError(
                f"the model's tokenizer adds special tokens around every text ({post.get('type')}), which a "
                f"{new_tok.kind} tokenizer cannot do; transplant to a tokenizer.json tokenizer (e.g. the new model "
                "saved as tokenizer.json by tokembed) or add those tokens in your input code", param="tokenizer")
        return spm_add_specials(new_tok, {**new_tok.special_tokens, **{r: s for r, s in old_tok.special_tokens.items()
                                                                      if r not in new_tok.special_tokens}})
    doc = engine_doc(new_tok)
    specials = dict(new_tok.special_tokens)
    size = new_tok.vocab_size
    for role, s in old_tok.special_tokens.items():
        if role in specials:
            continue
        if s not in new_tok.vocab:
            doc.setdefault("added_tokens", []).append(
                {"id": size, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            )
            size += 1
        specials[role] = s
    if carried:
        doc["post_processor"] = _renamed_post(copy.deepcopy(post), old_tok, specials, doc)
    return rebuild(new_tok, doc, special_tokens=specials)


def _renamed_post(post: dict, old_tok, specials: dict[str, str], doc: dict) -> dict:
    """The old post-processor speaking the new tokenizer's special strings and ids."""
    role_of = {s: r for r, s in old_tok.special_tokens.items()}
    vocab = dict(doc["model"].get("vocab") or {}) if isinstance(doc["model"].get("vocab"), dict) else {}
    vocab.update({a["content"]: a["id"] for a in doc.get("added_tokens") or []})

    def new(s: str) -> str:
        return specials.get(role_of.get(s, ""), s)

    for key in ("sep", "cls"):
        if isinstance(post.get(key), list):
            post[key] = [new(post[key][0]), vocab[new(post[key][0])]]
    if "special_tokens" in post:
        post["special_tokens"] = {
            new(name): {"id": new(name), "ids": [vocab[new(t)] for t in spec["tokens"]], "tokens": [new(t) for t in spec["tokens"]]}
            for name, spec in post["special_tokens"].items()
        }
        for seq in ("single", "pair"):
            for piece in post.get(seq) or []:
                if "SpecialToken" in piece:
                    piece["SpecialToken"]["id"] = new(piece["SpecialToken"]["id"])
    for p in post.get("processors") or []:
        _renamed_post(p, old_tok, specials, doc)
    return post
