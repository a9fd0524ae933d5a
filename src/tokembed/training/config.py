"""The training config: everything a run needs besides the tokenizer and the data.

Unlike :mod:`tokembed.config` (the generic TOML/YAML/``key=value`` reader) this module knows the
keys: :class:`TrainConfig` (with its :class:`~tokembed.model.ModelConfig` under ``model`` and its
:class:`ParallelConfig` under ``parallel``) checks
them on construction and names the bad key, and :func:`is_override` tells a ``key=value`` option
from a ``LANG=PATH`` corpus argument. Saved with every run (``run_config.json``, ``config.json``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import apply_override, read_config_file
from ..errors import ConfigError
from ..model import ModelConfig, check_field_types

__all__ = ["TrainConfig", "ParallelConfig", "VOCAB_PARALLEL_HEADS", "is_override"]

#: ``model.head`` kinds a vocab-parallel head can stand in for (the adaptive softmax splits V into clusters instead).
VOCAB_PARALLEL_HEADS = ("untied", "tied", "tied_bias")


@dataclass
class ParallelConfig:
    """How a torchrun job splits the model over its ranks (``[parallel]`` in a config, ``parallel.KEY=...``).

    Without a key set, a job of several processes is data-parallel (DDP). In one process these keys change nothing.
    """

    vocab: bool = False  # vocab-parallel embedding, head and loss over all ranks; every rank reads the full batch
    fsdp: bool = False  # shard parameters, gradients and AdamW moments over the ranks (FSDP2: each block, then the root)
    sharded_checkpoint: bool | None = None  # each rank writes its shards + a layout (None = on with fsdp)

    def __post_init__(self) -> None:
        if self.sharded_checkpoint and not self.fsdp:
            raise ConfigError("parallel.sharded_checkpoint=true needs parallel.fsdp=true (without FSDP every rank holds "
                              "the whole model and rank 0 writes one checkpoint); set parallel.fsdp=true or drop it",
                              param="parallel.sharded_checkpoint")
        if self.fsdp and self.vocab:
            raise ConfigError("parallel.fsdp and parallel.vocab cannot both be true: FSDP shards the standard model, "
                              "vocab-parallel shards the table and head itself; choose one", param="parallel.fsdp")

    @property
    def sharded(self) -> bool:
        """Whether an FSDP run writes sharded checkpoints (the default with fsdp)."""
        return self.fsdp and self.sharded_checkpoint is not False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ParallelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown parallel option(s) {unknown}; known: {', '.join(sorted(known))}", param="parallel")
        check_field_types(cls, d, section="parallel.")
        return cls(**d)


@dataclass
class TrainConfig:
    """Everything a training run needs besides the tokenizer and data (saved with the run)."""

    model: ModelConfig  # architecture; model.vocab_size = 0 means "from the tokenizer"
    seq_len: int = 128  # T, tokens per training window
    batch_size: int = 16  # B, windows per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int | None = None  # budget in optimizer steps ...
    max_bytes: int | None = None  # ... or in UTF-8 text bytes seen (equal-budget studies); the smaller wins
    lr: float = 3e-3  # peak LR of the non-embedding parameters
    embedding_lr: float | None = None  # peak LR of the input embedding (None = lr)
    head_lr: float | None = None  # peak LR of an untied head (None = lr)
    weight_decay: float = 0.1  # AdamW decay of matrices in the blocks
    embedding_weight_decay: float = 0.0  # decay of the embedding table(s)
    head_weight_decay: float | None = None  # decay of untied head matrices (None = weight_decay)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas (GPT-3 values, Brown et al. 2020)
    warmup_steps: int = 20  # linear warmup from lr/warmup to lr
    min_lr_ratio: float = 0.1  # cosine decays to min_lr_ratio·lr at the last step
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    label_smoothing: float = 0.0
    embedding_dropout: float = 0.0  # dropout on x_t = e_t + PE_t
    seed: int = 0
    device: str = "auto"  # "auto" (cuda if present), "cpu", "cuda", "cuda:1"
    eval_every: int = 0  # validation every N steps (0 = only at the end)
    eval_tokens: int | None = 16384  # validation prefix (whole documents) for in-training evals
    checkpoint_every: int = 0  # write the checkpoint every N steps (0 = only at the end)
    log_every: int = 0  # history entry every N steps (0 = about 100 entries per run)
    tokenizer: str = "byte"  # tokenizer kind to train on the corpus, or a tokenizer folder (CLI)
    vocab_size: int | None = None  # vocab size when the CLI trains the tokenizer
    val_fraction: float = 0.05  # documents held out for validation (CLI)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)  # how a torchrun job splits the model

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if isinstance(self.parallel, dict):
            self.parallel = ParallelConfig.from_dict(self.parallel)
        self.betas = tuple(self.betas)
        for name in ("seq_len", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.max_steps is None and self.max_bytes is None:
            raise ConfigError("no budget: set max_steps=N or max_bytes=N (text bytes to train on)")
        for name in ("max_steps", "max_bytes"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name}={v} must be >= 1")
        if self.seq_len > self.model.max_seq_len:
            raise ConfigError(f"seq_len={self.seq_len} exceeds model.max_seq_len={self.model.max_seq_len}; raise model.max_seq_len")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing={self.label_smoothing} must be in [0, 1)")
        self.check_parallel()

    def check_parallel(self) -> None:
        """:class:`ConfigError` naming the key and the fix when ``parallel.vocab = true`` meets a design it cannot shard."""
        if not self.parallel.vocab:
            return
        m = self.model
        if m.embedding != "lookup":
            raise ConfigError(
                f"parallel.vocab = true shards the rows of a lookup table, but model.embedding = {m.embedding!r} has no "
                "(V, D) table to split; set model.embedding = \"lookup\", or parallel.vocab = false (data-parallel)",
                param="parallel.vocab",
            )
        if m.head not in VOCAB_PARALLEL_HEADS:
            raise ConfigError(
                f"parallel.vocab = true shards the logit columns of a linear head, but model.head = {m.head!r} "
                f"(the adaptive softmax) is not one; set model.head to one of {', '.join(VOCAB_PARALLEL_HEADS)}, "
                "or parallel.vocab = false (data-parallel)",
                param="parallel.vocab",
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {', '.join(sorted(known))}")
        model = d.pop("model", None)
        parallel = d.pop("parallel", None) or {}
        if not isinstance(parallel, (dict, ParallelConfig)):
            raise ConfigError(f"parallel={parallel!r} is not a section; write [parallel] vocab = true, or parallel.vocab=true",
                              param="parallel")
        check_field_types(cls, d)
        if model is None:
            raise ConfigError("the config has no [model] section; add one (at least d_model, n_layers, n_heads)")
        if isinstance(model, dict):
            model = ModelConfig.from_dict({"vocab_size": 0, **model})
        return cls(model=model, parallel=parallel, **d)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> "TrainConfig":
        """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file, then apply ``key=value`` overrides
        (``model.d_model=64``; values parsed as TOML literals, else strings). ``path=None``: defaults only."""
        d: dict[str, Any] = {}
        if path is not None:
            d = read_config_file(Path(path))
        d.setdefault("model", {})
        for item in overrides:
            apply_override(d, item)
        return cls.from_dict(d)


def is_override(item: str) -> bool:
    """True if ``item`` names a TrainConfig/ModelConfig/ParallelConfig field (``lr=...``, ``model.d_model=...``,
    ``parallel.vocab=true``)."""
    if "=" not in item:
        return False
    key = item.split("=", 1)[0]
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    if key.startswith("model."):
        return key[6:] in model_fields
    if key.startswith("parallel."):
        return key[9:] in {f.name for f in dataclasses.fields(ParallelConfig)}
    return key in train_fields
