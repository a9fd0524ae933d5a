"""Sharded checkpoints: each rank writes its own rows of the weights and AdamW moments, with a JSON layout.

Unlike :mod:`tokembed.training.checkpoint` (one ``model.safetensors`` written by rank 0), an FSDP
run (``parallel.fsdp = true``, :mod:`tokembed.training.fsdp`) writes one folder, atomically,
together::

    model-rank00000-of-00002.safetensors   rank 0's rows of every weight (+ the unsharded buffers)
    model-rank00001-of-00002.safetensors   rank 1's rows
    optim-rank0000R-of-00002.safetensors   rank R's rows of the AdamW moments (+ the step counters, rank 0)
    shards.json                            the layout: world size; for every tensor its full shape, dtype
                                           and shards (file, first row, row count); every file's sha256
    config.json, tokenizer/, train_state.json, train_state.safetensors (RNG), manifest.json
                                           as in a normal checkpoint (manifest.json is written last)

Rank 0 makes the temporary folder, every rank writes its files into it, rank 0 writes the layout
and the manifest and renames the folder into place (so the run folder must be shared by the ranks,
as for every checkpoint). Nothing is pickled: ``torch.distributed.checkpoint``'s ``.metadata``
is a pickle, so the layout here is tokembed's own JSON.

Reading (:class:`~tokembed.training.shard_layout.ShardedReader`) validates the whole layout before it allocates anything: the
shape and dtype of every tensor, shards that tile ``[0, rows)`` exactly, file names of the form
above, and no more bytes claimed from a file than it has; then, on the first read from a file,
its sha256 and the shapes in its safetensors header. Any mismatch is an :class:`ArtifactError`
naming the entry. ``ShardedReader.read`` returns any row range of a tensor from the shards it
overlaps, so:

- a run on the same world size reads only its own files (resume is bit-exact);
- a run on another world size, or one process, reassembles the rows it needs (the data position is
  exact; the RNG streams differ, as for DDP);
- :func:`consolidate` writes a normal checkpoint (``tokembed eval``/``export``/``vocab`` read one;
  :func:`~tokembed.training.checkpoint.load_checkpoint` also reads a sharded one directly).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..artifacts import TOKEMBED_VERSION, atomic_dir, file_sha256, load_tensors, save_tensors, write_json
from ..errors import ArtifactError
from . import distributed as _dist
from . import fsdp as _fsdp
from .checkpoint import (
    _keep_previous, check_finite_tensors, model_tensors, resolve_checkpoint, save_checkpoint, verify_checkpoint,
    write_manifest,
)
from .shard_layout import SHARDS_MANIFEST, ShardedReader, layout, shard_file

__all__ = [
    "save_sharded_checkpoint",
    "save_run_checkpoint",
    "load_state",
    "consolidate",
]



# ---------------------------------------------------------------------------------------------- writing


def _rows_of(t: torch.Tensor) -> tuple[int, int] | None:
    """``(first row, row count)`` of this rank's shard of an FSDP DTensor (``torch.chunk`` rows on dim 0);
    None for a plain tensor (the same on every rank)."""
    if not isinstance(t, _fsdp._dtensor_type()):
        return None
    from torch.distributed.tensor import Shard

    if tuple(t.placements) != (Shard(0),):
        raise ArtifactError(f"a DTensor with placements {t.placements} cannot be saved; tokembed shards dim 0 only (FSDP)")
    n, world, rank = t.shape[0], t.device_mesh.size(), t.device_mesh.get_local_rank()
    chunk = math.ceil(n / world)
    lo = min(rank * chunk, n)
    rows = min(lo + chunk, n) - lo
    assert t.to_local().shape[0] == rows, (t.shape, t.to_local().shape, rank, world)  # FSDP's layout is torch.chunk's
    return lo, rows


def _write_rank_files(tmp: Path, ctx: _dist.DistContext, groups: dict[str, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Write this rank's ``model-``/``optim-`` files into ``tmp``; returns their layout entries (JSON)."""
    out: dict[str, Any] = {}
    for kind, tensors in groups.items():
        name = shard_file(kind, ctx.rank, ctx.world_size)
        data: dict[str, torch.Tensor] = {}
        layout: dict[str, Any] = {}
        for key, t in tensors.items():
            where = _rows_of(t)
            if where is None and not ctx.is_main:
                continue  # the same on every rank: rank 0 writes it
            lo, rows = where if where is not None else (0, t.shape[0] if t.ndim else 1)
            if rows == 0:
                continue  # more ranks than rows: this rank holds none
            data[key] = t.to_local() if where is not None else t
            layout[f"{kind}.{key}"] = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                                       "offset": lo, "rows": rows}
        save_tensors(tmp / name, data, metadata={"tokembed_version": TOKEMBED_VERSION})
        out[name] = {"sha256": file_sha256(tmp / name), "bytes": (tmp / name).stat().st_size, "tensors": layout}
    return out


