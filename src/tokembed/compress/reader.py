"""Compressed artifacts where a dense table is expected: a source for ``inspect``/``neighbors``, a model for ``eval``.

Unlike ``artifact.py`` (the folder format: write, check and load the codecs), this module reads an
artifact the way the other commands need it, decoding rows through the codec only where they are used:

- :class:`RowDecoder` decodes one stored table (``Ŵ``, V × D) by rows: the rows asked for, one block of
  rows at a time, or the whole table into one float32 array, block by block (no second full-size copy);
- :class:`CompressedSource` is an :class:`~tokembed.sources.EmbeddingSource` whose ``input``/``output``
  matrices are decoded on first use (``inspect``'s measures need the whole matrix, as they do for a dense
  source); ``neighbors`` asks :meth:`CompressedSource.decoder` instead and scores decoded queries against
  decoded blocks, so it never holds the table;
- :func:`load_compressed_model` serves a tokembed checkpoint with the artifact's embedding and head
  (``eval``), after checking that the artifact belongs to it (fingerprint, shape).

The artifact's own bound checks (``load_compressed``) run first: a corrupt or edited artifact is an
:class:`~tokembed.errors.ArtifactError` before anything is decoded.

Shapes: V rows, D width, N rows asked for.

>>> import tempfile, torch
>>> from tokembed.compress import CompressedTable, quantize, save_compressed
>>> from tokembed.vocab import Vocab
>>> W = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
>>> vocab = Vocab([f"t{i}" for i in range(6)])
>>> d = save_compressed(tempfile.mkdtemp() + "/a", input=CompressedTable(quantize(W)), fingerprint=vocab.fingerprint)
>>> dec = RowDecoder(load_compressed(d).input)
>>> dec.shape, dec.rows([5, 0]).shape, [(lo, b.shape[0]) for lo, b in dec.blocks(4)]
((6, 4), (2, 4), [(0, 4), (4, 2)])
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ArtifactError, ConfigError, EmbeddingSourceError, FingerprintMismatchError
from ..sources import EmbeddingSource, _pad_table, _vocab_file
from ..training.checkpoint import load_checkpoint
from ..vocab import Vocab
from .apply import apply_to_model
from .artifact import CompressedArtifact, CompressedTable, load_compressed

__all__ = ["RowDecoder", "CompressedSource", "is_compressed_artifact", "load_compressed_source",
           "load_compressed_model", "DECODE_BLOCK_BYTES"]

#: float32 bytes decoded at once when a table is read block by block (32 MiB: 8192 rows at D = 1024)
DECODE_BLOCK_BYTES = 32 * 2**20


def is_compressed_artifact(path: str | os.PathLike) -> bool:
    """True for a folder ``tokembed compress`` wrote (it holds ``compression.json``)."""
    p = Path(path)
    return p.is_dir() and (p / "compression.json").is_file()


class RowDecoder:
    """Rows of one compressed (V, D) table, decoded through its codec (``gather``) as float32 numpy arrays."""

    def __init__(self, table: CompressedTable):
        self.table = table
        self.shape: tuple[int, int] = tuple(int(x) for x in table.table.shape)  # type: ignore[assignment]

    def default_block_rows(self) -> int:
        """Rows per block so one decoded block is :data:`DECODE_BLOCK_BYTES` (at least 256)."""
        return max(256, DECODE_BLOCK_BYTES // (4 * self.shape[1]))

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(N, D) decoded rows ``ids`` (checked against V by the codec)."""
        t = torch.as_tensor(np.asarray(ids, dtype=np.int64).reshape(-1))
        return self.table.table.gather(t).numpy()

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, (b, D) decoded block)`` for consecutive blocks covering all V rows."""
        V = self.shape[0]
        b = block_rows or self.default_block_rows()
        for lo in range(0, V, b):
            yield lo, self.table.table.gather(torch.arange(lo, min(V, lo + b))).numpy()

    def decode_all(self) -> np.ndarray:
        """The whole decoded table (V, D) float32, filled block by block."""
        out = np.empty(self.shape, dtype=np.float32)
        for lo, block in self.blocks():
            out[lo : lo + block.shape[0]] = block
        return out


class CompressedSource(EmbeddingSource):
    """An embedding source read from a compressed artifact; ``input``/``output`` are decoded on first use.

    ``kind`` is ``"compressed"`` and ``family`` the method (``int8``, ``pq``, ...). ``output`` is the
    decoded head table of an untied artifact, the input table itself when tied, and None when the
    artifact has no head.
    """

    decodes_rows = True  # neighbors: use decoder() and never the whole table

    def __init__(self, artifact: CompressedArtifact, *, vocab, tokenizer, notes: list[str]):
        self.artifact = artifact
        self._decoded: dict[str, np.ndarray] = {}
        has_head = artifact.output is not None or artifact.tied
        names = {"input": "input"}
        if has_head:
            names["output"] = "input" if artifact.tied else "output"
        super().__init__(path=artifact.path, kind="compressed", vocab=vocab, input=None, output=None,  # type: ignore[arg-type]
                         tied=artifact.tied, family=str(artifact.meta.get("method") or "") or None,
                         tokenizer=tokenizer, names=names, notes=notes)

    def __post_init__(self) -> None:  # the dense checks, on the recorded shape: nothing is decoded here
        V = self.shape[0]
        if len(self.vocab) != V:
            raise EmbeddingSourceError(f"{self.path}: the vocabulary has {len(self.vocab)} tokens but the compressed "
                                       f"table has {V} rows; pass the vocabulary that belongs to this artifact")

    @property
    def shape(self) -> tuple[int, int]:
        return RowDecoder(self.artifact.input).shape

    def decoder(self, matrix: str = "input") -> RowDecoder | None:
        """The row decoder of ``matrix`` (``"input"`` or ``"output"``), None when there is no such table."""
        if matrix == "input" or (matrix == "output" and self.artifact.tied):
            return RowDecoder(self.artifact.input)
        if matrix == "output":
            return RowDecoder(self.artifact.output) if self.artifact.output is not None else None
        raise ConfigError(f"matrix={matrix!r}; pass 'input' or 'output'", param="matrix")

    def _matrix(self, matrix: str) -> np.ndarray | None:
        key = "input" if matrix == "output" and self.artifact.tied else matrix
        if key not in self._decoded:
            dec = self.decoder(key)
            if dec is None:
                return None
            self._decoded[key] = dec.decode_all()
        return self._decoded[key]

    # the dataclass fields of EmbeddingSource, decoded lazily (assignments by its __init__ are ignored)
    input = property(lambda self: self._matrix("input"), lambda self, value: None)  # type: ignore[assignment]
    output = property(lambda self: self._matrix("output"), lambda self, value: None)  # type: ignore[assignment]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["has_output_head"] = "output" in self.names
        d["compression"] = {k: self.artifact.meta.get(k) for k in ("method", "options", "source")}
        out = self.artifact.output
        d["compressed_bytes"] = self.artifact.input.nbytes + (out.nbytes if out is not None else 0)
        return d


def _artifact_vocab(art: CompressedArtifact, vocab) -> tuple[Any, Any, list[str]]:
    """(Vocab naming the V rows, tokenizer or None, notes): the artifact's ``tokenizer/``, or ``vocab``."""
    V = int(art.meta["shape"][0])
    notes: list[str] = []
    if vocab is not None:
        vp = Path(vocab).expanduser()
        if not vp.exists():
            raise EmbeddingSourceError(f"{vp}: vocabulary file not found; pass an existing file as vocab", param="vocab")
        return _vocab_file(vp, V)
    tok = art.tokenizer
    if tok is None:
        raise EmbeddingSourceError(
            f"{art.path}: the artifact has no tokenizer/ folder, so its rows have no names; pass the vocabulary of the "
            "source it was compressed from as vocab= (vocab.txt, tokenizer.json or a tokenizer folder)", param="vocab")
    if len(tok.vocab) == V:
        return tok.vocab, tok, notes
    full = _pad_table(list(tok.vocab.tokens), V, art.path / "tokenizer", notes)
    return Vocab(full, special_tokens=tok.vocab.special_tokens), tok, notes


