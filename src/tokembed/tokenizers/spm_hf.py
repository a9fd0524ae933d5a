"""A sentencepiece model as a Hugging Face ``tokenizer.json`` with the same ids (and the HF side files).

Unlike :mod:`.formats` (which reads foreign files into tokembed) this module writes the other
way: a sentencepiece ``ModelProto`` (read by :mod:`._spm_proto`, no ``protobuf`` needed) becomes
an engine file the ``tokenizers`` library and ``transformers.AutoTokenizer`` run:

- ``unigram``: a ``Unigram`` model over ``[piece, score]`` (list position = id), byte fallback;
- ``bpe``: a ``BPE`` model whose merges are every pair ``a b`` with ``a``, ``b`` and ``ab`` normal
  pieces, ordered by the score of ``ab`` (sentencepiece merges the best-scoring adjacent pair whose
  concatenation is a piece, so these merges in this order are its algorithm); byte fallback;
- ``char``: a ``BPE`` model without merges (each character is looked up, bytes for the rest);
- normalizer: the model's precompiled rules (``Precompiled``), extra-whitespace removal, the dummy
  prefix (``Prepend("▁")``) and ``" " -> "▁"``, in sentencepiece's order; decoder the inverse.

Control and unknown pieces are special added tokens at their own ids (in a Unigram model scored
:data:`CONTROL_SCORE_GAP` below the lowest piece, so text never produces them, as in
sentencepiece). Ids equal the ``.model``'s (tests: single strings, batches, text without spaces,
Unicode, byte fallback, special strings typed in text).

:func:`hf_side_files` gives ``tokenizer_config.json`` / ``special_tokens_map.json`` for any
tokembed tokenizer, so ``AutoTokenizer.from_pretrained(folder)`` knows pad/bos/eos/unk.

>>> from tokembed.tokenizers import UnigramTokenizer
>>> tok = UnigramTokenizer.train(["The cat sat on the mat. " * 20, "A dog, a cat and a rat."], 278)
>>> doc = spm_to_hf_json(tok.info)
>>> doc["model"]["type"], len(doc["model"]["vocab"]) == tok.vocab_size
('Unigram', True)
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ._spm_proto import CONTROL, NORMAL, UNKNOWN, USER_DEFINED, SpmModelInfo

__all__ = ["spm_to_hf_json", "spm_merges", "hf_side_files", "probe_texts", "ROLE_KEYS", "CONTROL_SCORE_GAP"]

#: tokembed role -> transformers' special-token attribute.
ROLE_KEYS = {"pad": "pad_token", "bos": "bos_token", "eos": "eos_token", "unk": "unk_token",
             "cls": "cls_token", "sep": "sep_token", "mask": "mask_token"}  # fmt: skip

_SPACE = "\u2581"
#: How far below the lowest normal piece a Unigram ``tokenizer.json`` scores control/unknown pieces. The
#: engine's lattice holds every vocab piece, so ``"</s>"`` typed in text would match its control piece;
#: scored this low it never wins. (The unknown-character penalty moves with the lowest score, which
#: changes nothing when unknown characters occur in no piece, as in every model sentencepiece trains.)
CONTROL_SCORE_GAP = 1000.0


def spm_merges(pieces: list[tuple[str, float, int]]) -> list[list[str]]:
    """Every ``[a, b]`` with ``a``, ``b``, ``a + b`` normal (or user-defined) pieces, best-scoring ``a + b``
    first (ties: lower id of ``a + b``, then of ``a``); sentencepiece's BPE merge order.

    >>> spm_merges([("a", -1.0, 1), ("b", -2.0, 1), ("ab", -0.5, 1), ("<s>", 0.0, 3)])
    [['a', 'b']]
    """
    ids = {p: i for i, (p, _, t) in enumerate(pieces) if t in (NORMAL, USER_DEFINED)}
    found = []
    for piece, j in ids.items():
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            ia, ib = ids.get(a), ids.get(b)
            if ia is not None and ib is not None:
                found.append((-pieces[j][1], j, ia, ib, a, b))
    found.sort()
    return [[a, b] for *_, a, b in found]


def _normalizer(info: SpmModelInfo) -> dict[str, Any] | None:
    steps: list[dict[str, Any]] = []
    if info.precompiled_charsmap:
        steps.append({"type": "Precompiled", "precompiled_charsmap": base64.b64encode(info.precompiled_charsmap).decode("ascii")})
    if info.remove_extra_whitespaces:
        steps += [{"type": "Strip", "strip_left": True, "strip_right": True},
                  {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]  # fmt: skip
    if info.add_dummy_prefix:
        steps.append({"type": "Prepend", "prepend": _SPACE})
    if info.escape_whitespaces:
        steps.append({"type": "Replace", "pattern": {"String": " "}, "content": _SPACE})
    return {"type": "Sequence", "normalizers": steps} if steps else None


def _decoder(info: SpmModelInfo) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    if info.escape_whitespaces:
        steps.append({"type": "Replace", "pattern": {"String": _SPACE}, "content": " "})
    steps += [{"type": "ByteFallback"}, {"type": "Fuse"}]
    if info.add_dummy_prefix:
        steps.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {"type": "Sequence", "decoders": steps}


def _model(info: SpmModelInfo, names: set[str]) -> dict[str, Any]:
    pieces = info.pieces
    unk = next((i for i, (_, _, t) in enumerate(pieces) if t == UNKNOWN), None)
    if info.model_type == "unigram":  # control pieces scored out of reach: sentencepiece never matches them in text
        low = min((s for _, s, t in pieces if t == NORMAL), default=0.0) - CONTROL_SCORE_GAP
        vocab = [[p, float(low if t in (CONTROL, UNKNOWN) or p in names else s)] for p, s, t in pieces]
        return {"type": "Unigram", "unk_id": unk, "vocab": vocab, "byte_fallback": info.byte_fallback}
    merges = spm_merges(pieces) if info.model_type == "bpe" else []
    return {"type": "BPE", "dropout": None, "unk_token": pieces[unk][0] if unk is not None else None,
            "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": info.model_type == "bpe",
            "byte_fallback": info.byte_fallback, "ignore_merges": False,
            "vocab": {p: i for i, (p, _, _) in enumerate(pieces)}, "merges": merges}  # fmt: skip


def spm_to_hf_json(info: SpmModelInfo, *, special: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``tokenizer.json`` document of a sentencepiece model (see the module docstring).

    ``special``: the piece strings tokembed treats as special tokens (default: control and unknown
    pieces); they become special added tokens. Raises ValueError for model types HF cannot express
    (``word``).
    """
    if info.model_type not in ("unigram", "bpe", "char"):
        raise ValueError(f"sentencepiece model type {info.model_type!r} has no tokenizer.json equivalent")
    names = set(special.values()) if special is not None else {p for p, _, t in info.pieces if t in (CONTROL, UNKNOWN)}
    added = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": p in names or t in (CONTROL, UNKNOWN)}
             for i, (p, _, t) in enumerate(info.pieces) if p in names or t in (CONTROL, UNKNOWN, USER_DEFINED)]  # fmt: skip
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": _normalizer(info),
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": _decoder(info),
        "model": _model(info, names),
    }


