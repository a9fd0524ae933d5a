"""Vocab-parallel cross-entropy: the softmax over logits split by columns across ranks.

Unlike :func:`tokembed.heads.cross_entropy` (one ``F.cross_entropy`` over the full ``(N, V)``
logits), each rank holds only its shard ``z_r`` (N, V/W) and the full logits never exist:

    m      = max_v z_v / τ                 one MAX all-reduce of (N,)
    S      = Σ_v exp(z_v/τ - m)            ┐
    z_t    = z_t/τ - m  (target's shard)   ├ one SUM all-reduce of (N, 3)
    Σz     = Σ_v (z_v/τ - m)  (smoothing)  ┘
    nll    = log S - z_t
    loss   = (1-ε)·nll + ε·(log S - Σz / V)  +  c·(log S + m)²

with ε the label smoothing (as ``F.cross_entropy``: the uniform part spreads over the V real
tokens), τ the temperature and c the z-loss weight (PaLM's ``1e-4·log²Z``, ``log Z`` the
log-partition of ``z/τ``). Padded columns (rows ``≥ V`` of the padded table) are set to
``-inf`` before the max/exp and left out of ``Σz``, so they carry no probability and no
gradient. The backward is written by hand from the saved ``exp`` (no second pass through the
logits):

    ∂loss/∂z_v = g/τ · ( p_v·(1 + 2c·log Z) - (1-ε)·[v = t] - ε/V )     (0 on padded columns)

Shapes: N tokens (flattened leading dims), V vocab, W world size, V/W (``shard.rows``) columns per rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..embeddings.lookup import check_ids
from ..errors import ConfigError
from ..heads import cross_entropy
from .comm import VocabShard, all_reduce_max, all_reduce_sum, gather_from_region

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy", "vocab_parallel_cross_entropy_reference"]

_REDUCTIONS = ("mean", "sum", "none")


@dataclass(frozen=True)
class _Opts:
    shard: VocabShard
    group: object
    tau: float  # temperature
    eps: float  # label smoothing
    zc: float  # z-loss weight
    ignore_index: int


def _loss_(z: torch.Tensor, t: torch.Tensor, o: _Opts) -> tuple[torch.Tensor, tuple]:
    """Per-token loss (N,) from this rank's fp32 logits ``z`` (N, V/W), which it **overwrites** with exp(z/τ - m)."""
    N, nv, shard = z.shape[0], o.shard.n_valid, o.shard
    keep = t != o.ignore_index  # (N,)
    m = z[:, :nv].max(dim=1).values if nv > 0 and N > 0 else z.new_full((N,), float("-inf"))  # (N,) local max, real columns
    all_reduce_max(m, o.group)  # (N,) global max; a constant for autograd (log-sum-exp is shift-invariant)
    m = m / o.tau
    if o.tau != 1.0:
        z.div_(o.tau)
    z.sub_(m[:, None])
    if nv < shard.rows:
        z[:, nv:] = float("-inf")  # padded columns: no probability, no gradient
    tl = t - shard.lo  # (N,) local column of the target
    mine = keep & (tl >= 0) & (tl < nv)  # (N,) targets in this shard
    tl = torch.where(mine, tl, torch.zeros_like(tl))
    stats = z.new_zeros(N, 3)  # (N, 3): target logit, Σ exp, Σ z
    stats[:, 0] = torch.where(mine, z.gather(1, tl[:, None])[:, 0], stats[:, 0])
    if o.eps > 0.0 and nv > 0:
        stats[:, 2] = z[:, :nv].sum(dim=1)
    e = z.exp_()  # (N, V/W) exp(z/τ - m), in place
    stats[:, 1] = e.sum(dim=1)
    all_reduce_sum(stats, o.group)  # the one SUM all-reduce
    pred, sum_exp, sum_z = stats.unbind(1)
    log_s = sum_exp.log()  # (N,) log S
    loss = log_s - pred  # (N,) nll
    if o.eps > 0.0:
        loss = (1.0 - o.eps) * loss + o.eps * (log_s - sum_z / shard.vocab_size)
    lse = log_s + m  # (N,) log Z of z/τ
    if o.zc > 0.0:
        loss = loss + o.zc * lse.square()
    return torch.where(keep, loss, torch.zeros_like(loss)), (e, sum_exp, lse, tl, mine, keep)


