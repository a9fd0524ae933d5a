"""Surgery on a sentencepiece model (``.model``): drop, renumber and append pieces, with the same ids as a ``tokenizer.json``.

Unlike :mod:`tokembed.vocab.engine_file` (which edits ``tokenizer.json``), this module edits the
piece list of a sentencepiece ``ModelProto`` (wire format, :func:`~tokembed.tokenizers._spm_proto.rebuild_model`;
nothing is unpickled, no ``protobuf`` needed). It serves the sentencepiece kinds (``unigram``,
``bpe``, ``char``, a loaded ``.model``) and ``morph`` (whose subword model is one), and the
``.model`` next to a ``tokenizer.json`` in a Hugging Face folder (Llama's ``tokenizer.model``,
T5's ``spiece.model``).

What the engine's algorithms need:

- **trim** keeps every non-normal piece (unknown, control, byte fallback, user-defined) and the
  single characters (not for ``char`` models, whose used characters are the corpus' own). Unigram:
  Viterbi over a subset still finds the old best path. BPE: sentencepiece merges the best-scoring
  adjacent pair whose concatenation is a piece; keeping both halves of every split of a kept piece
  (closed recursively) keeps every step of the old merge sequences, each still the best one.
- **add** (Unigram): a piece scoring the old pieces' total + ``UNIGRAM_MARGIN``, found only where its
  string is. (BPE): pieces scored below every old one, left to right through the old pieces
  (``p1p2``, ``p1p2p3``, ...; characters outside the vocabulary become pieces first), so they merge
  only after every old merge: text without the new strings keeps its segmentation. ``char``: one
  new character. ``special``: a control piece (never matched in text, as every tokembed special).

>>> from tokembed.tokenizers import UnigramTokenizer
>>> tok = UnigramTokenizer.train(["The cat sat on the mat. " * 20, "A dog, a cat and a rat."], 278)
>>> new, vmap = spm_add(tok, [" mat."])
>>> new.tokens("The mat.")[-1], vmap.new_tokens[0].token, new.encode(" mat.") == [tok.vocab_size]
('▁mat.', '▁mat.', True)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import TokenizerError
from ..tokenizers._spm_proto import CONTROL, NORMAL, UNKNOWN, USER_DEFINED, parse_model, rebuild_model
from ..tokenizers.morph import MorphTokenizer
from ..tokenizers import spm_hf
from ..tokenizers.sentencepiece_engine import META_PIECE, SentencePieceTokenizer
from .map import NewToken, VocabMap

__all__ = ["spelled_parts", "is_spm", "spm_keep", "spm_build", "spm_trimmed", "spm_add", "spm_add_specials", "spm_pieces_inside",
           "remap_model_file", "same_ids", "UNIGRAM_MARGIN"]

#: Score margin of a new Unigram piece over the old pieces' total log-probability, for sentencepiece models and
#: Unigram ``tokenizer.json`` alike (any positive value makes Viterbi prefer the new piece on its own string;
#: small keeps it close to the old path).
UNIGRAM_MARGIN = 0.1
#: Score step between appended BPE pieces (below the lowest old score, decreasing in the order added).
BPE_STEP = 1.0


def is_spm(tok) -> bool:
    """``tok`` runs on a sentencepiece model (the sentencepiece kinds and ``morph``)."""
    return isinstance(tok, (SentencePieceTokenizer, MorphTokenizer))


def _sub(tok) -> SentencePieceTokenizer:
    return tok.subword if isinstance(tok, MorphTokenizer) else tok


def spm_build(tok, pieces: list[tuple[str, float, int]], new_id: dict[int, int], specials: dict[str, str]):
    """A tokenizer of ``tok``'s class over ``tok``'s model with the piece list ``pieces`` (same settings)."""
    sub = _sub(tok)
    proto = rebuild_model(sub._proto, pieces, new_id)
    new_sub = type(sub)(proto, special_tokens=specials, options=sub.options, source=f"{sub.kind} model after vocabulary surgery")
    if isinstance(tok, MorphTokenizer):
        return MorphTokenizer(tok.segmenter, new_sub, options=tok.options)
    return new_sub


# -- trim -----------------------------------------------------------------------------------------
def spm_keep(tok, kept: set[int]) -> set[int]:
    """``kept`` plus what the model needs: non-normal pieces, single characters, the BPE split closure."""
    info = _sub(tok).info
    kept = set(kept) | set(tok.vocab.special_ids)
    kept |= {i for i, (p, _, t) in enumerate(info.pieces) if t != NORMAL or (len(p) == 1 and info.model_type != "char")}
    if info.model_type == "bpe":
        ids = {p: i for i, (p, _, t) in enumerate(info.pieces) if t in (NORMAL, USER_DEFINED)}
        todo = [i for i in kept if info.pieces[i][2] == NORMAL]
        while todo:
            piece = info.pieces[todo.pop()][0]
            for k in range(1, len(piece)):
                ia, ib = ids.get(piece[:k]), ids.get(piece[k:])
                if ia is not None and ib is not None:
                    for i in (ia, ib):
                        if i not in kept:
                            kept.add(i)
                            todo.append(i)
    return kept


def spm_trimmed(tok, kept: set[int], vmap: VocabMap):
    """The tokenizer keeping the pieces ``vmap`` keeps (ids renumbered in order)."""
    info = _sub(tok).info
    pieces = [info.pieces[i] for i in sorted(kept)]
    new_id = {i: vmap.old_to_new[i] for i in kept}
    return spm_build(tok, pieces, new_id, tok.special_tokens)


def spm_pieces_inside(tok, text: str) -> set[int]:
    """Ids of every normal piece that is a substring of ``text`` (spaces as ``▁``), for trim's repair."""
    info = _sub(tok).info
    ids = {p: i for i, (p, _, t) in enumerate(info.pieces) if t == NORMAL}
    longest = max((len(p) for p in ids), default=1)
    s = text.replace(" ", META_PIECE)
    s = META_PIECE + s if info.add_dummy_prefix else s
    return {ids[s[a:b]] for a in range(len(s)) for b in range(a + 1, min(len(s), a + longest) + 1) if s[a:b] in ids}


