"""Model checkpoints: a folder with weights, config and tokenizer, written atomically.

Unlike :mod:`tokembed.artifacts` (generic atomic files), this module knows what a
checkpoint holds::

    model.safetensors        the weights; a tied table is stored once (aliases are restored on load)
    config.json              the TrainConfig (with its ModelConfig) as JSON
    tokenizer/               the tokembed tokenizer folder (its fingerprint is checked on load)
    train_state.safetensors  optimizer moments and RNG states (resume only)
    train_state.json         step, data position, schedule, optimizer groups, history (resume only)
    manifest.json            sha256 and size of every other file (written last, verified on every load)

Nothing is pickled. Every load verifies the manifest (one flipped bit is an :class:`ArtifactError`
naming the file), compares the saved tokenizer's fingerprint with the one recorded in
``config.json`` (and with a tokenizer passed in: :class:`FingerprintMismatchError` saying what
differs), and refuses non-finite weights (:class:`NonFiniteError` naming tensor and rows).

A training run keeps its previous checkpoint next to the current one (``checkpoint.prev/``,
hard links, so no extra disk for unchanged files): :func:`good_checkpoint` returns the newest
one that verifies, so a resume skips a corrupt checkpoint for the previous good one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..artifacts import (
    TOKEMBED_VERSION, atomic_dir, check_schema, file_sha256, load_tensors, read_json, save_tensors, write_json,
)
from ..errors import ArtifactError, FingerprintMismatchError, NonFiniteError
from ..model import build_model
from ..tokenizers import load_tokenizer
from .config import TrainConfig
from .shard_layout import SHARDS_MANIFEST, ShardedReader

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "model_tensors",
    "load_model_tensors",
    "optimizer_to_tensors",
    "optimizer_from_tensors",
    "verify_checkpoint",
    "write_manifest",
    "good_checkpoint",
    "remove_stale_temps",
    "read_train_state",
    "check_finite_tensors",
    "CHECKPOINT_DIR",
    "PREVIOUS_DIR",
    "MANIFEST",
    "SHARDS_MANIFEST",
]

#: The checkpoint folder inside a run folder.
CHECKPOINT_DIR = "checkpoint"
#: The previous checkpoint of a run (kept so a resume can fall back when the newest one is corrupt).
PREVIOUS_DIR = "checkpoint.prev"
#: sha256 and size of every file of a checkpoint; written last.
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder, given it or the run folder that holds ``checkpoint/``."""
    p = Path(path)
    for c in (p, p / CHECKPOINT_DIR):  # shards.json: a sharded checkpoint (tokembed.training.sharded_checkpoint)
        if (c / "model.safetensors").is_file() or (c / SHARDS_MANIFEST).is_file():
            return c
    raise ArtifactError(f"{p}: no model.safetensors (or {SHARDS_MANIFEST}) here or in {p / CHECKPOINT_DIR}; "
                        "pass a run folder written by 'tokembed train'")


