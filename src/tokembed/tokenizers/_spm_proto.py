"""Minimal reader/rewriter of sentencepiece's ``ModelProto`` (protobuf wire format), no protobuf needed.

sentencepiece's Python package needs the ``protobuf`` package to expose a model's
normalizer and trainer settings. tokembed reads the few fields it needs straight from the
wire format instead (schema: sentencepiece/src/sentencepiece_model.proto):

- ``ModelProto``: 1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
- ``SentencePiece``: 1 piece (string), 2 score (float), 3 type (enum, default NORMAL=1)
- ``TrainerSpec``: 3 model_type (UNIGRAM=1, BPE=2, WORD=3, CHAR=4), 4 vocab_size,
  10 character_coverage (float), 35 byte_fallback (bool)
- ``NormalizerSpec``: 1 name, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
  5 escape_whitespaces (bools, default true)

and can retype pieces (used to stop the engine matching user-defined special tokens in text)
or replace the whole piece list (:func:`rebuild_model`, vocabulary surgery), every other field
kept byte for byte.

>>> blob = _field(1, _msg([(1, b"a"), (3, 1)])) + _field(3, _msg([(1, b"identity"), (3, 0)]))
>>> info = parse_model(blob)
>>> info.pieces, info.normalizer_name, info.add_dummy_prefix
([('a', 0.0, 1)], 'identity', False)
>>> parse_model(retype_pieces(blob, {0: USER_DEFINED})).pieces
[('a', 0.0, 4)]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import cached_property

__all__ = ["SpmModelInfo", "PieceTable", "parse_model", "retype_pieces", "rebuild_model", "UNK_PENALTY", "NORMAL", "UNKNOWN", "CONTROL", "USER_DEFINED", "UNUSED", "BYTE"]

# SentencePiece.Type enum values (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE, UNUSED = 1, 2, 3, 4, 6, 5
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
#: Score of an unknown character below the lowest piece score (sentencepiece unigram_model.cc: kUnkPenalty).
UNK_PENALTY = 10.0


@dataclass
class SpmModelInfo:
    """What tokembed needs to know about a sentencepiece model file."""

    pieces: list[tuple[str, float, int]] = field(default_factory=list)  # (piece, score, type) in id order
    model_type: str = "unigram"
    vocab_size: int = 0
    character_coverage: float = 0.9995
    byte_fallback: bool = False
    normalizer_name: str = ""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True
    precompiled_charsmap: bytes = b""  # NormalizerSpec 2: the compiled normalisation rules (empty for identity)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError(f"truncated varint at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"varint longer than 10 bytes at byte {pos}")


def _fields(buf: bytes, base: int = 0):
    """Yield (field_number, wire_type, value, start, end) of one message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt} at byte {base + start}")
        if pos > len(buf) or num == 0:
            raise ValueError(f"truncated or invalid field {num} at byte {base + start}")
        yield num, wt, val, start, pos


def parse_model(blob: bytes) -> SpmModelInfo:
    """Read pieces and settings; raises ValueError (with the byte offset) on a malformed blob."""
    info = SpmModelInfo()
    for num, wt, val, start, _ in _fields(blob):
        if num == 1 and wt == 2:
            piece, score, typ = "", 0.0, NORMAL
            for n2, w2, v2, _, _ in _fields(val, start):
                if n2 == 1 and w2 == 2:
                    try:
                        piece = v2.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise ValueError(f"piece {len(info.pieces)} is not UTF-8 (near byte {start})") from e
                elif n2 == 2 and w2 == 5:
                    (score,) = struct.unpack("<f", v2)
                elif n2 == 3 and w2 == 0:
                    typ = v2
            info.pieces.append((piece, score, typ))
        elif num == 2 and wt == 2:
            for n2, w2, v2, _, _ in _fields(val, start):
                if n2 == 3 and w2 == 0:
                    info.model_type = MODEL_TYPES.get(v2, f"type{v2}")
                elif n2 == 4 and w2 == 0:
                    info.vocab_size = v2
                elif n2 == 10 and w2 == 5:
                    (info.character_coverage,) = struct.unpack("<f", v2)
                elif n2 == 35 and w2 == 0:
                    info.byte_fallback = bool(v2)
        elif num == 3 and wt == 2:
            for n2, w2, v2, _, _ in _fields(val, start):
                if n2 == 1 and w2 == 2:
                    info.normalizer_name = v2.decode("utf-8", errors="replace")
                elif n2 == 2 and w2 == 2:
                    info.precompiled_charsmap = bytes(v2)
                elif n2 == 3 and w2 == 0:
                    info.add_dummy_prefix = bool(v2)
                elif n2 == 4 and w2 == 0:
                    info.remove_extra_whitespaces = bool(v2)
                elif n2 == 5 and w2 == 0:
                    info.escape_whitespaces = bool(v2)
    return info


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _enc_varint(num << 3 | 2) + _enc_varint(len(payload)) + payload


def _msg(items: list[tuple[int, bytes | int]]) -> bytes:
    """Encode (field, bytes|int) pairs (bytes: length-delimited, int: varint); for doctests."""
    return b"".join(_field(n, v) if isinstance(v, bytes) else _enc_varint(n << 3) + _enc_varint(v) for n, v in items)


