"""Compressed-table artifacts: one folder, ``compressed.safetensors`` + ``compression.json`` (+ ``tokenizer/``).

Unlike a model checkpoint (``checkpoint.py``), the folder holds only the compressed
embedding (``input.*`` tensors) and, for untied models, the compressed head (``output.*``,
``output_bias``); a tied model stores its table once and is rebuilt tied. The JSON records
the method, its options, the shape, the tied flag, the report and the vocabulary
**fingerprint**: loading with a tokenizer of another fingerprint raises
:class:`FingerprintMismatchError`.

Every stored table is a small dataclass with ``state() -> (tensors, config)`` and
``from_state``; :data:`KINDS` maps its name to the class and to the module that serves it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import TOKEMBED_VERSION, atomic_dir, load_tensors, read_json, save_tensors, write_json
from ..errors import ArtifactError, FingerprintMismatchError
from .hashing import BucketEmbedding, HashBuckets
from .lowrank import LowRank
from .planner import MixedEmbedding, MixedTables
from .pq import PQCodes, PQEmbedding
from .prune import SparseEmbedding, SparseRows, Trimmed, TrimmedEmbedding, TrimmedHead
from .quantize import QuantizedTensor
from .quantized import CastEmbedding, QuantizedEmbedding, QuantizedHead

__all__ = ["CompressedTable", "save_compressed", "load_compressed", "CompressedArtifact", "embedding_module",
           "head_module", "FORMAT"]

FORMAT = "tokembed-compressed"


@dataclass
class _HalfTable:
    weight: torch.Tensor  # (V, D) float16 / bfloat16

    @property
    def shape(self):
        return tuple(self.weight.shape)

    @property
    def nbytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()

    def decode(self) -> torch.Tensor:
        return self.weight.float()

    def state(self):
        return {"weight": self.weight}, {"dtype": str(self.weight.dtype).replace("torch.", "")}

    @classmethod
    def from_state(cls, t, c):
        return cls(t["weight"])


KINDS: dict[str, type] = {
    "quantized": QuantizedTensor, "cast": _HalfTable, "pq": PQCodes, "lowrank": LowRank, "sparse": SparseRows,
    "trimmed": Trimmed, "hashed": HashBuckets, "mixed": MixedTables,
}


def _kind_of(table) -> str:
    for name, cls in KINDS.items():
        if isinstance(table, cls):
            return name
    raise TypeError(f"not a compressed table: {type(table).__name__}")


@dataclass
class CompressedTable:
    """A compressed (V, D) matrix and how it was made."""

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
        t = self.table
        return t.dequantize() if isinstance(t, QuantizedTensor) else t.decode()


def embedding_module(ct: CompressedTable, *, scale: float = 1.0):
    """The embedding module that serves a compressed table."""
    t = ct.table
    if ct.kind == "quantized":
        m = QuantizedEmbedding(t)
    elif ct.kind == "cast":
        m = CastEmbedding(t.weight, dtype="bf16" if t.weight.dtype == torch.bfloat16 else "fp16")
    elif ct.kind == "pq":
        m = PQEmbedding(t)
    elif ct.kind == "lowrank":
        m = t.module()
    elif ct.kind == "sparse":
        m = SparseEmbedding(t)
    elif ct.kind == "trimmed":
        m = TrimmedEmbedding(t)
    elif ct.kind == "hashed":
        m = BucketEmbedding(t)
    else:
        m = MixedEmbedding(t)
    return _Scaled(m, scale) if scale != 1.0 else m


def head_module(ct: CompressedTable | None, *, embedding=None, bias: torch.Tensor | None = None):
    """The head serving a compressed table (untied), or tied to ``embedding`` when ``ct`` is None."""
    from ..heads import TiedHead

    if ct is None:  # tied: share the embedding's compressed table
        inner = getattr(embedding, "inner", embedding)
        if isinstance(inner, QuantizedEmbedding):
            return QuantizedHead.tied(inner, bias=bias)
        head = TiedHead(inner, bias=bias is not None)
    elif ct.kind == "quantized":
        return QuantizedHead(QuantizedEmbedding(ct.table), bias=bias)
    elif ct.kind == "trimmed":
        t = ct.table
        return TrimmedHead(Trimmed(t.table, t.id_map, t.bias if t.bias is not None else None))
    else:
        head = TiedHead(embedding_module(ct), bias=bias is not None)  # z = Ŵ h + b, Ŵ decoded per call
    if bias is not None:
        with torch.no_grad():
            head.bias.copy_(bias)
    return head


class _Scaled(torch.nn.Module):
    """Multiply a compressed embedding's output by the source's √D scale (``TokenEmbedding(scale=True)``)."""

    def __init__(self, inner, scale: float):
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


def load_compressed(path: str | os.PathLike, *, tokenizer=None) -> CompressedArtifact:
    """Load a compressed artifact; ``tokenizer`` (optional) must carry the stored fingerprint."""
    path = Path(path)
    meta = read_json(path / "compression.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{path / 'compression.json'}: not a tokembed compressed artifact (format "
                            f"{meta.get('format') if isinstance(meta, dict) else None!r}); pass the folder written by "
                            "'tokembed compress'")
    want = meta.get("tokenizer_fingerprint")
    saved_tok = None
    if (path / "tokenizer").is_dir():
        from ..tokenizers import load_tokenizer

        saved_tok = load_tokenizer(path / "tokenizer")
    if tokenizer is not None and want is not None and tokenizer.fingerprint != want:
        raise FingerprintMismatchError(
            f"{path}: the table was compressed for vocabulary fingerprint {want[:12]} (V={meta['shape'][0]}), but the "
            f"tokenizer passed has fingerprint {tokenizer.fingerprint[:12]} (V={tokenizer.vocab_size}); pass the "
            f"tokenizer in {path / 'tokenizer'} or the one the source model was trained with"
        )
    tensors = load_tensors(path / "compressed.safetensors")

    def part(name):
        if name not in meta:
            return None
        ts = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(name + ".")}
        kind = meta[name]["kind"]
        if kind not in KINDS:
            raise ArtifactError(f"{path}: unknown table kind {kind!r} for {name}; written by a newer tokembed?")
        try:
            return CompressedTable(KINDS[kind].from_state(ts, meta[name]["config"]), kind)
        except KeyError as e:
            raise ArtifactError(f"{path / 'compressed.safetensors'}: tensor {name}.{e.args[0]} is missing; the artifact "
                                "is truncated or corrupt") from e

    return CompressedArtifact(path, meta, part("input"), part("output"), tensors.get("output_bias"),
                              tokenizer or saved_tok)
