"""Model checkpoints: a folder with weights, config and tokenizer, written atomically.

Unlike :mod:`tokembed.artifacts` (generic atomic files), this module knows what a
checkpoint holds::

    model.safetensors        the weights; a tied table is stored once (aliases are restored on load)
    config.json              the TrainConfig (with its ModelConfig) as JSON
    tokenizer/               the tokembed tokenizer folder (its fingerprint is checked on load)
    train_state.safetensors  optimizer moments and RNG states (resume only)
    train_state.json         step, data position, schedule, optimizer groups, history (resume only)

Nothing is pickled. Loading with a tokenizer of another fingerprint raises
:class:`FingerprintMismatchError` saying what differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..artifacts import TOKEMBED_VERSION, atomic_dir, load_tensors, read_json, save_tensors, write_json
from ..errors import ArtifactError, FingerprintMismatchError
from ..model import build_model
from ..tokenizers import load_tokenizer
from .config import TrainConfig

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "model_tensors",
    "load_model_tensors",
    "optimizer_to_tensors",
    "optimizer_from_tensors",
    "CHECKPOINT_DIR",
]

#: The checkpoint folder inside a run folder.
CHECKPOINT_DIR = "checkpoint"


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder, given it or the run folder that holds ``checkpoint/``."""
    p = Path(path)
    if (p / "model.safetensors").is_file():
        return p
    if (p / CHECKPOINT_DIR / "model.safetensors").is_file():
        return p / CHECKPOINT_DIR
    raise ArtifactError(f"{p}: no model.safetensors here or in {p / CHECKPOINT_DIR}; pass a run folder written by 'tokembed train'")


def model_tensors(model) -> dict[str, Any]:
    """The state dict with shared storage kept once (the tied head's table lives under the embedding's name)."""
    out: dict[str, Any] = {}
    seen: set[tuple[int, int, tuple]] = set()
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
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


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model,
    tokenizer,
    config,
    train_tensors: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (a crash leaves the previous checkpoint intact)."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        save_tensors(tmp / "model.safetensors", model_tensors(model), metadata={"tokembed_version": TOKEMBED_VERSION})
        write_json(tmp / "config.json", {**config.to_dict(), "tokenizer_fingerprint": tokenizer.fingerprint})
        tokenizer.save(tmp / "tokenizer")
        if train_state is not None:
            save_tensors(tmp / "train_state.safetensors", train_tensors or {})
            write_json(tmp / "train_state.json", train_state)
    return path


def load_checkpoint(path: str | os.PathLike, *, tokenizer=None, device: str = "cpu"):
    """Load ``(model, tokenizer, train_config)`` from a checkpoint or run folder.

    ``tokenizer`` (optional) must have the fingerprint the model was trained with; by default
    the tokenizer saved in the checkpoint is used.
    """
    ckpt = resolve_checkpoint(path)
    raw = read_json(ckpt / "config.json")
    want = raw.pop("tokenizer_fingerprint", None)
    config = TrainConfig.from_dict(raw)
    saved_tok = load_tokenizer(ckpt / "tokenizer")
    if tokenizer is None:
        tokenizer = saved_tok
    elif want is not None and tokenizer.fingerprint != want:
        raise FingerprintMismatchError(
            f"{ckpt}: the model was trained with a {saved_tok.kind} tokenizer (V={saved_tok.vocab_size}, fingerprint "
            f"{want[:12]}), but the tokenizer passed is {tokenizer.kind} (V={tokenizer.vocab_size}, fingerprint "
            f"{tokenizer.fingerprint[:12]}); pass the tokenizer in {ckpt / 'tokenizer'} or remap the embedding rows explicitly"
        )
    tensors = load_tensors(ckpt / "model.safetensors")
    counts = tensors.get("token_counts")  # frequency-sorted designs (adaptive) rebuild their permutation from these
    model = build_model(config.model, token_counts=counts, seed=config.seed, embedding_dropout=config.embedding_dropout)
    load_model_tensors(model, tensors, where=str(ckpt))
    model.to(device).eval()
    return model, tokenizer, config