# -- add ------------------------------------------------------------------------------------------
def _form(tok, text: str) -> tuple[str, list[int]]:
    """The piece string of ``text`` (the old pieces joined, byte runs decoded) and its old ids."""
    sub = _sub(tok)
    if isinstance(tok, MorphTokenizer):
        chunks = tok.chunks(text)
        if len(chunks) != 1:
            raise TokenizerError(
                f"token {text!r} can never be produced: the morph segmenter cuts it into {chunks}; "
                "add it as a special token instead (special=True)", param="special")  # fmt: skip
    if META_PIECE in text:
        raise TokenizerError(f"token {text!r} holds {META_PIECE!r}, which tokembed encodes as byte tokens; write a space instead")
    ids = list(sub._enc.encode(text))
    if any(sub.info.pieces[i][2] == UNKNOWN for i in ids):  # no byte fallback: the text itself, as the model spells it
        spelled = text.replace(" ", META_PIECE) if sub.info.escape_whitespaces else text
        return (META_PIECE + spelled if sub.info.add_dummy_prefix else spelled), ids
    return "".join(part for part, _ in spelled_parts([(sub.info.pieces[i][0], i) for i in ids])), ids


def spm_add(tok, tokens: Sequence[str], *, special: bool = False) -> tuple[Any, VocabMap]:
    """``(new tokenizer, map)`` with ``tokens`` appended as pieces (see the module docstring)."""
    info = _sub(tok).info
    pieces = list(info.pieces)
    index = {p: i for i, (p, _, _) in enumerate(pieces)}
    V = len(pieces)
    added: list[NewToken] = []
    specials = dict(tok.special_tokens)
    low = min((s for _, s, t in pieces if t == NORMAL), default=0.0)

    def append(piece: str, score: float, typ: int, used: list[int], *, is_special: bool = False) -> None:
        index[piece] = len(pieces)
        pieces.append((piece, score, typ))
        added.append(NewToken(index[piece], piece, list(used), special=is_special))

    for text in tokens:
        if special:
            if text in index:
                raise TokenizerError(f"token {text!r} already exists (id {index[text]}); nothing to add")
            append(text, 0.0, CONTROL, [], is_special=True)
            specials[f"extra_{sum(r.startswith('extra_') for r in specials)}"] = text
            continue
        form, old = _form(tok, text)
        if form in index:
            raise TokenizerError(f"token {text!r} already exists as {form!r} (id {index[form]}); nothing to add")
        if info.model_type == "unigram":
            score = sum(info.pieces[i][1] for i in old if info.pieces[i][2] == NORMAL)
            append(form, min(0.0, score + UNIGRAM_MARGIN), NORMAL, old)
        elif info.model_type == "char" and len(form) == 1:
            low -= BPE_STEP
            append(form, low, NORMAL, old)
        elif info.model_type == "bpe":
            low = _append_bpe(form, old, info, index, append, low)
        else:
            raise TokenizerError(
                f"token {text!r}: a {info.model_type} model produces single characters only; "
                "add it as a special token instead (special=True)", param="special")  # fmt: skip
    new_tok = spm_build(tok, pieces, {i: i for i in range(V)}, specials)
    vmap = VocabMap(old_size=V, new_size=len(pieces), old_to_new=list(range(V)), new_tokens=added,
                    old_fingerprint=tok.fingerprint, new_fingerprint=new_tok.fingerprint, operation="add")
    return new_tok, vmap