def _grad_(g: torch.Tensor, saved: tuple, o: _Opts) -> torch.Tensor:
    """∂loss/∂z (N, V/W) for upstream ``g`` (N,), written **into** the saved exp (no second (N, V/W) buffer)."""
    e, sum_exp, lse, tl, mine, keep = saved
    coef = torch.where(keep, g.float(), torch.zeros_like(sum_exp))  # (N,)
    scale = coef / sum_exp
    if o.zc > 0.0:
        scale = scale * (1.0 + 2.0 * o.zc * lse)
    grad = e.mul_(scale[:, None])  # (N, V/W) p_v · g · (1 + 2c log Z)
    hit = torch.where(mine, coef * (1.0 - o.eps), torch.zeros_like(coef))
    grad.scatter_add_(1, tl[:, None], -hit[:, None])  # - (1-ε)·onehot(t)
    if o.eps > 0.0 and o.shard.n_valid > 0:
        grad[:, : o.shard.n_valid] -= (coef * (o.eps / o.shard.vocab_size))[:, None]  # - ε/V on real columns
    if o.tau != 1.0:
        grad.div_(o.tau)
    return grad


def _once(ctx) -> None:
    if getattr(ctx, "used", False):
        raise RuntimeError("vocab-parallel cross-entropy: backward ran twice, but its saved softmax is overwritten by the first; recompute the loss instead of retain_graph=True")
    ctx.used = True


class _VocabParallelCE(torch.autograd.Function):
    """Per-token loss (N,) from local logits (N, V/W) (left untouched: works on a copy); 0 at ignored targets."""

    @staticmethod
    def forward(ctx, logits, t, o: _Opts):
        z = logits.float().clone() if logits.dtype == torch.float32 else logits.float()  # (N, V/W) our working copy
        loss, saved = _loss_(z, t, o)
        ctx.save_for_backward(*saved)
        ctx.o, ctx.dtype = o, logits.dtype
        return loss

    @staticmethod
    def backward(ctx, g):
        _once(ctx)
        return _grad_(g, ctx.saved_tensors, ctx.o).to(ctx.dtype), None, None


class _LinearCE(torch.autograd.Function):
    """Per-token loss (N,) of ``z = h W_r^T + b_r`` without keeping z: one (N, V/W) buffer from forward to backward."""

    @staticmethod
    def forward(ctx, h, weight, bias, t, o: _Opts):
        z = F.linear(h, weight, bias).float()  # (N, V/W): fresh, so ours to overwrite
        loss, saved = _loss_(z, t, o)
        ctx.save_for_backward(h, weight, *saved)
        ctx.o, ctx.has_bias = o, bias is not None
        return loss

    @staticmethod
    def backward(ctx, g):
        _once(ctx)
        h, weight, *saved = ctx.saved_tensors
        gz = _grad_(g, tuple(saved), ctx.o).to(weight.dtype)  # (N, V/W)
        grad_h = gz @ weight if ctx.needs_input_grad[0] else None  # (N, D)
        grad_w = gz.t() @ h if ctx.needs_input_grad[1] else None  # (V/W, D)
        grad_b = gz.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (V/W,)
        return grad_h, grad_w, grad_b, None, None


_DEFAULTS = {"temperature": 1.0, "label_smoothing": 0.0, "z_loss": 0.0, "ignore_index": -100, "reduction": "mean"}


def _prepare(shard: VocabShard, lead: tuple, targets: torch.Tensor, group, options: dict) -> tuple[torch.Tensor, int, _Opts, str]:
    """Validate the options and targets (before any collective); return flat targets (N,), kept count, options."""
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown loss option(s) {unknown}; the options are {sorted(_DEFAULTS)}")
    temperature, label_smoothing, z_loss, ignore_index, reduction = ({**_DEFAULTS, **options}[k] for k in _DEFAULTS)
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction={reduction!r} is not one of {_REDUCTIONS}")
    if not temperature > 0:
        raise ConfigError(f"temperature={temperature} must be > 0")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if not z_loss >= 0.0:
        raise ConfigError(f"z_loss={z_loss} must be >= 0 (PaLM uses 1e-4)")
    if tuple(lead) != tuple(targets.shape):
        raise ConfigError(f"the inputs have leading shape {tuple(lead)} but targets {tuple(targets.shape)}; they must match")
    t = targets.reshape(-1)  # (N,)
    kept = t[t != ignore_index]
    check_ids(kept, shard.vocab_size, where="vocab-parallel cross-entropy targets")
    return t, kept.numel(), _Opts(shard, group, float(temperature), float(label_smoothing), float(z_loss), int(ignore_index)), reduction


