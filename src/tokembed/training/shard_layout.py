"""The layout of a sharded checkpoint (``shards.json``) and reading row ranges of its tensors from the shard files.

Unlike :mod:`tokembed.training.sharded_checkpoint` (which writes the ranks' files and loads them into a run),
this module only reads: :class:`ShardedReader` validates a whole layout before it allocates anything, then
reads any rows ``[lo, hi)`` of a tensor from the shards that overlap them. The layout::

    {"format": 1, "world_size": W,
     "files":   {"model-rank00000-of-0000W.safetensors": {"sha256": ..., "bytes": ...}, ...},
     "tensors": {"model.<state-dict name>" or "optim.<param id>.<moment>":
                   {"shape": [N, ...], "dtype": "float32",
                    "shards": [{"file": ..., "offset": first row, "rows": row count}, ...]}}}

The shards of a tensor tile its ``N`` rows in order (a 0-d tensor: one shard of 1 row). Nothing is pickled.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from ..artifacts import TOKEMBED_VERSION, check_schema, file_sha256, read_json
from ..errors import ArtifactError

__all__ = ["ShardedReader", "shard_file", "layout", "SHARDS_MANIFEST", "SHARDS_FORMAT"]

#: the shard layout of a sharded checkpoint
SHARDS_MANIFEST = "shards.json"
SHARDS_FORMAT = 1
#: ``model-rank00003-of-00004.safetensors``: 5 digits, as Hugging Face names its shards
_FILE_RE = re.compile(r"^(model|optim)-rank(\d{5})-of-(\d{5})\.safetensors$")
#: dtypes a layout may name (torch name -> safetensors header name)
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
           "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
_MAX_NDIM = 8
_MAX_WORLD = 1 << 16


def shard_file(kind: str, rank: int, world_size: int) -> str:
    """The file of rank ``rank``'s shards.

    >>> shard_file("model", 3, 4)
    'model-rank00003-of-00004.safetensors'
    """
    return f"{kind}-rank{rank:05d}-of-{world_size:05d}.safetensors"


def layout(parts: list[dict[str, Any]], world_size: int) -> dict[str, Any]:
    """``shards.json`` from every rank's file entries."""
    files, tensors = {}, {}
    for part in parts:
        for fname, entry in part.items():
            files[fname] = {"sha256": entry["sha256"], "bytes": entry["bytes"]}
            for key, t in entry["tensors"].items():
                spec = tensors.setdefault(key, {"shape": t["shape"], "dtype": t["dtype"], "shards": []})
                spec["shards"].append({"file": fname, "offset": t["offset"], "rows": t["rows"]})
    for spec in tensors.values():
        spec["shards"].sort(key=lambda s: s["offset"])
    return {"format": SHARDS_FORMAT, "world_size": world_size, "tokembed_version": TOKEMBED_VERSION,
            "files": files, "tensors": tensors}


def _check_files(files: Any, world: int, where: str) -> dict[str, dict]:
    if not isinstance(files, dict):
        raise ArtifactError(f"{where} ['files']: expected an object; the layout is corrupt")
    for fname, entry in files.items():
        m = _FILE_RE.match(fname)
        if m is None or int(m.group(2)) >= world or int(m.group(3)) != world:
            raise ArtifactError(f"{where} ['files']: {fname!r} is not a shard file name of a world of {world} "
                                f"(model|optim-rankRRRRR-of-{world:05d}.safetensors); the layout is corrupt or hostile")
        check_schema(entry, {"sha256": str, "bytes": int}, where=f"{where} ['files'][{fname!r}]")
        if not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) or entry["bytes"] < 0:
            raise ArtifactError(f"{where} ['files'][{fname!r}]: sha256/bytes {entry['sha256']!r:.20}/{entry['bytes']} "
                                "are not a sha256 hex digest and a size; the layout is corrupt")
    return files


def _check_tensor(key: str, spec: Any, files: dict, claimed: dict[str, int], where: str) -> dict:
    """One tensor's layout: shape, dtype, shards tiling ``[0, rows)``; adds its bytes to ``claimed`` per file."""
    at = f"{where} ['tensors'][{key!r:.80}]"
    if not re.fullmatch(r"(model|optim)\.[^/\\\x00]+", key):
        raise ArtifactError(f"{at}: a tensor name is 'model.<name>' or 'optim.<param id>.<moment>'; the layout is corrupt")
    spec = check_schema(spec, {"shape": list, "dtype": str, "shards": list}, where=at)
    shape = spec["shape"]
    if len(shape) > _MAX_NDIM or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ArtifactError(f"{at}: shape {shape!r:.60} is not a list of at most {_MAX_NDIM} sizes >= 0; the layout is corrupt")
    if spec["dtype"] not in _DTYPES:
        raise ArtifactError(f"{at}: dtype {spec['dtype']!r:.30} is not one of {', '.join(_DTYPES)}; the layout is corrupt")
    n = shape[0] if shape else 1
    row_bytes = math.prod(shape[1:]) * torch.empty(0, dtype=getattr(torch, spec["dtype"])).element_size()
    end = 0
    for i, s in enumerate(spec["shards"]):
        s = check_schema(s, {"file": str, "offset": int, "rows": int}, where=f"{at} ['shards'][{i}]")
        if s["file"] not in files:
            raise ArtifactError(f"{at} ['shards'][{i}]: file {s['file']!r:.60} is not in ['files']; the layout is corrupt")
        if s["offset"] != end or s["rows"] < 1 or s["offset"] + s["rows"] > n:
            raise ArtifactError(
                f"{at} ['shards'][{i}]: rows [{s['offset']}, {s['offset'] + s['rows']}) do not continue the shards "
                f"before it at row {end} within the {n} rows of shape {shape}; the shards must tile the rows in order — "
                "the layout is corrupt or hostile")
        end = s["offset"] + s["rows"]
        claimed[s["file"]] = claimed.get(s["file"], 0) + s["rows"] * row_bytes
    if end != n:
        raise ArtifactError(f"{at}: the shards cover rows [0, {end}) of {n}; the layout is incomplete")
    return spec


