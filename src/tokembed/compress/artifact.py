"""Compressed-table artifacts: one folder, ``compressed.safetensors`` + ``compression.json`` (+ ``tokenizer/``).

Unlike a model checkpoint (``checkpoint.py``), the folder holds only the compressed
embedding (``input.*`` tensors) and, for untied models, the compressed head (``output.*``,
``output_bias``); a tied model stores its table once and is rebuilt tied. The JSON records
the method, its options, the shape, the tied flag, the report and the vocabulary
**fingerprint**: loading with a tokenizer of another fingerprint raises
:class:`FingerprintMismatchError`.

Every stored table is a codec (``codec.py``) with ``state() -> (tensors, config)`` and
``from_state``; :data:`KINDS` maps its stored name to the codec, and ``module.embedding_for``
serves it. Loading checks the JSON fields, then every tensor against its codec's specs and the
recorded shape, before any module exists: a truncated, edited or crafted folder raises
:class:`ArtifactError` and never reaches an index or the C kernel.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import TOKEMBED_VERSION, atomic_dir, load_tensors, read_json, save_tensors, write_json
from ..errors import ArtifactError, FingerprintMismatchError
from ..tokenizers import load_tokenizer
from .codec import DenseTable, Spec, check_state
from .hashing import HashBuckets
from .lowrank import LowRank
from .module import CompressedEmbedding, CompressedHead, embedding_for
from .planner import MixedTables
from .pq import PQCodes
from .prune import SparseRows, Trimmed
from .quantize import QuantizedTensor

__all__ = ["CompressedTable", "save_compressed", "load_compressed", "CompressedArtifact", "embedding_module",
           "head_module", "FORMAT", "KINDS"]

FORMAT = "tokembed-compressed"

KINDS: dict[str, type] = {
    "quantized": QuantizedTensor, "cast": DenseTable, "pq": PQCodes, "lowrank": LowRank, "sparse": SparseRows,
    "trimmed": Trimmed, "hashed": HashBuckets, "mixed": MixedTables,
}


def _kind_of(table) -> str:
    for name, cls in KINDS.items():
        if isinstance(table, cls):
            return name
    raise TypeError(f"not a compressed table: {type(table).__name__}")


@dataclass
class CompressedTable:
    """A compressed (V, D) matrix (one of :data:`KINDS`) and how it was made."""

    table: Any  # one of KINDS
    kind: str = ""
    info: dict = field(default_factory=dict)  # method-specific facts for the report (e.g. the plan's bands)

    def __post_init__(self):
        self.kind = self.kind or _kind_of(self.table)

    @property
    def nbytes(self) -> int:
        return int(self.table.nbytes)

    def decode(self) -> torch.Tensor:
        """The reconstructed (V, D) float32 matrix."""
        return self.table.decode()


def embedding_module(ct: CompressedTable, *, scale: float = 1.0):
    """The embedding module that serves a compressed table (times the source's √D ``scale`` when not 1)."""
    m = embedding_for(ct.table)
    return _Scaled(m, scale) if scale != 1.0 else m


def head_module(ct: CompressedTable | None, *, embedding=None, bias: torch.Tensor | None = None) -> CompressedHead:
    """The head serving a compressed table (untied), or tied to ``embedding`` when ``ct`` is None."""
    if ct is None:  # tied: share the embedding's compressed table
        return CompressedHead.tied(getattr(embedding, "inner", embedding), bias=bias)
    return CompressedHead(embedding_for(ct.table), bias=bias)


class _Scaled(torch.nn.Module):
    """Multiply a compressed embedding's output by the source's √D scale (``TokenEmbedding(scale=True)``)."""

    def __init__(self, inner: CompressedEmbedding, scale: float):
        super().__init__()
        self.inner, self.scale = inner, scale
        self.num_embeddings, self.embedding_dim = inner.num_embeddings, inner.embedding_dim

    def forward(self, ids):
        return self.inner(ids) * self.scale

    def weight_matrix(self):
        return self.inner.weight_matrix()


@dataclass
class CompressedArtifact:
    path: Path
    meta: dict
    input: CompressedTable
    output: CompressedTable | None  # None when tied (or no head)
    output_bias: torch.Tensor | None = None
    tokenizer: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def tied(self) -> bool:
        return bool(self.meta.get("tied"))

    def embedding(self):
        return embedding_module(self.input, scale=float(self.meta.get("embedding_scale", 1.0)))

    def head(self, embedding=None):
        if self.tied:
            return head_module(None, embedding=embedding or self.embedding(), bias=self.output_bias)
        if self.output is None:
            return None
        return head_module(self.output, bias=self.output_bias)


def save_compressed(path: str | os.PathLike, *, input: CompressedTable, output: CompressedTable | None = None,
                    tied: bool = False, fingerprint: str | None = None, tokenizer=None, method: str = "",
                    options: dict | None = None, report: dict | None = None, output_bias: torch.Tensor | None = None,
                    embedding_scale: float = 1.0, source: str = "") -> Path:
    """Write a compressed artifact folder atomically."""
    tensors: dict[str, torch.Tensor] = {}
    parts = {}
    for name, ct in (("input", input), ("output", None if tied else output)):
        if ct is None:
            continue
        ts, cfg = ct.table.state()
        tensors.update({f"{name}.{k}": v for k, v in ts.items()})
        parts[name] = {"kind": ct.kind, "config": cfg, "bytes": ct.nbytes}
    if output_bias is not None:
        tensors["output_bias"] = output_bias.detach().float()
    fp = fingerprint or (tokenizer.fingerprint if tokenizer is not None else None)
    meta = {
        "format": FORMAT, "tokembed_version": TOKEMBED_VERSION, "method": method, "options": options or {},
        "shape": list(input.table.shape), "tied": bool(tied), "tokenizer_fingerprint": fp, "source": source,
        "embedding_scale": embedding_scale, **parts, "report": report or {},
    }
    path = Path(path)
    with atomic_dir(path) as tmp:
        save_tensors(tmp / "compressed.safetensors", tensors, metadata={"format": FORMAT})
        write_json(tmp / "compression.json", meta)
        if tokenizer is not None and hasattr(tokenizer, "save"):
            tokenizer.save(tmp / "tokenizer")
    return path


def _check_meta(meta, where: Path) -> tuple[int, int]:
    """The JSON fields the loader relies on, with their types; returns the claimed (V, D)."""
    fix = "the artifact is corrupt or was edited — write it again with 'tokembed compress'"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{where}: not a tokembed compressed artifact (format "
                            f"{meta.get('format') if isinstance(meta, dict) else None!r}); pass the folder written by "
                            "'tokembed compress'")
    shape = meta.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(x) is int and x >= 1 for x in shape)):
        raise ArtifactError(f"{where}: shape={shape!r} is not [V, D] with positive integers; {fix}")
    scale = meta.get("embedding_scale", 1.0)
    if type(scale) not in (int, float) or not math.isfinite(scale):
        raise ArtifactError(f"{where}: embedding_scale={scale!r} is not a finite number; {fix}")
    if not isinstance(meta.get("tied", False), bool) or "input" not in meta or (meta.get("tied") and "output" in meta):
        raise ArtifactError(f"{where}: tied={meta.get('tied')!r} with parts {[p for p in ('input', 'output') if p in meta]} "
                            f"is not a valid layout (one input table; an output table only when untied); {fix}")
    for name in ("input", "output"):
        part = meta.get(name)
        if name in meta and not (isinstance(part, dict) and part.get("kind") in KINDS
                                 and isinstance(part.get("config"), dict)):
            kind = part.get("kind") if isinstance(part, dict) else None
            raise ArtifactError(f"{where}: {name} table kind {kind!r} is not one of {', '.join(KINDS)} (or its config is "
                                "not an object); written by a newer tokembed, or corrupt")
    return shape[0], shape[1]