def retype_pieces(blob: bytes, new_types: dict[int, int]) -> bytes:
    """Copy of ``blob`` with piece ``i`` given type ``new_types[i]``; every other byte unchanged."""
    out = bytearray()
    index = 0
    for num, wt, val, start, end in _fields(blob):
        if num == 1 and wt == 2:
            if index in new_types:
                body = bytearray()
                for n2, _, _, s2, e2 in _fields(val, start):
                    if n2 != 3:
                        body += val[s2:e2]
                body += _enc_varint(3 << 3) + _enc_varint(new_types[index])
                out += _field(1, bytes(body))
            else:
                out += blob[start:end]
            index += 1
        else:
            out += blob[start:end]
    return bytes(out)


#: TrainerSpec fields holding piece ids: unk_id 40, bos_id 41, eos_id 42, pad_id 43 (int32, -1 = none).
_TRAINER_ID_FIELDS = (40, 41, 42, 43)


def _varint_field(num: int, value: int) -> bytes:
    """A varint field; negative int32 values as protobuf writes them (10-byte two's complement)."""
    return _enc_varint(num << 3) + _enc_varint(value & 0xFFFFFFFFFFFFFFFF if value < 0 else value)


def _piece_msg(piece: str, score: float, typ: int) -> bytes:
    body = _field(1, piece.encode("utf-8")) + _enc_varint(2 << 3 | 5) + struct.pack("<f", score)
    return body + (_varint_field(3, typ) if typ != NORMAL else b"")


def rebuild_model(blob: bytes, pieces: list[tuple[str, float, int]], new_id: dict[int, int]) -> bytes:
    """Copy of ``blob`` whose piece list is ``pieces`` (piece, score, type); every other field is kept,
    except TrainerSpec's ``vocab_size`` (the new count) and its unk/bos/eos/pad ids (old id ``i`` ->
    ``new_id[i]``, -1 when absent from ``new_id``).

    >>> blob = _field(1, _msg([(1, b"<unk>"), (3, 2)])) + _field(1, _msg([(1, b"a")]))
    >>> parse_model(rebuild_model(blob, [("<unk>", 0.0, 2), ("b", -1.5, 1), ("a", -2.0, 1)], {})).pieces
    [('<unk>', 0.0, 2), ('b', -1.5, 1), ('a', -2.0, 1)]
    """
    out = bytearray()
    placed = False
    for num, wt, val, start, end in _fields(blob):
        if num == 1 and wt == 2:
            if not placed:
                out += b"".join(_field(1, _piece_msg(*p)) for p in pieces)
                placed = True
        elif num == 2 and wt == 2:
            body = bytearray()
            for n2, w2, v2, s2, e2 in _fields(val, start):
                if n2 == 4 and w2 == 0:
                    continue
                if n2 in _TRAINER_ID_FIELDS and w2 == 0:
                    old = v2 - (1 << 64) if v2 >= 1 << 63 else v2
                    body += _varint_field(n2, new_id.get(old, -1) if old >= 0 else old)
                else:
                    body += val[s2:e2]
            body += _varint_field(4, len(pieces))
            out += _field(2, bytes(body))
        else:
            out += blob[start:end]
    if not placed:
        out = bytearray(b"".join(_field(1, _piece_msg(*p)) for p in pieces)) + out
    return bytes(out)


class PieceTable:
    """A model's pieces as Python encoders need them (the references, and seeded sampling)."""

    def __init__(self, info: SpmModelInfo):
        import numpy as np  # scores in float32, as the engine sums them; numpy stays out of `import tokembed`

        self.pieces = info.pieces
        self.score: dict[str, "np.float32"] = {}
        self.id: dict[str, int] = {}
        self.byte_id: dict[int, int] = {}
        self.unk_id = 0
        for i, (piece, score, typ) in enumerate(info.pieces):
            if typ in (NORMAL, USER_DEFINED):
                self.id[piece], self.score[piece] = i, np.float32(score)
            elif typ == BYTE:
                self.byte_id[int(piece[3:5], 16)] = i
            elif typ == UNKNOWN:
                self.unk_id = i
        self.byte_fallback = info.byte_fallback and len(self.byte_id) == 256
        normal = [s for p, s, t in info.pieces if t == NORMAL]
        self.min_score = np.float32(min(normal)) if normal else np.float32(0.0)
        self.max_len = max((len(p) for p in self.id), default=1)

    @cached_property
    def float_score(self) -> dict[str, float]:
        """Scores as Python floats (for the samplers' arithmetic)."""
        return {p: float(v) for p, v in self.score.items()}

    @cached_property
    def prefixes(self) -> frozenset[str]:
        """Every prefix of every piece: a lattice stops extending a span that is no piece's prefix."""
        return frozenset(p[:k] for p in self.score for k in range(1, len(p) + 1))

    def ids(self, pieces: list[tuple[str, bool]]) -> list[int]:
        """(piece, known) in order -> ids, with byte fallback or merged ``<unk>`` for unknown pieces."""
        out: list[int] = []
        for piece, known in pieces:
            if known:
                out.append(self.id[piece])
            elif self.byte_fallback:
                out.extend(self.byte_id[b] for b in piece.encode("utf-8"))
            elif not out or out[-1] != self.unk_id:
                out.append(self.unk_id)
        return out