def _reduce(per: torch.Tensor, shape, n_kept: int, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per.reshape(shape)
    if reduction == "sum":
        return per.sum()
    return per.sum() / n_kept  # mean over kept tokens (NaN when none, as F.cross_entropy)


def vocab_parallel_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    shard: VocabShard,
    *,
    group=None,
    temperature: float = 1.0,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of ``softmax(z / τ)`` from this rank's logit columns (..., V/W) and the full targets (...).

    Every rank of ``group`` must call it with the same targets; all get the same loss. Equals
    :func:`tokembed.heads.cross_entropy` on the gathered logits (same options), gradients included.

    >>> import torch
    >>> from tokembed.heads import cross_entropy
    >>> shard = VocabShard.build(5, rank=0, world_size=1)  # one process: 5 real columns + 59 padding
    >>> z = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    >>> t = torch.tensor([0, 4, -100])
    >>> a = vocab_parallel_cross_entropy(z, t, shard, label_smoothing=0.1, temperature=2.0, z_loss=1e-4)
    >>> b = cross_entropy(z[:, :5], t, label_smoothing=0.1, temperature=2.0, z_loss=1e-4)
    >>> torch.allclose(a, b)
    True
    """
    if logits.shape[-1] != shard.rows:
        raise ConfigError(
            f"local logits have {logits.shape[-1]} columns but rank {shard.rank} owns {shard.rows} "
            f"(V={shard.vocab_size} padded to {shard.padded} over {shard.world_size} ranks); pass this rank's shard"
        )
    options = {"temperature": temperature, "label_smoothing": label_smoothing, "z_loss": z_loss, "ignore_index": ignore_index, "reduction": reduction}
    t, n_kept, o, reduction = _prepare(shard, logits.shape[:-1], targets, group, options)
    per = _VocabParallelCE.apply(logits.reshape(-1, shard.rows), t, o)  # (N,)
    return _reduce(per, targets.shape, n_kept, reduction)


def vocab_parallel_linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, shard: VocabShard, *, group=None, **options
) -> torch.Tensor:
    """:func:`vocab_parallel_cross_entropy` of ``z_r = h W_r^T + b_r`` with the projection fused in.

    ``h`` (..., D) must already be identical on every rank and pass through
    :func:`~tokembed.parallel.comm.copy_to_region` (``VocabParallelHead.loss`` does both). The
    local logits are computed inside and overwritten by the softmax and then by their own
    gradient, so the peak is one ``(N, V/W)`` fp32 buffer per rank instead of two or three.
    Backward may run once (no ``retain_graph`` reuse). ``options``: temperature, label_smoothing,
    z_loss, ignore_index, reduction, as :func:`vocab_parallel_cross_entropy`.
    """
    if weight.shape[0] != shard.rows:
        raise ConfigError(f"weight has {weight.shape[0]} rows but rank {shard.rank} owns {shard.rows} columns of V={shard.vocab_size}; pass this rank's shard")
    t, n_kept, o, reduction = _prepare(shard, h.shape[:-1], targets, group, options)
    per = _LinearCE.apply(h.reshape(-1, h.shape[-1]), weight, bias, t, o)  # (N,)
    return _reduce(per, targets.shape, n_kept, reduction)


def vocab_parallel_cross_entropy_reference(
    logits: torch.Tensor, targets: torch.Tensor, shard: VocabShard, *, group=None, **kwargs
) -> torch.Tensor:
    """Readable twin: gather the full logits (..., V), drop padding, call the single-process loss."""
    full = gather_from_region(logits, group)[..., : shard.vocab_size]  # (..., V)
    return cross_entropy(full, targets, **kwargs)