def _load_part(meta: dict, name: str, tensors: dict, where: Path, VD: tuple[int, int]) -> CompressedTable | None:
    """One stored table, checked against its codec's specs and the artifact's (V, D)."""
    if name not in meta:
        return None
    ts = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(name + ".")}
    kind = meta[name]["kind"]
    table = KINDS[kind].from_state(ts, meta[name]["config"], f"{where}: {name} ({kind})")
    if tuple(table.shape) != VD:
        raise ArtifactError(f"{where}: the {name} table has shape {tuple(table.shape)} but compression.json records "
                            f"shape {list(VD)}; the artifact is corrupt or was edited — write it again with "
                            "'tokembed compress'")
    return CompressedTable(table, kind)


def load_compressed(path: str | os.PathLike, *, tokenizer=None) -> CompressedArtifact:
    """Load a compressed artifact; ``tokenizer`` (optional) must carry the stored fingerprint.

    Every tensor is checked against the metadata (names, dtypes, shapes, code ranges, finiteness) before a
    module is built, so a truncated, edited or crafted artifact raises :class:`ArtifactError`.
    """
    path = Path(path)
    meta = read_json(path / "compression.json")
    VD = _check_meta(meta, path / "compression.json")
    want = meta.get("tokenizer_fingerprint")
    saved_tok = load_tokenizer(path / "tokenizer") if (path / "tokenizer").is_dir() else None
    if tokenizer is not None and want is not None and tokenizer.fingerprint != want:
        raise FingerprintMismatchError(
            f"{path}: the table was compressed for vocabulary fingerprint {want[:12]} (V={VD[0]}), but the "
            f"tokenizer passed has fingerprint {tokenizer.fingerprint[:12]} (V={tokenizer.vocab_size}); pass the "
            f"tokenizer in {path / 'tokenizer'} or the one the source model was trained with"
        )
    where = path / "compressed.safetensors"
    tensors = load_tensors(where)
    stray = sorted(k for k in tensors if k != "output_bias" and k.split(".", 1)[0] not in ("input", "output"))
    if stray:
        raise ArtifactError(f"{where}: unexpected tensors {stray}; the artifact is corrupt or was edited")
    bias = {k: v for k, v in tensors.items() if k == "output_bias"}
    check_state(bias, {"output_bias": Spec(("V",), (torch.float32,), finite=True, optional=True)}, str(where),
                {"V": VD[0]})
    inp, out = (_load_part(meta, name, tensors, where, VD) for name in ("input", "output"))
    return CompressedArtifact(path, meta, inp, out, tensors.get("output_bias"), tokenizer or saved_tok)
