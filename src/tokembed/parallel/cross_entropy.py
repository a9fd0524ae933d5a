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

import torch
from torch.nn import functional as F

from ..embeddings.lookup import check_ids
from ..errors import ConfigError
from ..heads import cross_entropy
from .comm import VocabShard, all_reduce_max, all_reduce_sum, gather_from_region

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_cross_entropy_reference"]

_REDUCTIONS = ("mean", "sum", "none")


class _VocabParallelCE(torch.autograd.Function):
    """Per-token loss (N,) from local logits (N, V/W); 0 at ignored targets."""

    @staticmethod
    def forward(ctx, logits, t, shard: VocabShard, group, tau: float, eps: float, zc: float, ignore_index: int):
        N, nv = logits.shape[0], shard.n_valid
        keep = t != ignore_index  # (N,)
        if nv > 0 and N > 0:
            m = logits[:, :nv].max(dim=1).values.float()  # (N,) local max over real columns
        else:
            m = logits.new_full((N,), float("-inf"), dtype=torch.float32)
        all_reduce_max(m, group)  # (N,) global max; a constant for autograd (log-sum-exp is shift-invariant)
        m = m / tau
        z = torch.div(logits.float(), tau) if tau != 1.0 else logits.float().clone()  # (N, V/W), our working copy
        z.sub_(m[:, None])
        if nv < shard.rows:
            z[:, nv:] = float("-inf")  # padded columns: no probability, no gradient
        tl = t - shard.lo  # (N,) local column of the target
        mine = keep & (tl >= 0) & (tl < nv)  # (N,) targets in this shard
        tl = torch.where(mine, tl, torch.zeros_like(tl))
        stats = z.new_zeros(N, 3)  # (N, 3): target logit, Σ exp, Σ z
        stats[:, 0] = torch.where(mine, z.gather(1, tl[:, None])[:, 0], stats[:, 0])
        if eps > 0.0 and nv > 0:
            stats[:, 2] = z[:, :nv].sum(dim=1)
        e = z.exp_()  # (N, V/W) exp(z/τ - m), in place: z is ours
        stats[:, 1] = e.sum(dim=1)
        all_reduce_sum(stats, group)  # the one SUM all-reduce
        pred, sum_exp, sum_z = stats.unbind(1)
        log_s = sum_exp.log()  # (N,) log S
        loss = log_s - pred  # (N,) nll
        if eps > 0.0:
            loss = (1.0 - eps) * loss + eps * (log_s - sum_z / shard.vocab_size)
        lse = log_s + m  # (N,) log Z of z/τ
        if zc > 0.0:
            loss = loss + zc * lse.square()
        loss = torch.where(keep, loss, torch.zeros_like(loss))
        ctx.save_for_backward(e, sum_exp, lse, tl, mine, keep)
        ctx.cfg = (shard, tau, eps, zc, logits.dtype)
        return loss

    @staticmethod
    def backward(ctx, g):
        e, sum_exp, lse, tl, mine, keep = ctx.saved_tensors
        shard, tau, eps, zc, dtype = ctx.cfg
        coef = torch.where(keep, g.float(), torch.zeros_like(sum_exp))  # (N,)
        scale = coef / sum_exp
        if zc > 0.0:
            scale = scale * (1.0 + 2.0 * zc * lse)
        grad = e * scale[:, None]  # (N, V/W) p_v · g · (1 + 2c log Z)
        hit = torch.where(mine, coef * (1.0 - eps), torch.zeros_like(coef))
        grad.scatter_add_(1, tl[:, None], -hit[:, None])  # - (1-ε)·onehot(t)
        if eps > 0.0 and shard.n_valid > 0:
            grad[:, : shard.n_valid] -= (coef * (eps / shard.vocab_size))[:, None]  # - ε/V on real columns
        if tau != 1.0:
            grad.div_(tau)
        return grad.to(dtype), None, None, None, None, None, None, None


def _check(shard: VocabShard, logits, targets, temperature, label_smoothing, z_loss, reduction) -> None:
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction={reduction!r} is not one of {_REDUCTIONS}")
    if not temperature > 0:
        raise ConfigError(f"temperature={temperature} must be > 0")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    if not z_loss >= 0.0:
        raise ConfigError(f"z_loss={z_loss} must be >= 0 (PaLM uses 1e-4)")
    if logits.shape[-1] != shard.rows:
        raise ConfigError(
            f"local logits have {logits.shape[-1]} columns but rank {shard.rank} owns {shard.rows} "
            f"(V={shard.vocab_size} padded to {shard.padded} over {shard.world_size} ranks); pass this rank's shard"
        )
    if logits.shape[:-1] != targets.shape:
        raise ConfigError(f"logits have leading shape {tuple(logits.shape[:-1])} but targets {tuple(targets.shape)}; they must match")


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
    _check(shard, logits, targets, temperature, label_smoothing, z_loss, reduction)
    t = targets.reshape(-1)  # (N,)
    kept = t[t != ignore_index]
    check_ids(kept, shard.vocab_size, where="vocab_parallel_cross_entropy targets")
    per = _VocabParallelCE.apply(
        logits.reshape(-1, shard.rows), t, shard, group, float(temperature), float(label_smoothing), float(z_loss), int(ignore_index)
    )  # (N,)
    if reduction == "none":
        return per.reshape(targets.shape)
    if reduction == "sum":
        return per.sum()
    return per.sum() / kept.numel()  # mean over kept tokens (NaN when none, as F.cross_entropy)


def vocab_parallel_cross_entropy_reference(
    logits: torch.Tensor, targets: torch.Tensor, shard: VocabShard, *, group=None, **kwargs
) -> torch.Tensor:
    """Readable twin: gather the full logits (..., V), drop padding, call the single-process loss."""
    full = gather_from_region(logits, group)[..., : shard.vocab_size]  # (..., V)
    return cross_entropy(full, targets, **kwargs)