def save_sharded_checkpoint(path: str | os.PathLike, *, ctx: _dist.DistContext, model, tokenizer, config,
                            train_tensors: dict[str, Any], train_state: dict[str, Any],
                            keep_previous: bool = False) -> Path:
    """Write a sharded checkpoint folder atomically (a collective: every rank calls it).

    ``train_tensors``: the ``optim.*`` tensors of :func:`~tokembed.training.checkpoint.optimizer_to_tensors`
    (DTensors are written by rows, the rest by rank 0) and anything else (RNG states: rank 0, as is)."""
    path = Path(path)
    if ctx.is_main and keep_previous and path.is_dir():
        _keep_previous(path)
    optim = {k[len("optim."):]: v for k, v in train_tensors.items() if k.startswith("optim.")}
    rest = {k: v for k, v in train_tensors.items() if not k.startswith("optim.")}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_dir(path)) if ctx.is_main else None
        tmp = Path(_dist.gather_json(str(tmp) if tmp is not None else "", ctx)[0])  # rank 0's temp folder
        mine = _write_rank_files(tmp, ctx, {"model": model_tensors(model), "optim": optim})
        parts = _dist.gather_json(mine, ctx)
        if ctx.is_main:
            write_json(tmp / "config.json", {**config.to_dict(), "tokenizer_fingerprint": tokenizer.fingerprint})
            tokenizer.save(tmp / "tokenizer")
            save_tensors(tmp / "train_state.safetensors", rest)
            write_json(tmp / "train_state.json", train_state)
            write_json(tmp / SHARDS_MANIFEST, layout(parts, ctx.world_size))
            write_manifest(tmp)
    ctx.barrier()  # the folder is in place before any rank goes on
    return path


def save_run_checkpoint(path: Path, *, ctx: _dist.DistContext, model, tokenizer, config, train_tensors, train_state,
                        keep_previous: bool, weights: dict[str, Any] | None = None) -> None:
    """The training loop's save (every rank calls it): sharded when an FSDP run asks for it; else one normal
    checkpoint by rank 0 (an FSDP model's weights and moments gathered to every rank first). ``weights``: what
    rank 0 stores instead of ``model``'s tensors (a vocab-parallel run's gathered model)."""
    if _fsdp.is_sharded(model) and config.parallel.sharded:
        save_sharded_checkpoint(path, ctx=ctx, model=model, tokenizer=tokenizer, config=config,
                                train_tensors=train_tensors, train_state=train_state, keep_previous=keep_previous)
        return
    if _fsdp.is_sharded(model):  # collectives: every rank gathers
        model = _fsdp.full_model(model, config)
        train_tensors = {k: _fsdp.full(v) for k, v in train_tensors.items()}
    if ctx.is_main:
        save_checkpoint(path, model=model, tokenizer=tokenizer, config=config, train_tensors=train_tensors,
                        train_state=train_state, keep_previous=keep_previous, weights=weights)
    ctx.barrier()