class ShardedReader:
    """The layout of a sharded checkpoint (``shards.json``), validated whole on construction, and row
    ranges of its tensors read from the shard files (each file's sha256 and header checked on first use).

    Tensor names are ``model.<state-dict name>`` and ``optim.<param id>.<moment>``.
    """

    def __init__(self, ckpt: str | os.PathLike):
        self.ckpt = Path(ckpt)
        where = str(self.ckpt / SHARDS_MANIFEST)
        raw = check_schema(read_json(self.ckpt / SHARDS_MANIFEST),
                           {"format": int, "world_size": int, "files": dict, "tensors": dict}, where=where)
        if raw["format"] != SHARDS_FORMAT:
            raise ArtifactError(f"{where}: format {raw['format']} is not {SHARDS_FORMAT}; written by another tokembed version")
        if not 1 <= raw["world_size"] <= _MAX_WORLD:
            raise ArtifactError(f"{where}: world_size={raw['world_size']} outside [1, {_MAX_WORLD}]; the layout is corrupt")
        self.world_size = raw["world_size"]
        self.files = _check_files(raw["files"], self.world_size, where)
        claimed: dict[str, int] = {}
        self.tensors = {k: _check_tensor(k, v, self.files, claimed, where) for k, v in raw["tensors"].items()}
        for fname, need in claimed.items():  # a shape larger than its files could hold is never allocated
            if need > self.files[fname]["bytes"]:
                raise ArtifactError(f"{where}: the shards placed in {fname} need {need} bytes but the file has "
                                    f"{self.files[fname]['bytes']}; the shapes are corrupt or hostile")
        self._checked: set[str] = set()

    def names(self, prefix: str = "") -> list[str]:
        return [k for k in self.tensors if k.startswith(prefix)]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._spec(name)["shape"])

    def _spec(self, name: str) -> dict:
        if name not in self.tensors:
            raise ArtifactError(f"{self.ckpt / SHARDS_MANIFEST}: no tensor {name!r}; the checkpoint is from another model")
        return self.tensors[name]

    def _open(self, fname: str):
        """The file's safetensors handle, after its sha256 and every shard it holds are checked (once)."""
        from safetensors import safe_open

        path = self.ckpt / fname
        if fname not in self._checked:
            entry = self.files[fname]
            if not path.is_file() or path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
                raise ArtifactError(f"{path}: missing, or its size or sha256 differs from {SHARDS_MANIFEST}; the shard is "
                                    "corrupt — restore it, or resume from the run's previous checkpoint")
        try:
            f = safe_open(str(path), framework="pt")
        except Exception as e:  # safetensors' own error types
            raise ArtifactError(f"{path}: not a valid safetensors file ({e}); the shard is corrupt") from e
        if fname not in self._checked:
            self._check_header(fname, f)
            self._checked.add(fname)
        return f

    def _check_header(self, fname: str, f) -> None:
        keys = set(f.keys())
        for name, spec in self.tensors.items():
            for s in spec["shards"]:
                if s["file"] != fname:
                    continue
                key = name.split(".", 1)[1]
                want = [s["rows"], *spec["shape"][1:]] if spec["shape"] else []
                got = f.get_slice(key) if key in keys else None
                if got is None or list(got.get_shape()) != want or got.get_dtype() != _DTYPES[spec["dtype"]]:
                    have = "absent" if got is None else f"{got.get_dtype()} {got.get_shape()}"
                    raise ArtifactError(f"{self.ckpt / fname}: tensor {key!r} is {have}, but {SHARDS_MANIFEST} says "
                                        f"{_DTYPES[spec['dtype']]} {want}; the shard and its layout disagree")

    def read(self, name: str, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Rows ``[lo, hi)`` of tensor ``name`` (all of it by default; a 0-d tensor as itself)."""
        spec = self._spec(name)
        shape, key = spec["shape"], name.split(".", 1)[1]
        n = shape[0] if shape else 1
        hi = n if hi is None else hi
        if not 0 <= lo <= hi <= n:
            raise ArtifactError(f"{self.ckpt}: rows [{lo}, {hi}) of {name!r} are outside its {n} rows")
        parts = [s for s in spec["shards"] if s["offset"] < hi and s["offset"] + s["rows"] > lo]
        handles = {s["file"]: self._open(s["file"]) for s in parts}  # validated before the allocation below
        if not shape:
            return handles[parts[0]["file"]].get_tensor(key)
        out = torch.empty((hi - lo, *shape[1:]), dtype=getattr(torch, spec["dtype"]))
        for s in parts:
            a, b = max(lo, s["offset"]), min(hi, s["offset"] + s["rows"])
            out[a - lo:b - lo] = handles[s["file"]].get_slice(key)[a - s["offset"]:b - s["offset"]]
        return out

    def full_tensors(self, prefix: str, *, strip: bool = True) -> dict[str, torch.Tensor]:
        """Every tensor whose name starts with ``prefix``, whole (``strip``: without the prefix)."""
        return {(k[len(prefix):] if strip else k): self.read(k) for k in self.names(prefix)}
