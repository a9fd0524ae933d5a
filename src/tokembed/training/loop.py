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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import load_tensors, make_folder, read_json, write_json
from ..device import resolve_device
from ..errors import ArtifactError, ConfigError, FingerprintMismatchError, NonFiniteError
from ..metrics import frequency_bands, token_counts
from ..embeddings.control import embedding_param_groups
from ..model import Transformer, build_model
from .checkpoint import (
    CHECKPOINT_DIR,
    load_model_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from .config import TrainConfig
from .evaluate import evaluate
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
    V = model.vocab_size
    for p in model.embedding.parameters():
        if p.ndim == 2 and p.shape[0] == V and p.grad is not None:
            return p.grad
    return None


def _check_finite(name: str, t: torch.Tensor, step: int) -> None:
    """Raise :class:`NonFiniteError` naming ``name`` and its non-finite rows (one reduction when all is well)."""
    t = t.detach()
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
_RESUMABLE_CHANGES = {"max_steps", "max_bytes", "checkpoint_every", "eval_every", "log_every", "device", "eval_tokens"}


def _total_steps(config: TrainConfig, bytes_per_token: float) -> int:
    tokens_per_step = config.batch_size * config.seq_len * config.grad_accum
    steps = []
    if config.max_steps is not None:
        steps.append(config.max_steps)
    if config.max_bytes is not None:
        steps.append(max(1, math.ceil(config.max_bytes / (tokens_per_step * bytes_per_token))))
    return min(steps)


def _plot_bands(band_stats: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    steps = band_stats["steps"]
    for i, b in enumerate(band_stats["bands"]):
        label = f"count {b['name']} ({b['n_types']} types)"
        a1.plot(steps, [row[i] for row in band_stats["norm"]], label=label)
        a2.plot(steps, [row[i] if row[i] is not None else float("nan") for row in band_stats["grad_norm"]], label=label)
    a1.set(title="mean embedding row norm per frequency band", xlabel="step", ylabel="‖e_i‖")
    a2.set(title="mean embedding-gradient row norm", xlabel="step", ylabel="‖∂L/∂e_i‖", yscale="log")
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def train(
    config: TrainConfig,
    *,
    tokenizer,
    shards,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable[[int, Transformer], None]] = (),
) -> TrainResult:
    """Train a model on ``shards["train"]`` (evaluating on ``shards["val"]``) and write the run into ``out_dir``.

    ``callbacks(step, model)`` run after every optimizer step, before the finiteness checks.
    ``resume=True`` continues from ``out_dir/checkpoint`` exactly where it stopped.
    """
    out_dir = Path(out_dir)
    make_folder(out_dir)
    ckpt_dir = out_dir / CHECKPOINT_DIR
    if config.model.vocab_size in (0, None):
        config.model.vocab_size = tokenizer.vocab_size
    if config.model.vocab_size != tokenizer.vocab_size:
        raise ConfigError(f"model.vocab_size={config.model.vocab_size} but the tokenizer has {tokenizer.vocab_size} tokens; drop model.vocab_size")
    train_shard, val_shard = shards["train"], shards.get("val")
    if train_shard.fingerprint != tokenizer.fingerprint:
        raise FingerprintMismatchError(
            f"train shard fingerprint {train_shard.fingerprint[:12]} differs from the tokenizer's {tokenizer.fingerprint[:12]}; "
            "rebuild the shards with this tokenizer"
        )
    device = resolve_device(config.device)
    counts = token_counts(train_shard.tokens, tokenizer.vocab_size)
    band_of_np, bands = frequency_bands(counts)
    total_steps = _total_steps(config, train_shard.bytes_per_token)
    tokens_per_step = config.batch_size * config.seq_len * config.grad_accum
    log_every = config.log_every or max(1, total_steps // 100)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = build_model(config.model, token_counts=counts, seed=config.seed, embedding_dropout=config.embedding_dropout)
        model.to(device)
        optimizer = torch.optim.AdamW(param_groups(model, config), betas=config.betas, eps=1e-8)
        stream = TokenStream(train_shard.tokens, batch_size=config.batch_size, seq_len=config.seq_len)
        start_step, history = 0, []
        band_stats: dict[str, Any] = {"bands": bands, "steps": [], "norm": [], "grad_norm": []}
        train_seconds = 0.0
        if resume:
            start_step, history, band_stats, train_seconds = _restore(ckpt_dir, config, model, optimizer, stream, device)
        if not (out_dir / "run_config.json").exists():
            write_json(out_dir / "run_config.json", config.to_dict())

        band_of = torch.from_numpy(band_of_np).to(device)
        band_sizes = torch.bincount(band_of, minlength=len(bands)).clamp(min=1).double()
        autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        ce_kwargs = {"label_smoothing": config.label_smoothing} if config.label_smoothing else {}

        def save(step: int) -> None:
            tensors, opt_meta = optimizer_to_tensors(optimizer)
            tensors.update(_rng_state(device))
            state = {
                "step": step,
                "total_steps": total_steps,
                "stream": stream.state(),
                "optimizer": opt_meta,
                "history": history,
                "band_stats": band_stats,
                "train_seconds": train_seconds,
                "config": config.to_dict(),
            }
            save_checkpoint(ckpt_dir, model=model, tokenizer=tokenizer, config=config, train_tensors=tensors, train_state=state)

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        model.train()
        step = start_step
        t_last, tok_last = time.perf_counter(), 0
        for step in range(start_step + 1, total_steps + 1):
            t0 = time.perf_counter()
            mult = lr_multiplier(step - 1, total_steps=total_steps, warmup_steps=config.warmup_steps, min_lr_ratio=config.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * mult
            loss_sum = 0.0
            for micro in range(config.grad_accum):
                x, y = stream.next()
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with autocast:
                    loss = model.loss(x, y, **ce_kwargs)  # mean CE (nats) over B·T targets
                if not bool(torch.isfinite(loss)):
                    raise NonFiniteError(
                        f"loss is {loss.item()} at step {step} (micro-batch {micro}); the last good checkpoint is kept — "
                        "lower lr, enable grad_clip or check the data"
                    )
                (loss / config.grad_accum).backward()
                loss_sum += loss.item()
            logging_now = step % log_every == 0 or step == total_steps
            if logging_now:
                _record_bands(model, band_of, band_sizes, len(bands), band_stats, step)
            if config.grad_clip:
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
            train_seconds += time.perf_counter() - t0
            tok_last += tokens_per_step
            if logging_now:
                now = time.perf_counter()
                entry = {
                    "step": step,
                    "tokens": step * tokens_per_step,
                    "bytes": step * tokens_per_step * train_shard.bytes_per_token,
                    "loss": loss_sum / config.grad_accum,
                    "lr": config.lr * mult,
                    "tokens_per_s": tok_last / max(now - t_last, 1e-9),
                    "seconds": train_seconds,
                    "epoch": stream.epoch,
                }
                t_last, tok_last = now, 0
                if config.eval_every and step % config.eval_every == 0 and val_shard is not None and len(val_shard) > 1:
                    r = evaluate(model, tokenizer, val_shard, seq_len=config.seq_len, batch_size=config.batch_size,
                                 max_tokens=config.eval_tokens, device=device)
                    model.train()
                    entry.update(val_loss=r.loss, val_bpb=r.bits_per_byte)
                history.append(entry)
                if bar is not None:
                    bar.set_postfix(loss=f"{entry['loss']:.3f}", tok_s=f"{entry['tokens_per_s']:.0f}")
            if bar is not None:
                bar.update(1)
            if (config.checkpoint_every and step % config.checkpoint_every == 0) or step == total_steps:
                save(step)
        if bar is not None:
            bar.close()
        if start_step >= total_steps:  # nothing left to do (resume of a finished run)
            save(total_steps)

    band_stats["mean_norm"] = _column_means(band_stats["norm"])
    band_stats["mean_grad_norm"] = _column_means(band_stats["grad_norm"])
    write_json(out_dir / "history.json", history)
    write_json(out_dir / "band_stats.json", band_stats)
    if band_stats["steps"]:
        _plot_bands(band_stats, out_dir / "bands.png")
    tokens = total_steps * tokens_per_step
    return TrainResult(
        checkpoint=ckpt_dir,
        history=history,
        band_stats=band_stats,
        seconds=train_seconds,
        tokens_per_s=tokens / train_seconds if train_seconds > 0 else float("nan"),
        steps=total_steps,
        tokens=tokens,
        bytes=tokens * train_shard.bytes_per_token,
        model=model,
    )


def _column_means(rows: list[list[float | None]]) -> list[float | None]:
    if not rows:
        return []
    out = []
    for col in zip(*rows):
        vals = [v for v in col if v is not None]
        out.append(float(np.mean(vals)) if vals else None)
    return out


@torch.no_grad()
def _record_bands(model, band_of, band_sizes, n_bands, band_stats, step) -> None:
    E = model.embedding.weight_matrix().detach().float()  # (V, D)
    norms = torch.bincount(band_of, weights=E.norm(dim=1).double(), minlength=n_bands) / band_sizes
    band_stats["steps"].append(step)
    band_stats["norm"].append([float(v) for v in norms.tolist()])
    g = _embedding_row_grad(model)
    if g is None:
        band_stats["grad_norm"].append([None] * n_bands)
    else:
        gn = torch.bincount(band_of, weights=g.detach().float().norm(dim=1).double(), minlength=n_bands) / band_sizes
        band_stats["grad_norm"].append([float(v) for v in gn.tolist()])


def _recover_checkpoint(ckpt_dir: Path) -> None:
    """After a kill inside ``atomic_dir``'s swap (old folder moved aside, new not yet in place), put the old one back."""
    if ckpt_dir.exists():
        return
    for old in sorted(ckpt_dir.parent.glob(f".{ckpt_dir.name}.*.old")):
        if (old / "x" / "train_state.json").is_file():
            os.replace(old / "x", ckpt_dir)
            return


def _restore(ckpt_dir: Path, config: TrainConfig, model, optimizer, stream: TokenStream, device):
    _recover_checkpoint(ckpt_dir)
    if not (ckpt_dir / "train_state.json").is_file():
        raise ArtifactError(f"{ckpt_dir}: no train_state.json to resume from; start without --resume")
    state = read_json(ckpt_dir / "train_state.json")
    saved = state["config"]
    now = config.to_dict()
    diffs = sorted(k for k in set(saved) | set(now) if k not in _RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if diffs:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diffs[:4])
        raise ConfigError(f"cannot resume {ckpt_dir}: the config changed ({detail}); resume with the run's own config")
    load_model_tensors(model, load_tensors(ckpt_dir / "model.safetensors", device=str(device)), where=str(ckpt_dir))
    tensors = load_tensors(ckpt_dir / "train_state.safetensors")
    optimizer_from_tensors(optimizer, {k: v.to(device) for k, v in tensors.items() if k.startswith("optim.")}, state["optimizer"])
    _set_rng_state(tensors, device)
    stream.cursor, stream.epoch = state["stream"]["cursor"], state["stream"]["epoch"]
    return int(state["step"]), state["history"], state["band_stats"], float(state.get("train_seconds", 0.0))
