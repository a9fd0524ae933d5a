"""Add: new vocabulary entries that ``encode`` really produces, appended after the old ids.

Unlike transformers' ``add_tokens`` (an "added token" cut out of the text before the model
runs, so ``cat`` would split ``concatenate``), a new ordinary token here enters the model's
own vocabulary, by family:

- **BPE**: merges appended after the old ones. The old tokenizer splits the token's text into
  pieces ``p1 .. pk``; k - 1 merges build it, in a tree chosen so that its *intermediates* (the
  strings built on the way) are existing tokens where one composes (``Ġtok + embed`` when ``embed``
  is a token), else new tokens (the chain ``p1 p2 -> p1p2``, ``p1p2 p3 -> p1p2p3``, ...). The tree
  is checked by running BPE on the pieces with the appended merges. Appended merges have the lowest
  priority, so they fire only after every old merge, and only where two adjacent pieces spell a
  node of some tree: a text that contains none of the new tokens and none of their intermediates
  (``NewToken.intermediates``; the new ones are also new tokens with ``intermediate_of``) keeps
  its old segmentation.
- **WordPiece**: a vocabulary entry (greedy longest match finds it only where its string is).
- **sentencepiece models** (kinds ``unigram``, ``bpe``, ``char``, a loaded ``.model``, and ``morph``'s
  subword model): pieces in the model file, by the same rules (:mod:`tokembed.vocab.spm_file`).
- **Unigram**: a piece whose score beats the old pieces' total (``sum(scores) + UNIGRAM_MARGIN``),
  so Viterbi picks it where its string is, and nowhere else.

A token must be one pre-tokenized word (``" hello"`` for byte-level BPE, ``"hello"`` for
WordPiece); anything else can never come out of the pre-tokenizer and is refused with a
pointer to ``special=True``, which adds it as a special token instead.

>>> from tokembed.tokenizers import train_tokenizer
>>> from tokembed.corpus import Corpus
>>> tok = train_tokenizer("bytebpe", Corpus([]), 300, progress=False)
>>> new, vmap = add_tokens(tok, [" tokembed"])
>>> new.tokens(" tokembed rocks")[0], vmap.new_tokens[-1].token
('Ġtokembed', 'Ġtokembed')
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, TokenizerError
from ..tokenizers.spm_hf import CONTROL_SCORE_GAP
from .engine_file import engine_doc, merge_pairs, model_type, rebuild, set_merges
from .map import NewToken, VocabMap, pieces_of
from .spm_file import UNIGRAM_MARGIN, is_spm, spelled_parts, spm_add

__all__ = ["add_tokens", "tokens_from_corpus", "UNIGRAM_MARGIN"]



def add_tokens(tok, tokens: Sequence[str], *, special: bool = False) -> tuple[Any, VocabMap]:
    """``(new tokenizer, map)`` with ``tokens`` appended (see the module docstring)."""
    if is_spm(tok):
        return spm_add(tok, _checked(tokens), special=special)
    doc = engine_doc(tok)
    new_doc = copy.deepcopy(doc)
    v = tok.vocab
    V = tok.vocab_size
    added: list[NewToken] = []
    specials = dict(tok.special_tokens)
    for text in _checked(tokens):
        if special:
            if text in v:
                raise TokenizerError(f"token {text!r} already exists (id {v[text]}); nothing to add")
            added.append(NewToken(V + len(added), text, [], special=True))
            new_doc.setdefault("added_tokens", []).append(
                {"id": added[-1].id, "content": text, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            )
            specials[f"extra_{sum(r.startswith('extra_') for r in specials)}"] = text
            continue
        form, pieces = _word_form(tok, text)
        if form in v or any(a.token == form for a in added):
            raise TokenizerError(f"token {text!r} already exists as {form!r} (id {v.get(form)}); nothing to add")
        if not added:
            _absorb_added_tokens(new_doc)
        _append(new_doc, tok, form, pieces, added, V)
    new_tok = rebuild(tok, new_doc, special_tokens=specials)
    vmap = VocabMap(old_size=V, new_size=V + len(added), old_to_new=list(range(V)), new_tokens=added,
                    old_fingerprint=tok.fingerprint, new_fingerprint=new_tok.fingerprint, operation="add")
    return new_tok, vmap


def _checked(tokens: Sequence[str]) -> list[str]:
    if isinstance(tokens, str):
        tokens = [tokens]
    out = list(tokens)
    if not out:
        raise ConfigError("no tokens to add; pass TOKEN..., a tokens file or a corpus with a count")
    for k, t in enumerate(out):
        if not isinstance(t, str) or not t:
            raise TokenizerError(f"token {k} is {t!r}; a token is a non-empty string")
    dup = [t for t, c in Counter(out).items() if c > 1]
    if dup:
        raise TokenizerError(f"tokens {dup[:3]} are given more than once; pass each once")
    return out


def _words(tok, text: str) -> list[tuple[str, tuple[int, int]]]:
    """Pre-tokenized words of ``text`` (after the normalizer), with offsets into the normalized text."""
    eng = tok.engine
    norm = eng.normalizer.normalize_str(text) if eng.normalizer is not None else text
    if eng.pre_tokenizer is None:
        return [(norm, (0, len(norm)))]
    return eng.pre_tokenizer.pre_tokenize_str(norm)


def _word_form(tok, text: str) -> tuple[str, list[int]]:
    """The vocabulary string of ``text`` and the old ids it is split into; refuse a text that is not one word."""
    words = _words(tok, text)
    if len(words) != 1:
        raise TokenizerError(
            f"token {text!r} can never be produced: the pre-tokenizer splits it into {[w for w, _ in words]}; "
            "add it as a special token instead (special=True)",
            param="special",
        )
    return words[0][0], pieces_of(tok, [text])[0]


def _absorb_added_tokens(doc: dict) -> None:
    """Make the added tokens that are not model entries (a ``<pad>`` after Llama's 32000 pieces) model entries at
    their own ids, before model entries are appended after them: the engine numbers added tokens that are not
    in the model after the model's entries, so it would move them (and their rows would no longer match)."""
    model = doc["model"]
    vocab = model.get("vocab")
    outside = sorted((a["id"], a["content"]) for a in doc.get("added_tokens") or [])
    if isinstance(vocab, dict):
        for i, content in outside:
            vocab.setdefault(content, i)
    elif isinstance(vocab, list):  # Unigram: the list position is the id; never chosen from text (the lowest score)
        have = {p for p, _ in vocab}
        low = min((sc for _, sc in vocab), default=0.0) - CONTROL_SCORE_GAP
        for i, content in outside:
            if content in have:
                continue
            if i != len(vocab):
                raise TokenizerError(f"added token {content!r} has id {i}, not {len(vocab)}: the tokenizer.json's ids are not "
                                     "contiguous, so new pieces cannot be placed after them")
            vocab.append([content, low])


def _append(doc: dict, tok, form: str, pieces: list[int], added: list[NewToken], V: int) -> None:
    """Append ``form`` (and BPE intermediates) to the model of ``doc``."""
    model = doc["model"]
    kind = model_type(doc)
    v = tok.vocab
    if kind == "BPE":
        _append_bpe(doc, tok, form, pieces, added, V)
    elif kind == "WordPiece":
        added.append(NewToken(V + len(added), form, pieces))
        model["vocab"][form] = added[-1].id
    elif kind == "Unigram":
        score = {p: s for p, s in model["vocab"]}
        total = sum(score.get(v.token(i), 0.0) for i in pieces)
        added.append(NewToken(V + len(added), form, pieces))
        model["vocab"].append([form, min(0.0, total + UNIGRAM_MARGIN)])
    else:
        raise TokenizerError(f"cannot add ordinary tokens to a {kind} model; add them as special tokens (special=True)")


# -- BPE: the merges that build a new token --------------------------------------------------------------


def _append_bpe(doc: dict, tok, form: str, pieces: list[int], added: list[NewToken], V: int) -> None:
    """Append the merges that build ``form`` from its old pieces; new intermediates become tokens.

    The merge tree over the pieces ``p1 .. pk`` is chosen by :func:`_merge_tree` (fewest intermediates that are
    not tokens yet), checked by running BPE on ``p1 .. pk`` with the old and appended merges
    (:func:`_bpe_word`), and the left-to-right chain is the fallback. Every internal node but the root is an
    *intermediate*: listed on the new token (``NewToken.intermediates``); the ones that were not tokens are
    appended as tokens with ``intermediate_of`` set (rows composed from their pieces like any new token).
    With byte fallback, characters the old model spelled in byte pieces become tokens first (listed as
    intermediates too: every text holding such a character now gets the character token).
    """
    model = doc["model"]
    vocab = model["vocab"]  # str -> id, with the tokens added so far
    parts = [(tok.vocab.token(i), [i]) for i in pieces]  # (string, old ids) per piece
    chars: list[str] = []
    if model.get("byte_fallback"):  # characters outside the vocabulary (byte pieces) become tokens first
        parts = spelled_parts([(tok.vocab.token(i), i) for i in pieces])
        for text, ids in parts:
            if text not in vocab:
                added.append(NewToken(V + len(added), text, ids, intermediate_of=form))
                vocab[text] = added[-1].id
                chars.append(text)
    strings = [text for text, _ in parts]
    if len(strings) < 2 or "".join(strings) != form:
        raise TokenizerError(f"token {form!r} cannot be built from its old pieces {strings} by appending merges "
                             "(the model adds word markers inside words); add it as a special token (special=True)",
                             param="special")
    merges = merge_pairs(doc)
    ranks = {pair: r for r, pair in enumerate(merges)}
    chosen = None
    for tree in (_merge_tree(strings, vocab, ranks), _chain(len(strings))):
        new_pairs = [p for p in _node_pairs(tree, strings) if p not in ranks]
        trial = {**ranks, **{p: len(merges) + k for k, p in enumerate(dict.fromkeys(new_pairs))}}
        if _bpe_word(strings, trial) == [form]:
            chosen = tree, list(dict.fromkeys(new_pairs))
            break
    if chosen is None:
        raise TokenizerError(f"token {form!r}: no order of appended merges builds it from its old pieces {strings} "
                             "(old merges take its intermediate tokens elsewhere); add it as a special token "
                             "(special=True)", param="special")
    tree, new_pairs = chosen
    inter: list[str] = list(chars)  # a character that became a token changes every text that holds it
    for (a, b), span in zip(_node_pairs(tree, strings), _node_spans(tree)):
        text = a + b
        if text != form:
            inter.append(text)
        if text not in vocab:
            ids = [i for _, part_ids in parts[span[0] : span[1]] for i in part_ids]
            added.append(NewToken(V + len(added), text, ids, intermediate_of=form if text != form else ""))
            vocab[text] = added[-1].id
    root = next(t for t in added if t.token == form)
    root.intermediates = inter
    set_merges(doc, merges + new_pairs)


def _merge_tree(strings: list[str], vocab, ranks) -> Any:
    """The binary merge tree over ``strings`` (leaves: indices; nodes: ``(left, right)``) with the fewest
    intermediates that are not tokens yet, then the fewest merges to append; ties keep the left-to-right
    chain. An interval DP, O(k³) for k pieces.

    >>> _merge_tree(["Ġto", "k", "em", "bed"], {"embed": 1}, {})  # 'embed' is a token: Ġtok + embed
    ((0, 1), (2, 3))
    >>> _merge_tree(["Ġto", "k", "em", "bed"], {}, {})           # nothing composes: the chain
    (((0, 1), 2), 3)
    """
    k = len(strings)
    best: dict[tuple[int, int], tuple[tuple[int, int], Any]] = {(i, i + 1): ((0, 0), i) for i in range(k)}
    for width in range(2, k + 1):
        for i in range(0, k - width + 1):
            j = i + width
            new_node = int(width < k and "".join(strings[i:j]) not in vocab)
            cand = None
            for s in range(j - 1, i, -1):  # split nearest the right end first: the chain wins ties
                (nl, al), tl = best[(i, s)]
                (nr, ar), tr = best[(s, j)]
                cost = (nl + nr + new_node, al + ar + int(("".join(strings[i:s]), "".join(strings[s:j])) not in ranks))
                if cand is None or cost < cand[0]:
                    cand = (cost, (tl, tr))
            best[(i, j)] = cand
    return best[(0, k)][1]


def _chain(k: int) -> Any:
    """The left-to-right chain ``((p1 p2) p3) ...`` over k pieces."""
    tree: Any = 0
    for i in range(1, k):
        tree = (tree, i)
    return tree


def _node_spans(tree: Any) -> list[tuple[int, int]]:
    """(first, last + 1) piece index of every internal node, children before parents (post-order)."""
    out: list[tuple[int, int]] = []

    def walk(t) -> tuple[int, int]:
        if isinstance(t, int):
            return t, t + 1
        (a, _), (_, b) = walk(t[0]), walk(t[1])
        out.append((a, b))
        return a, b

    walk(tree)
    return out


def _node_pairs(tree: Any, strings: list[str]) -> list[tuple[str, str]]:
    """The merge ``(left string, right string)`` of every internal node, post-order (as :func:`_node_spans`)."""
    out: list[tuple[str, str]] = []

    def walk(t) -> str:
        if isinstance(t, int):
            return strings[t]
        left, right = walk(t[0]), walk(t[1])
        out.append((left, right))
        return left + right

    walk(tree)
    return out


def _bpe_word(symbols: list[str], ranks) -> list[str]:
    """BPE on one word from ``symbols``: merge the adjacent pair of lowest rank (leftmost first) until none applies.

    >>> _bpe_word(["a", "b", "c"], {("b", "c"): 0, ("a", "bc"): 1})
    ['abc']
    """
    syms = list(symbols)
    while len(syms) > 1:
        best = None
        for i in range(len(syms) - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        syms[i : i + 2] = [syms[i] + syms[i + 1]]
    return syms


def _json_words(tok, text: str) -> list[str]:
    eng = tok.engine
    norm = eng.normalizer.normalize_str(text) if eng.normalizer is not None else text
    return [norm[a:b] for _, (a, b) in _words(tok, text)]


def _spm_words(tok, text: str) -> list[str]:
    """Candidate tokens of a sentencepiece model: ``morph``'s chunks, else words with their space before
    them (without it where the model adds a dummy prefix, which gives every text one)."""
    if hasattr(tok, "chunks"):
        return [c for c in tok.chunks(text) if c.strip()]
    if tok.info.model_type == "char":
        return list(text)
    return re.findall(r"\S+" if tok.info.add_dummy_prefix else r" ?\S+", text)


def tokens_from_corpus(tok, texts: Sequence[str], top: int) -> list[str]:
    """The ``top`` word strings of ``texts`` that save the most tokens: count · (pieces - 1)."""
    if top < 1:
        raise ConfigError(f"top={top}; pass how many tokens to add (>= 1)")
    counts: Counter = Counter()
    for t in texts:
        counts.update(_spm_words(tok, t) if is_spm(tok) else _json_words(tok, t))
    saving = {}
    words = list(counts)
    for w, pieces in zip(words, pieces_of(tok, words)):
        if len(pieces) > 1 and (is_spm(tok) or len(_words(tok, w)) == 1):
            saving[w] = counts[w] * (len(pieces) - 1)
    return [w for w, _ in sorted(saving.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
