"""The training loop for the LM of :mod:`tokembed.model`: optimizer groups, schedule, monitors, exact resume.

Unlike a trainer framework, this is one explicit loop: AdamW with separate parameter groups
for the embedding and the head (own LR and weight decay), linear warmup then cosine decay
to ``min_lr_ratio·lr``, gradient clipping and accumulation, label smoothing and embedding
dropout. CPU by default; CUDA with bf16 autocast when present (``device="auto"``).

The budget is ``max_steps`` or ``max_bytes`` — UTF-8 bytes of text seen, so runs with
different tokenizers see the same text (``bytes = tokens × shard bytes-per-token``).

Data order: the train tokens are cut into ``batch_size`` contiguous regions, each read
front to back ``seq_len`` tokens at a time (the "batchify" order of classic LM training);
the position in that stream, the optimizer, the schedule and the RNG state go into every
checkpoint, so ``resume=True`` continues exactly: N steps straight equal N/2 steps, a kill
and a resume, bit for bit on the same machine.

A non-finite loss, gradient or embedding row stops the run with :class:`NonFiniteError`
naming the tensor and rows; checks run before a checkpoint is written, so the last good
checkpoint is never replaced by a bad one.

Rare-token monitoring: token ids are bucketed into frequency bands by their training counts
(decades: 0, 1–9, 10–99, ...); at each logged step the mean embedding-row norm and the mean
embedding-gradient row norm per band are recorded (``band_stats.json``, ``bands.png``).
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import load_tensors, make_folder, write_json
from ..device import resolve_device
from ..errors import ArtifactError, ConfigError, FingerprintMismatchError, NonFiniteError
from ..metrics import frequency_bands, token_counts
from ..embeddings.control import embedding_param_groups
from ..model import Transformer, build_model
from .checkpoint import (
    CHECKPOINT_DIR,
    PREVIOUS_DIR,
    read_train_state,
    good_checkpoint,
    load_model_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    remove_stale_temps,
)
from . import distributed as _dist  # data-parallel hooks: every use below is marked `# dist:`
from . import vocab_parallel as _vp  # vocab-parallel hooks (parallel.vocab): every use below is marked `# vp:`
from . import fsdp as _fsdp  # FSDP hooks (parallel.fsdp): marked `# dist:`
from . import sharded_checkpoint as _sharded
from .config import TrainConfig
from .plots import plot_bands
from .shards import TokenStream

__all__ = ["TrainResult", "train", "lr_multiplier", "param_groups"]


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict]  # per logged step: step, tokens, bytes, loss, lr, tokens_per_s, seconds (+ val_loss, val_bpb)
    band_stats: dict  # per frequency band: mean embedding norm / grad norm over steps
    seconds: float
    tokens_per_s: float
    steps: int = 0
    tokens: int = 0
    bytes: float = 0.0
    model: Transformer | None = field(default=None, repr=False, compare=False)  # the trained model, in memory
    cpu_seconds: float = 0.0  # CPU seconds of the optimizer steps run in this process (``seconds`` is their wall time)


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """LR factor for optimizer step ``step`` (0-based): linear warmup ``(step+1)/warmup``, then cosine
    ``min + (1 - min)·(1 + cos(π·p))/2`` with ``p`` the progress after warmup in [0, 1].

    >>> [round(lr_multiplier(s, total_steps=10, warmup_steps=2, min_lr_ratio=0.1), 3) for s in (0, 1, 2, 9)]
    [0.5, 1.0, 1.0, 0.1]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay = max(1, total_steps - 1 - warmup_steps)
    p = min(1.0, (step - warmup_steps) / decay)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def param_groups(model: Transformer, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups from :func:`tokembed.embeddings.embedding_param_groups` — embedding, head and the rest,
    each with its own LR and decay, biases and norms undecayed; a tied table belongs to the embedding group.
    Each group also keeps its peak LR as ``base_lr`` for the schedule."""
    groups = embedding_param_groups(
        model,
        lr=config.lr,
        weight_decay=config.weight_decay,
        embedding_lr=config.embedding_lr,
        embedding_weight_decay=config.embedding_weight_decay,
        head_lr=config.head_lr,
        head_weight_decay=config.head_weight_decay,
    )
    for g in groups:
        g["base_lr"] = g["lr"]
    return groups


def _embedding_row_grad(model: Transformer) -> torch.Tensor | None:
    """Gradient of the embedding's (V, ·) table if it has one (lookup-like designs); else None."""
    if _vp.is_sharded(model):  # vp: the rows are spread over the ranks: gather them (a collective)
        return _vp.embedding_row_grad(model)
    V = model.vocab_size
    for p in model.embedding.parameters():
        if p.ndim == 2 and p.shape[0] == V and p.grad is not None:
            return p.grad
    return None


def _check_finite(name: str, t: torch.Tensor, step: int) -> None:
    """Raise :class:`NonFiniteError` naming ``name`` and its non-finite rows (one reduction when all is well)."""
    t = _fsdp.finite_view(t.detach())  # dist: an FSDP shard's local rows (the full tensor when a rank's are not finite)
    if bool(torch.isfinite(t).all()):
        return
    if t.ndim < 2:
        raise NonFiniteError(f"{name} is {t.flatten()[:4].tolist()} at step {step}; lower the LR or enable grad_clip")
    bad = ~torch.isfinite(t).reshape(t.shape[0], -1).all(dim=1)
    rows = bad.nonzero().flatten().tolist()
    raise NonFiniteError(
        f"{name} has non-finite rows {rows[:10]}{' ...' if len(rows) > 10 else ''} ({len(rows)} of {t.shape[0]}) "
        f"after step {step}; the last good checkpoint is kept — lower the LR, enable grad_clip or resume from it"
    )


def _check_embedding(model: Transformer, step: int) -> None:
    """Every parameter of the embedding (for a lookup table its rows are token ids), without materialising E."""
    for name, p in model.embedding.named_parameters():
        _check_finite(f"embedding parameter {type(model.embedding).__name__}.{name}", p, step)


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"rng.cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["rng.cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng_state(tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(tensors["rng.cpu"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)


#: Fields that may change between a run and its resume (they do not change the computed weights
#: except through the schedule length); anything else must match.
_RESUMABLE_CHANGES = {"max_steps", "max_bytes", "checkpoint_every", "eval_every", "log_every", "device", "eval_tokens",
                      "parallel"}  # parallel: how the ranks split the work; the checkpoint is the same for every layout


def _total_steps(config: TrainConfig, bytes_per_token: float) -> int:
    tokens_per_step = config.batch_size * config.seq_len * config.grad_accum
    steps = []
    if config.max_steps is not None:
        steps.append(config.max_steps)
    if config.max_bytes is not None:
        steps.append(max(1, math.ceil(config.max_bytes / (tokens_per_step * bytes_per_token))))
    return min(steps)


def train(
    config: TrainConfig,
    *,
    tokenizer,
    shards,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable[[int, Transformer], None]] = (),
    plots: bool = True,
) -> TrainResult:
    """Train a model on ``shards["train"]`` (evaluating on ``shards["val"]``) and write the run into ``out_dir``.

    ``callbacks(step, model)`` run after every optimizer step, before the finiteness checks.
    ``resume=True`` continues from ``out_dir/checkpoint`` exactly where it stopped. The result holds
    the trained model (``TrainResult.model``), so nothing needs to be read back from disk.
    ``plots=False`` skips ``bands.png`` (the study draws the bands of all its runs in one report figure).
    """
    out_dir = Path(out_dir)
    make_folder(out_dir)
    for name in (CHECKPOINT_DIR, PREVIOUS_DIR):  # hidden folders of saves killed in an earlier process
        remove_stale_temps(out_dir / name)
    train_shard = _check_inputs(config, tokenizer, shards)
    device = resolve_device(config.device)
    counts = token_counts(train_shard.tokens, tokenizer.vocab_size)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        run = _Run(config, tokenizer=tokenizer, shards=shards, counts=counts, device=device, out_dir=out_dir)
        if resume:
            run.restore()
        else:  # a fresh run: checkpoints of an earlier run in this folder are never its fallback
            shutil.rmtree(out_dir / PREVIOUS_DIR, ignore_errors=True)
            run.keep_previous = False
        if not (out_dir / "run_config.json").exists():
            write_json(out_dir / "run_config.json", config.to_dict())
        run.loop(progress=progress, callbacks=callbacks)
    return run.finish(plots=plots)


def _check_inputs(config: TrainConfig, tokenizer, shards):
    """The train shard, once the model's vocab size and the shard's tokenizer are known to match ``tokenizer``."""
    if config.model.vocab_size in (0, None):
        config.model.vocab_size = tokenizer.vocab_size
    if config.model.vocab_size != tokenizer.vocab_size:
        raise ConfigError(f"model.vocab_size={config.model.vocab_size} but the tokenizer has {tokenizer.vocab_size} tokens; "
                          "drop model.vocab_size", param="model.vocab_size")
    train_shard = shards["train"]
    if train_shard.fingerprint != tokenizer.fingerprint:
        raise FingerprintMismatchError(
            f"train shard fingerprint {train_shard.fingerprint[:12]} differs from the tokenizer's {tokenizer.fingerprint[:12]}; "
            "rebuild the shards with this tokenizer"
        )
    return train_shard


class _Run:
    """The state of one training run: model, optimizer, data position, history, band monitor, clock."""

    def __init__(self, config: TrainConfig, *, tokenizer, shards, counts, device: torch.device, out_dir: Path):
        self.config, self.tokenizer, self.device = config, tokenizer, device
        self.train_shard, self.val_shard = shards["train"], shards.get("val")
        self.ckpt_dir = out_dir / CHECKPOINT_DIR
        self.out_dir = out_dir
        self.total_steps = _total_steps(config, self.train_shard.bytes_per_token)
        self.tokens_per_step = config.batch_size * config.seq_len * config.grad_accum
        self.log_every = config.log_every or max(1, self.total_steps // 100)
        self.model = build_model(config.model, token_counts=counts, seed=config.seed, embedding_dropout=config.embedding_dropout)
        self.model.to(device)
        self.dist = _dist.context(device=device.type)  # dist: rank/world (1 outside torchrun)
        self.vp = _vp.enabled(config, self.dist)  # vp: parallel.vocab under torchrun: one vocab-parallel group of all ranks
        if self.vp:
            _vp.shard_model(self.model)  # vp: this rank's rows of the same embedding/head
        self.data = _vp.data_context() if self.vp else self.dist  # vp: one data replica, every rank reads the full batch
        self.rows = _dist.rank_rows(config.batch_size, self.data)  # dist: this rank's rows of the global batch
        self.loss_fn = _dist.loss_module(self.model, self.data, device,  # dist: model.loss, or DDP/FSDP over the ranks
                                         fsdp=config.parallel.fsdp)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, config), betas=config.betas, eps=1e-8)
        self.stream = TokenStream(self.train_shard.tokens, batch_size=config.batch_size, seq_len=config.seq_len,
                                  rows=self.rows)
        self.start_step, self.history, self.train_seconds, self.train_cpu = 0, [], 0.0, 0.0
        self.keep_previous = True  # keep the checkpoint before the newest as checkpoint.prev (the resume fallback)
        self.monitor = _BandMonitor(counts, device)
        self.autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        self.ce_kwargs = {"label_smoothing": config.label_smoothing} if config.label_smoothing else {}

    def restore(self) -> None:
        with _dist.main_first(self.dist):  # dist: rank 0 recovers an interrupted checkpoint swap before the others read
            self.start_step, self.history, self.monitor.stats, self.train_seconds = _restore(
                self.ckpt_dir, self.config, self.model, self.optimizer, self.stream, self.device)
            if self.dist.active:  # dist: each rank's own RNG stream when the world size is the same
                used, _ = good_checkpoint(self.ckpt_dir.parent)  # the checkpoint _restore resumed from
                saved = read_train_state(used).get("world_size", 1)
                _dist.rank_rng_state(load_tensors(used / "train_state.safetensors"), self.dist, saved)
        if self.start_step > self.total_steps:
            raise ConfigError(f"cannot resume {self.ckpt_dir}: the checkpoint is at step {self.start_step}, beyond this "
                              f"run's {self.total_steps} steps; raise max_steps/max_bytes", param="resume")

    def save(self, step: int) -> None:
        tensors, opt_meta = optimizer_to_tensors(self.optimizer)
        weights = None  # vp: below, the gathered single-process weights
        tensors.update(_rng_state(self.device))
        tensors.update(_dist.rng_tensors(self.dist))  # dist: a collective, every rank calls it
        state = {
            "step": step,
            "total_steps": self.total_steps,
            "stream": self.stream.state(),
            "optimizer": opt_meta,
            "history": self.history,
            "band_stats": self.monitor.stats,
            "train_seconds": self.train_seconds,
            "config": self.config.to_dict(),
            "world_size": self.dist.world_size,
        }
        if self.vp:  # vp: a collective: rank 0 gets the single-process weights and AdamW moments (padding cut off)
            weights, tensors = _vp.full_state(self.model, self.optimizer, tensors)
            state["vocab_parallel"] = {"ranks": self.dist.world_size, "padded_vocab": self.model.embedding.shard.padded}
        # dist: written once, by rank 0 (the others wait for it), or with FSDP as every rank's shards + a layout
        _sharded.save_run_checkpoint(self.ckpt_dir, ctx=self.dist, model=self.model, tokenizer=self.tokenizer,
                                     config=self.config, train_tensors=tensors, train_state=state,
                                     keep_previous=self.keep_previous, weights=weights)
        self.keep_previous = True  # from now on checkpoint/ holds one of this run's checkpoints

    def loop(self, *, progress: bool, callbacks) -> None:
        bar = None
        if progress and self.dist.is_main:  # dist: one bar, on rank 0
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.start_step, desc="train", unit="step", dynamic_ncols=True)
        self.model.train()
        self._t_last, self._tok_last = time.perf_counter(), 0
        for step in range(self.start_step + 1, self.total_steps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            mult = self.step(step, callbacks)
            self.train_seconds += time.perf_counter() - t0
            self.train_cpu += time.process_time() - c0
            self._tok_last += self.tokens_per_step
            if self._logging(step):
                entry = self.log_entry(step, mult)
                if bar is not None:
                    bar.set_postfix(loss=f"{entry['loss']:.3f}", tok_s=f"{entry['tokens_per_s']:.0f}")
            if bar is not None:
                bar.update(1)
            if (self.config.checkpoint_every and step % self.config.checkpoint_every == 0) or step == self.total_steps:
                self.save(step)
        if bar is not None:
            bar.close()
        if self.start_step >= self.total_steps:  # nothing left to do (resume of a finished run)
            self.save(self.total_steps)

    def _logging(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.total_steps

    def step(self, step: int, callbacks) -> float:
        """One optimizer step (``grad_accum`` micro-batches); returns the LR multiplier used."""
        config, model, optimizer = self.config, self.model, self.optimizer
        mult = lr_multiplier(step - 1, total_steps=self.total_steps, warmup_steps=config.warmup_steps,
                             min_lr_ratio=config.min_lr_ratio)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * mult
        loss_sum = 0.0
        for micro in range(config.grad_accum):
            x, y = self.stream.next()  # (B/world, T): this rank's rows
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self.autocast:
                loss = self.loss_fn(x, y, **self.ce_kwargs)  # mean CE (nats) over this rank's targets
            if not bool(torch.isfinite(loss)):
                raise NonFiniteError(
                    f"loss is {loss.item()} at step {step} (micro-batch {micro}); the last good checkpoint is kept — "
                    "lower lr, enable grad_clip or check the data"
                )
            with _dist.grad_sync(self.loss_fn, last=micro == config.grad_accum - 1):  # dist: all-reduce once per step
                (loss / config.grad_accum).backward()
            loss_sum += loss.item()
        self._loss = _dist.mean_over_ranks(loss_sum / config.grad_accum, self.data)  # dist: the global batch's loss
        if self._logging(step):
            self.monitor.record(model, step, loss_fn=self.loss_fn)
        if config.grad_clip:
            if self.vp:  # vp: the norm of the whole model (sharded squares summed over the ranks)
                gnorm = _vp.clip_grad_norm_(model, config.grad_clip)
            else:
                gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if not bool(torch.isfinite(gnorm)):
                for name, p in model.named_parameters():
                    if p.grad is not None:
                        _check_finite(f"gradient of {name}", p.grad, step)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for cb in callbacks:
            cb(step, model)
        _check_embedding(model, step)
        return mult

    def log_entry(self, step: int, mult: float) -> dict[str, Any]:
        """Append the history entry of ``step`` (with a validation score every ``eval_every`` steps)."""
        config, now = self.config, time.perf_counter()
        entry = {
            "step": step,
            "tokens": step * self.tokens_per_step,
            "bytes": step * self.tokens_per_step * self.train_shard.bytes_per_token,
            "loss": self._loss,
            "lr": config.lr * mult,
            "tokens_per_s": self._tok_last / max(now - self._t_last, 1e-9),
            "seconds": self.train_seconds,
            "epoch": self.stream.epoch,
        }
        self._t_last, self._tok_last = now, 0
        val = self.val_shard
        if config.eval_every and step % config.eval_every == 0 and val is not None and len(val) > 1:
            model = _fsdp.full_model(self.model, config) if _fsdp.is_sharded(self.model) else self.model  # dist: gathered
            if self.dist.is_main or self.vp:  # dist: rank 0 evaluates (the models are identical); vp: every rank
                r = _vp.evaluate(model, self.tokenizer, val, seq_len=config.seq_len, batch_size=config.batch_size,
                                 max_tokens=config.eval_tokens, device=self.device)
                self.model.train()
                entry.update(val_loss=r.loss, val_bpb=r.bits_per_byte)
        self.history.append(entry)
        return entry

    def finish(self, *, plots: bool = True) -> TrainResult:
        """Write history.json, band_stats.json and (with ``plots``) bands.png; the result with the trained model."""
        band_stats = self.monitor.finish()
        if self.dist.is_main:  # dist: rank 0 writes the run's files
            write_json(self.out_dir / "history.json", self.history)
            write_json(self.out_dir / "band_stats.json", band_stats)
            if plots and band_stats["steps"]:
                plot_bands(band_stats, self.out_dir / "bands.png")
        tokens = self.total_steps * self.tokens_per_step
        return TrainResult(
            checkpoint=self.ckpt_dir,
            history=self.history,
            band_stats=band_stats,
            seconds=self.train_seconds,
            tokens_per_s=tokens / self.train_seconds if self.train_seconds > 0 else float("nan"),
            steps=self.total_steps,
            tokens=tokens,
            bytes=tokens * self.train_shard.bytes_per_token,
            model=_fsdp.full_model(self.model, self.config) if _fsdp.is_sharded(self.model) else self.model,  # dist
            cpu_seconds=self.train_cpu,
        )


class _BandMonitor:
    """Rare-token monitor: mean embedding-row norm and embedding-gradient row norm per frequency band
    (:func:`tokembed.metrics.frequency_bands` of the training counts) at every logged step."""

    def __init__(self, counts, device: torch.device):
        band_of_np, bands = frequency_bands(counts)
        self.stats: dict[str, Any] = {"bands": bands, "steps": [], "norm": [], "grad_norm": []}
        self.n_bands = len(bands)
        self.band_of = torch.from_numpy(band_of_np).to(device)
        self.band_sizes = torch.bincount(self.band_of, minlength=self.n_bands).clamp(min=1).double()

    @torch.no_grad()
    def record(self, model: Transformer, step: int, *, loss_fn=None) -> None:
        g = _fsdp.full(_embedding_row_grad(model))  # dist: FSDP keeps gradients on the shards; gathered first
        with _fsdp.gathered(loss_fn):  # dist: FSDP's root weights whole (and freed after: use E only in here)
            E = model.embedding.weight_matrix().detach().float()  # (V, D)
            norms = torch.bincount(self.band_of, weights=E.norm(dim=1).double(), minlength=self.n_bands) / self.band_sizes
        self.stats["steps"].append(step)
        self.stats["norm"].append([float(v) for v in norms.tolist()])
        if g is None:
            self.stats["grad_norm"].append([None] * self.n_bands)
        else:
            gn = torch.bincount(self.band_of, weights=g.detach().float().norm(dim=1).double(),
                                minlength=self.n_bands) / self.band_sizes
            self.stats["grad_norm"].append([float(v) for v in gn.tolist()])

    def finish(self) -> dict[str, Any]:
        self.stats["mean_norm"] = _column_means(self.stats["norm"])
        self.stats["mean_grad_norm"] = _column_means(self.stats["grad_norm"])
        return self.stats


def _column_means(rows: list[list[float | None]]) -> list[float | None]:
    if not rows:
        return []
    out = []
    for col in zip(*rows):
        vals = [v for v in col if v is not None]
        out.append(float(np.mean(vals)) if vals else None)
    return out


def _recover_checkpoint(ckpt_dir: Path) -> None:
    """After a kill inside ``atomic_dir``'s swap (old folder moved aside, new not yet in place), put the old one back."""
    if ckpt_dir.exists():
        return
    for old in sorted(ckpt_dir.parent.glob(f".{ckpt_dir.name}.*.old")):
        if (old / "x" / "train_state.json").is_file():
            os.replace(old / "x", ckpt_dir)
            return


def _restore(ckpt_dir: Path, config: TrainConfig, model, optimizer, stream: TokenStream, device):
    """Load the newest good checkpoint of the run (a corrupt newest one is skipped, with a warning)."""
    _recover_checkpoint(ckpt_dir)
    ckpt_dir, skipped = good_checkpoint(ckpt_dir.parent)
    for note in skipped:
        warnings.warn(f"resume: {note}; resuming from {ckpt_dir}", stacklevel=3)
    state = read_train_state(ckpt_dir)
    saved = state["config"]
    now = config.to_dict()
    diffs = sorted(k for k in set(saved) | set(now) if k not in _RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if diffs:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diffs[:4])
        raise ConfigError(f"cannot resume {ckpt_dir}: the config changed ({detail}); resume with the run's own config")
    if state["stream"]["cursor"] < 0 or state["stream"]["cursor"] > stream.L or state["stream"]["epoch"] < 0:
        raise ArtifactError(f"{ckpt_dir / 'train_state.json'}: stream position {state['stream']} is outside the train "
                            f"shard (cursor in [0, {stream.L}]); the file is corrupt or from another corpus", param="resume")
    # dist: whole tensors, or an FSDP rank's own rows (from a sharded checkpoint's shards or a normal one)
    weights, optim = _sharded.load_state(ckpt_dir, model, optimizer, device=device)
    tensors = load_tensors(ckpt_dir / "train_state.safetensors")
    if _vp.is_sharded(model):  # vp: this rank's rows of the full checkpoint (of any world size)
        weights, optim = _vp.shard_state(model, optimizer, weights, optim, where=str(ckpt_dir))
    load_model_tensors(model, weights, where=str(ckpt_dir))
    optimizer_from_tensors(optimizer, optim, state["optimizer"])
    _set_rng_state(tensors, device)
    stream.cursor, stream.epoch = state["stream"]["cursor"], state["stream"]["epoch"]
    return int(state["step"]), state["history"], state["band_stats"], float(state.get("train_seconds", 0.0))