def spelled_parts(pieces: Sequence[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    """``(piece, id)`` in order -> ``(string, ids)`` with each run of byte pieces (``<0xNN>``) replaced by the
    characters its bytes spell, one part per character (the run's ids on the first).

    >>> spelled_parts([("▁a", 7), ("<0xE2>", 3), ("<0x98>", 4), ("<0x83>", 5), ("b", 9)])
    [('▁a', [7]), ('☃', [3, 4, 5]), ('b', [9])]
    """
    parts: list[tuple[str, list[int]]] = []
    run: list[tuple[int, int]] = []  # (byte, id)

    def flush() -> None:
        chars = bytes(b for b, _ in run).decode("utf-8", "replace")
        parts.extend((ch, [i for _, i in run] if k == 0 else []) for k, ch in enumerate(chars))
        run.clear()

    for piece, i in pieces:
        if _BYTE_PIECE.fullmatch(piece):
            run.append((int(piece[3:5], 16), i))
            continue
        flush()
        parts.append((piece, [i]))
    flush()
    return parts


_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def _append_bpe(form: str, old: list[int], info, index: dict[str, int], append, low: float) -> float:
    """Merge the old pieces of ``form`` left to right with new pieces scored below ``low``; returns the new low.
    Characters the old model spelled in byte pieces (outside its vocabulary) become pieces first."""
    parts = spelled_parts([(info.pieces[i][0], i) for i in old])
    for s, ids in parts:
        if s not in index:
            low -= BPE_STEP
            append(s, low, NORMAL, ids)
    left, used = parts[0][0], list(parts[0][1])
    for s, ids in parts[1:]:
        left, used = left + s, used + ids
        if left not in index:
            low -= BPE_STEP
            append(left, low, NORMAL, used)
    return low


def spm_add_specials(tok, specials: dict[str, str]):
    """``tok`` with a control piece appended for each special string it lacks, and ``specials`` as its roles."""
    info = _sub(tok).info
    pieces = list(info.pieces)
    have = {p for p, _, _ in pieces}
    pieces += [(s, 0.0, CONTROL) for s in specials.values() if s not in have]
    return spm_build(tok, pieces, {i: i for i in range(len(info.pieces))}, specials)


# -- the .model of a Hugging Face folder ------------------------------------------------------------
def remap_model_file(blob: bytes, vmap: VocabMap, doc: dict[str, Any], new_tok) -> tuple[bytes, dict[str, Any]]:
    """The ``.model`` ``blob`` changed as ``vmap`` changed the folder's ``tokenizer.json`` (now ``doc``, the
    tokenizer ``new_tok``), and ``doc`` with its BPE merges re-derived from the new model (the merges
    sentencepiece's algorithm implies). The model covers the ids up to the last kept or new ordinary
    piece; special tokens appended after it live in ``tokenizer.json`` and ``tokenizer_config.json`` only."""
    info = parse_model(blob)
    n = len(info.pieces)
    source = {j: i for i, j in enumerate(vmap.old_to_new[:n]) if j >= 0}
    new = {t.id: t for t in vmap.new_tokens}
    top = max([*source, *(j for j, t in new.items() if not t.special)], default=-1)
    scores = _unigram_scores(doc)
    low = min((s for _, s, t in info.pieces if t == NORMAL), default=0.0)
    pieces = []
    special_strings = set(new_tok.special_tokens.values())
    for j in range(top + 1):
        token = new_tok.vocab.token(j)
        if j in source:
            pieces.append(info.pieces[source[j]])
        elif token in special_strings:
            pieces.append((token, 0.0, CONTROL))
        elif j in new and info.model_type == "unigram":
            pieces.append((token, scores.get(token, low), NORMAL))
        elif j in new:
            low -= BPE_STEP
            pieces.append((token, low, NORMAL))
        else:  # a tokenizer.json-only added token between the pieces
            pieces.append((token, 0.0, USER_DEFINED))
    new_blob = rebuild_model(blob, pieces, {i: j for j, i in source.items()})
    if doc["model"].get("type") == "BPE" and doc["model"].get("merges") is not None and info.model_type == "bpe":
        doc = {**doc, "model": {**doc["model"], "merges": spm_hf.spm_merges(pieces)}}
    return new_blob, doc


def _unigram_scores(doc: dict[str, Any]) -> dict[str, float]:
    vocab = doc["model"].get("vocab")
    return {p: float(s) for p, s in vocab} if isinstance(vocab, list) else {}


def same_ids(blob: bytes, doc: dict[str, Any], texts: Iterable[str]) -> str | None:
    """The first of ``texts`` on which the sentencepiece model ``blob`` and the engine file ``doc`` give
    other ids (special and post-processor tokens left out), or None when they agree on all."""
    import sentencepiece
    from tokenizers import Tokenizer as Engine

    sp = sentencepiece.SentencePieceProcessor(model_proto=blob)
    engine = Engine.from_str(json.dumps(doc, ensure_ascii=False))
    engine.encode_special_tokens = True
    engine.no_truncation()
    engine.no_padding()
    texts = [t for t in texts if t]
    specials = {a["id"] for a in doc.get("added_tokens") or [] if a.get("special")}
    got = [[i for i in e.ids if i not in specials] for e in engine.encode_batch(texts, add_special_tokens=False)]
    want = sp.encode(texts)
    return next((t for t, a, b in zip(texts, got, want) if a != b), None)