def model_tensors(model) -> dict[str, Any]:
    """The state dict with shared storage kept once (the tied head's table lives under the embedding's name)."""
    out: dict[str, Any] = {}
    seen: set[tuple[int, int, tuple]] = set()
    for name, t in model.state_dict().items():
        local = t.to_local() if hasattr(t, "to_local") else t  # an FSDP shard (DTensor): its local rows' storage
        key = (local.untyped_storage().data_ptr(), local.storage_offset(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        out[name] = t
    return out


def load_model_tensors(model, tensors: dict[str, Any], *, where: str = "") -> None:
    """Load ``tensors`` into ``model``; keys missing only because they alias a loaded tensor are fine."""
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    aliases = set(model.state_dict()) - set(model_tensors(model))
    truly_missing = sorted(set(missing) - aliases)
    if truly_missing or unexpected:
        raise ArtifactError(
            f"{where}: weights do not match the model built from config.json "
            f"(missing {truly_missing[:5]}, unexpected {sorted(unexpected)[:5]}); the checkpoint is from another version or design"
        )


def optimizer_to_tensors(optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors-able tensors and JSON (no pickle)."""
    sd = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(optimizer, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = t
    for pid, d in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(d)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def write_manifest(folder: Path) -> None:
    """Write ``folder/manifest.json``: sha256 and size of every file in ``folder`` (call it last)."""
    files = {f.relative_to(folder).as_posix(): {"sha256": file_sha256(f), "bytes": f.stat().st_size}
             for f in sorted(folder.rglob("*")) if f.is_file() and f.relative_to(folder).as_posix() != MANIFEST}
    write_json(folder / MANIFEST, {"format": MANIFEST_FORMAT, "files": files, "tokembed_version": TOKEMBED_VERSION})


def verify_checkpoint(ckpt: str | os.PathLike) -> Path:
    """Check every file of ``ckpt`` against ``manifest.json`` (size, then sha256); an :class:`ArtifactError`
    names the first file that differs, is missing, or is not in the manifest."""
    ckpt = Path(ckpt)
    if not (ckpt / MANIFEST).is_file():
        raise ArtifactError(f"{ckpt}: no {MANIFEST} (checksums); the checkpoint is incomplete or from an older tokembed without checksums — "
                            "retrain, or resume from the run's previous checkpoint")
    manifest = check_schema(read_json(ckpt / MANIFEST), {"format": int, "files": dict}, where=ckpt / MANIFEST)
    for rel, entry in manifest["files"].items():
        entry = check_schema(entry, {"sha256": str, "bytes": int}, where=f"{ckpt / MANIFEST} [{rel!r}]")
        f = ckpt / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ArtifactError(f"{ckpt / MANIFEST}: path {rel!r} leaves the checkpoint folder; the manifest is corrupt")
        if not f.is_file():
            raise ArtifactError(f"{f}: missing (listed in {MANIFEST}); the checkpoint is incomplete")
        if f.stat().st_size != entry["bytes"] or file_sha256(f) != entry["sha256"]:
            raise ArtifactError(f"{f}: checksum differs from {MANIFEST} (the file changed or is corrupt); "
                                "restore it, or resume from the run's previous checkpoint")
    extra = sorted(f.relative_to(ckpt).as_posix() for f in ckpt.rglob("*")
                   if f.is_file() and f.name != MANIFEST and f.relative_to(ckpt).as_posix() not in manifest["files"])
    if extra:
        raise ArtifactError(f"{ckpt}: {extra[:3]} not in {MANIFEST}; files were added or swapped after the save")
    return ckpt


def good_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, list[str]]:
    """The newest checkpoint of ``run_dir`` that verifies and can be resumed (``checkpoint/``, else
    ``checkpoint.prev/``), and one note per checkpoint skipped (what was wrong with it)."""
    run_dir, skipped = Path(run_dir), []
    for name in (CHECKPOINT_DIR, PREVIOUS_DIR):
        c = run_dir / name
        if not c.is_dir():
            continue
        try:
            verify_checkpoint(c)
            read_train_state(c)
            return c, skipped
        except ArtifactError as e:
            skipped.append(f"skipped {c}: {e}")
    why = "; ".join(skipped) if skipped else f"no {CHECKPOINT_DIR}/ in {run_dir}"
    raise ArtifactError(f"{run_dir}: no good checkpoint to resume from ({why}); start with resume=False", param="resume")


#: train_state.json: key -> JSON type (the values' ranges are checked against the run when resuming).
TRAIN_STATE_SCHEMA = {"step": int, "total_steps": int, "stream": dict, "optimizer": dict, "history": list,
                      "band_stats": dict, "train_seconds": float, "config": dict}


def read_train_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / "train_state.json"
    if not path.is_file():
        raise ArtifactError(f"{ckpt}: no train_state.json to resume from; start with resume=False", param="resume")
    state = check_schema(read_json(path), TRAIN_STATE_SCHEMA, where=path)
    check_schema(state["stream"], {"cursor": int, "epoch": int}, where=f"{path} ['stream']")
    if state["step"] < 0 or state["step"] > state["total_steps"]:
        raise ArtifactError(f"{path}: step={state['step']} outside [0, total_steps={state['total_steps']}]; the file is corrupt")
    return state


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the hidden ``.NAME.*.tmp`` folders that killed saves of ``path`` left next to it; returns them."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for t in stale:
        if t.is_dir():
            shutil.rmtree(t, ignore_errors=True)
        else:
            t.unlink(missing_ok=True)
    return stale


def check_finite_tensors(tensors: dict[str, Any], *, where: str) -> None:
    """:class:`NonFiniteError` naming the first floating tensor with NaN/Inf values and its rows."""
    for name, t in tensors.items():
        if not torch.is_floating_point(t) or bool(torch.isfinite(t).all()):
            continue
        rows = (~torch.isfinite(t).reshape(t.shape[0], -1).all(dim=1)).nonzero().flatten().tolist() if t.ndim else [0]
        raise NonFiniteError(
            f"{where}: tensor {name!r} has non-finite (NaN/Inf) values in rows {rows[:10]}{' ...' if len(rows) > 10 else ''} "
            f"({len(rows)} of {t.shape[0] if t.ndim else 1}); the weights are broken — use an earlier checkpoint or retrain"
        )


def _keep_previous(path: Path) -> None:
    """Hard-link the current checkpoint at ``path`` into its sibling ``PREVIOUS_DIR`` (atomically), if it verifies."""
    try:
        verify_checkpoint(path)
    except ArtifactError:
        return  # never keep a bad checkpoint as the fallback
    with atomic_dir(path.parent / PREVIOUS_DIR) as tmp:
        shutil.copytree(path, tmp, copy_function=os.link, dirs_exist_ok=True)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model,
    tokenizer,
    config,
    train_tensors: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    keep_previous: bool = False,
    weights: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (a crash leaves the previous checkpoint intact), with
    ``manifest.json`` last. ``keep_previous``: first keep the current checkpoint as ``checkpoint.prev``.
    ``weights``: the tensors to store instead of ``model``'s (a vocab-parallel run's gathered full model)."""
    path = Path(path)
    if keep_previous and path.is_dir():
        _keep_previous(path)
    with atomic_dir(path) as tmp:
        save_tensors(tmp / "model.safetensors", model_tensors(model) if weights is None else weights,
                     metadata={"tokembed_version": TOKEMBED_VERSION})
        write_json(tmp / "config.json", {**config.to_dict(), "tokenizer_fingerprint": tokenizer.fingerprint})
        tokenizer.save(tmp / "tokenizer")
        if train_state is not None:
            save_tensors(tmp / "train_state.safetensors", train_tensors or {})
            write_json(tmp / "train_state.json", train_state)
        write_manifest(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, *, tokenizer=None, device: str = "cpu"):
    """Load ``(model, tokenizer, train_config)`` from a checkpoint or run folder.

    ``tokenizer`` (optional) must have the fingerprint the model was trained with; by default
    the tokenizer saved in the checkpoint is used.
    """
    ckpt = verify_checkpoint(resolve_checkpoint(path))
    raw = check_schema(read_json(ckpt / "config.json"), {"model": dict, "tokenizer_fingerprint": str},
                       where=ckpt / "config.json")
    want = raw.pop("tokenizer_fingerprint")
    config = TrainConfig.from_dict(raw)
    saved_tok = load_tokenizer(ckpt / "tokenizer")
    if saved_tok.fingerprint != want:
        raise FingerprintMismatchError(
            f"{ckpt}: the tokenizer folder has fingerprint {saved_tok.fingerprint[:12]} ({saved_tok.kind}, "
            f"V={saved_tok.vocab_size}) but the model was trained with {want[:12]}; the folder was replaced — "
            "restore the run's own tokenizer/ folder"
        )
    if tokenizer is None:
        tokenizer = saved_tok
    elif tokenizer.fingerprint != want:
        raise FingerprintMismatchError(
            f"{ckpt}: the model was trained with a {saved_tok.kind} tokenizer (V={saved_tok.vocab_size}, fingerprint "
            f"{want[:12]}), but the tokenizer passed is {tokenizer.kind} (V={tokenizer.vocab_size}, fingerprint "
            f"{tokenizer.fingerprint[:12]}); pass the tokenizer in {ckpt / 'tokenizer'}, or move the model to yours with "
            f"'tokembed vocab transplant {ckpt} --tokenizer NEW -o DIR' (which writes the remap; 'tokembed vocab diff' shows what differs)"
        )
    if (ckpt / SHARDS_MANIFEST).is_file():  # sharded: the full tensors reassembled from the ranks' files
        tensors = ShardedReader(ckpt).full_tensors("model.")
    else:
        tensors = load_tensors(ckpt / "model.safetensors")
    check_finite_tensors(tensors, where=str(ckpt / "model.safetensors"))
    counts = tensors.get("token_counts")  # frequency-sorted designs (adaptive) rebuild their permutation from these
    model = build_model(config.model, token_counts=counts, seed=config.seed, embedding_dropout=config.embedding_dropout)
    load_model_tensors(model, tensors, where=str(ckpt))
    model.to(device).eval()
    return model, tokenizer, config