def load_compressed_source(path: str | os.PathLike, *, vocab=None) -> CompressedSource:
    """A :class:`CompressedSource` for the artifact folder ``path`` (rows named by its tokenizer or ``vocab``).

    The names must carry the fingerprint recorded at compression (:class:`FingerprintMismatchError` otherwise).
    """
    p = Path(path)
    tok_dir = p / "tokenizer"
    if tok_dir.exists() and not tok_dir.resolve().is_relative_to(p.resolve()):
        raise ArtifactError(f"{tok_dir}: leads outside the artifact folder {p}; an artifact may only hold its own "
                            "files — copy the tokenizer into the folder")
    art = load_compressed(p)
    v, tok, notes = _artifact_vocab(art, vocab)
    want = art.meta.get("tokenizer_fingerprint")
    if want and v.fingerprint != want:
        raise FingerprintMismatchError(
            f"{p}: the table was compressed for vocabulary fingerprint {want[:12]}, but the vocabulary "
            f"{'passed' if vocab is not None else 'in ' + str(tok_dir)} has fingerprint {v.fingerprint[:12]}; pass the "
            "vocabulary of the source it was compressed from")
    notes.append(f"compressed artifact ({art.meta.get('method') or art.input.kind}): rows decoded through the codec; "
                 "neighbors decode only the queries and one block of rows at a time")
    return CompressedSource(art, vocab=v, tokenizer=tok, notes=notes)


def load_compressed_model(artifact: str | os.PathLike, checkpoint: str | os.PathLike, *, device: str = "cpu"):
    """``(model, tokenizer, train_config, artifact)``: the checkpoint served with the artifact's tables.

    The artifact holds only the embedding (and head); the rest of the model comes from ``checkpoint``,
    which must be the one it was compressed from: same tokenizer fingerprint
    (:class:`FingerprintMismatchError`) and shape (V, D) (:class:`ConfigError`).
    """
    model, tokenizer, config = load_checkpoint(checkpoint, device=device)
    art = load_compressed(artifact, tokenizer=tokenizer)
    V, D = (int(x) for x in art.meta["shape"])
    mv, md = int(model.config.vocab_size), int(model.config.d_model)
    if (V, D) != (mv, md):
        raise ConfigError(f"{artifact}: the compressed table is {V} × {D} but the model in {checkpoint} has "
                          f"vocab_size={mv}, d_model={md}; pass the checkpoint the artifact was compressed from")
    head = type(model.head).__name__
    if art.tied and head != "TiedHead" or not art.tied and art.output is None:
        what = "tied (one table for input and head)" if art.tied else "without a head table"
        raise ConfigError(f"{artifact}: the artifact is {what}, but the model in {checkpoint} has a {head}; serving it "
                          "would replace that head with another table — pass the checkpoint the artifact was compressed "
                          "from (compress an untied model as is, or a tied one with --untie, to get a head table)")
    apply_to_model(art, model)
    return model.to(device).eval(), tokenizer, config, art