#: Texts every conversion is checked on (spaces, none, tabs, digits, accents, CJK, emoji, byte fallback).
_PROBES = ("Hello, world! 12345 naïve café 東京 🙂", "nospacesatallinthistext", "  two  spaces\tand\nlines  ", "x", "Ωμέγα ✓ \x00")


def probe_texts(info: SpmModelInfo, *, limit: int = 2000) -> list[str]:
    """Texts to compare a conversion on: fixed probes and the first ``limit`` normal pieces' own text."""
    words = [p.replace(_SPACE, " ") for p, _, t in info.pieces[: limit + 300] if t == NORMAL][:limit]
    return [*_PROBES, *(" ".join(words[k : k + 50]) for k in range(0, len(words), 50)), *("".join(words[k : k + 50]) for k in range(0, len(words), 50))]


def hf_side_files(tok, *, tokenizer_class: str = "PreTrainedTokenizerFast") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tokenizer_config.json, special_tokens_map.json)`` for ``tok``: its pad/bos/eos/unk/cls/sep/mask
    by role, other special tokens as ``additional_special_tokens``, and ``added_tokens_decoder``."""
    specials = tok.special_tokens
    stm: dict[str, Any] = {ROLE_KEYS[r]: s for r, s in specials.items() if r in ROLE_KEYS}
    extra = [s for r, s in specials.items() if r not in ROLE_KEYS and s not in stm.values()]
    if extra:
        stm["additional_special_tokens"] = extra
    decoder = {str(tok.vocab[s]): {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
               for s in sorted(set(specials.values()), key=tok.vocab.__getitem__)}  # fmt: skip
    cfg = {"tokenizer_class": tokenizer_class, "added_tokens_decoder": decoder, **stm,
           "clean_up_tokenization_spaces": False, "split_special_tokens": True, "model_max_length": 1_000_000_000_000_000_019_884_624_838_656}  # fmt: skip
    if "bos" in specials or "eos" in specials:
        cfg.update(add_bos_token=False, add_eos_token=False)
    return cfg, stm