class _FullSource:
    """A normal checkpoint behind :class:`ShardedReader`'s ``read``/``shape``/``names`` (whole tensors in memory)."""

    def __init__(self, ckpt: Path, device: torch.device):
        self.tensors = {f"model.{k}": v for k, v in load_tensors(ckpt / "model.safetensors", device=str(device)).items()}
        self.tensors.update({k: v for k, v in load_tensors(ckpt / "train_state.safetensors").items() if k.startswith("optim.")})

    def names(self, prefix: str = "") -> list[str]:
        return [k for k in self.tensors if k.startswith(prefix)]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def read(self, name: str, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        t = self.tensors[name]
        return t if not t.ndim or (lo == 0 and hi in (None, t.shape[0])) else t[lo:hi]


def _like(source, name: str, target, device: torch.device, *, check: bool) -> torch.Tensor:
    """Tensor ``name`` laid out like ``target``: this rank's rows as a DTensor for an FSDP shard, else whole."""
    rows = _rows_of(target) if target is not None and source.shape(name) == tuple(target.shape) else None
    if rows is None:
        t = source.read(name).to(device)
    else:
        t = source.read(name, rows[0], rows[0] + rows[1]).to(device)
    if check:
        check_finite_tensors({name: t}, where=str(name))
    if rows is None:
        return t
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(t, target.device_mesh, target.placements, run_check=False, shape=target.shape,
                              stride=target.stride())


def load_state(ckpt: Path, model, optimizer, *, device: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(weights, optimizer tensors)`` of a checkpoint, sharded or not, laid out for ``model``: an FSDP model
    gets DTensors of its own rows (read from the shards that hold them), a plain model whole tensors.
    No collective: each rank reads by itself. Non-finite weights raise :class:`NonFiniteError`."""
    source = ShardedReader(ckpt) if (ckpt / SHARDS_MANIFEST).is_file() else _FullSource(ckpt, device)
    targets = model_tensors(model)
    weights = {k[len("model."):]: _like(source, k, targets.get(k[len("model."):]), device, check=True)
               for k in source.names("model.")}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    optim = {}
    for k in source.names("optim."):
        pid = k.split(".")[1]
        if not pid.isdigit() or int(pid) >= len(params):
            raise ArtifactError(f"{ckpt}: optimizer tensor {k!r} names parameter {pid!r} of {len(params)}; "
                                "the checkpoint is from another model")
        optim[k] = _like(source, k, params[int(pid)], device, check=False)
    return weights, optim


def consolidate(ckpt: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the sharded checkpoint ``ckpt`` (or run folder) as a normal checkpoint folder ``out`` (atomically):
    ``model.safetensors`` with the full weights, the full AdamW moments in ``train_state.safetensors``, the
    rest copied; it verifies and resumes like any checkpoint (on one process, DDP or FSDP)."""
    ckpt = verify_checkpoint(resolve_checkpoint(ckpt))
    if not (ckpt / SHARDS_MANIFEST).is_file():
        raise ArtifactError(f"{ckpt}: not a sharded checkpoint (no {SHARDS_MANIFEST}); it is already a normal one")
    reader = ShardedReader(ckpt)
    with atomic_dir(out) as tmp:
        save_tensors(tmp / "model.safetensors", reader.full_tensors("model."), metadata={"tokembed_version": TOKEMBED_VERSION})
        shutil.copy2(ckpt / "config.json", tmp / "config.json")
        shutil.copytree(ckpt / "tokenizer", tmp / "tokenizer")
        if (ckpt / "train_state.json").is_file():
            state = load_tensors(ckpt / "train_state.safetensors")
            save_tensors(tmp / "train_state.safetensors", {**state, **reader.full_tensors("optim.", strip=False)})
            shutil.copy2(ckpt / "train_state.json", tmp / "train_state.json")
        write_manifest(tmp)
    return Path(out)
