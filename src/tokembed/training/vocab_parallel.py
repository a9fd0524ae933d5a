"""Vocab-parallel training from the config (``parallel.vocab = true``): the model swap, the checkpoint, the evaluation.

Unlike :mod:`tokembed.training.distributed` (data parallelism: every rank a whole model and its
own rows of the batch), here the ranks of a torchrun job form **one** vocab-parallel group
(:mod:`tokembed.parallel`, the Megatron-LM design):

- :func:`shard_model` — the single-process model is built as usual (same seed, same weights),
  then its embedding and head are swapped in place for
  :class:`~tokembed.parallel.VocabParallelEmbedding` / :class:`~tokembed.parallel.VocabParallelHead`
  holding this rank's rows (tied stays tied; an untied head's bias is sharded). V is padded to
  a multiple of ``W·64``; the padded rows stay zero and are masked out of the loss. The blocks
  are replicated: every rank reads the **same full batch** (:func:`data_context` is a data
  world of one), so the global batch is the single-process batch, and the replicated
  parameters get bit-identical gradients on every rank (the collectives give every rank the
  same sums); :func:`check_replicas` verifies that at every checkpoint.
- :func:`clip_grad_norm_` — the global gradient norm over the sharded and the replicated parameters.
- :func:`full_state` / :func:`shard_state` — the checkpoint is ONE ordinary tokembed
  checkpoint: the sharded table, head weight, bias and their AdamW moments are gathered to
  rank 0 (padding rows stripped) under the single-process names, so ``tokembed eval/export/vocab``,
  a single-process resume and a resume at another world size read it like any other;
  :func:`shard_state` cuts a full checkpoint back into this rank's rows (no collective).
- :func:`evaluate` — :func:`tokembed.training.evaluate.evaluate` on every rank (the head
  gathers the logits of one evaluation batch), with the parameter counts of the full model.

In one process (world size 1) ``parallel.vocab`` changes nothing: the plain layers are the same
math without the padding. Unsupported designs raise :class:`ConfigError` when the config is read
(:meth:`tokembed.training.config.TrainConfig.check_parallel`).
"""

from __future__ import annotations

import torch

from ..embeddings.regularization import EmbeddingDropout
from ..errors import ConfigError
from ..parallel import VocabParallelEmbedding, VocabParallelHead
from ..parallel.comm import all_reduce_sum, group_size
from ..parallel.embedding import gather_rows, gather_rows_to, shard_rows
from . import distributed as _dist
from .checkpoint import model_tensors
from .evaluate import evaluate as _evaluate

__all__ = [
    "enabled",
    "shard_model",
    "is_sharded",
    "sharded_parameters",
    "data_context",
    "clip_grad_norm_",
    "embedding_row_grad",
    "check_replicas",
    "full_state",
    "shard_state",
    "full_parameter_counts",
    "evaluate",
]

def enabled(config, ctx: _dist.DistContext) -> bool:
    """True when this run is vocab-parallel: ``parallel.vocab`` under a torchrun job of more than one rank."""
    return bool(config.parallel.vocab) and ctx.active


def data_context() -> _dist.DistContext:
    """The data-parallel world of a vocab-parallel run: one replica, so every rank reads the full batch."""
    return _dist.DistContext()


def is_sharded(model) -> bool:
    return isinstance(getattr(model, "embedding", None), VocabParallelEmbedding)


@torch.no_grad()
def shard_model(model, *, group=None):
    """Swap ``model``'s embedding and head (built by :func:`~tokembed.model.build_model`) in place for
    vocab-parallel layers holding this rank's rows of the same weights; returns ``model``.

    Uses no global RNG (the VP layers' own init is overwritten), so dropout streams match one process.
    """
    cfg, old_emb, old_head = model.config, model.embedding, model.head
    V, D, device = cfg.vocab_size, cfg.d_model, old_emb.weight.device
    emb = VocabParallelEmbedding(V, D, group, scale=cfg.embedding_scale).load_full_(old_emb.weight.detach().cpu())
    if cfg.head == "untied":
        head = VocabParallelHead(D, V, group, bias=cfg.head_bias)
        head.load_full_(old_head.proj.weight.detach().cpu(), old_head.proj.bias.detach().cpu() if cfg.head_bias else None)
    else:
        head = VocabParallelHead(D, V, group, tie_to=emb, bias=cfg.head == "tied_bias")
        if head.bias is not None:
            head.load_full_(None, old_head.bias.detach().cpu())
    model.embedding, model.head = emb.to(device), head.to(device)  # same slots: module order (and AdamW order) kept
    if model._type_dropout is not None:  # the type-dropout sampler must not keep the full table alive
        object.__setattr__(model, "_type_dropout", EmbeddingDropout(emb, model.embedding_dropout))
    return model


def sharded_parameters(model) -> list[torch.nn.Parameter]:
    """The row-sharded parameters of a :func:`shard_model` model: the table, an untied head weight, the bias."""
    head = model.head
    return [p for p in (model.embedding.weight, head._own_weight, head.bias) if p is not None]


def _full_names(model) -> dict[str, str]:
    """State-dict key of each sharded tensor -> its key in the single-process model."""
    tied = model.head.tied is not None
    names = {"embedding.weight": "embedding.weight"}
    if not tied:
        names["head._own_weight"] = "head.proj.weight"
    if model.head.bias is not None:
        names["head.bias"] = "head.bias" if tied else "head.proj.bias"
    return names


def clip_grad_norm_(model, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` of the whole (unsharded) model: the sharded parameters' squared
    norms are summed over the ranks, so every rank gets the single-process norm and the same clip factor."""
    params = [p for p in model.parameters() if p.grad is not None]
    sharded = {id(p) for p in sharded_parameters(model)}
    sq = torch.zeros(2, dtype=torch.float64, device=params[0].device)  # [sharded (this rank's rows), replicated]
    for p in params:
        sq[0 if id(p) in sharded else 1] += torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float64).square()
    all_reduce_sum(sq[:1], model.embedding.group)
    total = sq.sum().sqrt().float()
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


def embedding_row_grad(model) -> torch.Tensor | None:
    """The table's full ``(V, D)`` gradient (a collective: every rank calls it), for the band monitor."""
    g = model.embedding.weight.grad
    return None if g is None else gather_rows(g, model.embedding.shard, model.embedding.group)


@torch.no_grad()
def check_replicas(model) -> None:
    """Raise when a replicated parameter differs between the ranks (a collective). It cannot by
    construction: every rank computes the same batch from the same all-reduced values."""
    sharded = {id(p) for p in sharded_parameters(model)}
    rest = [p for p in model.parameters() if id(p) not in sharded]
    group = model.embedding.group
    if not rest or group_size(group) == 1:
        return
    sums = torch.stack([p.detach().double().sum() for p in rest] + [p.detach().double().square().sum() for p in rest])
    lo, hi = sums.clone(), sums.clone()
    torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN, group=group)
    torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX, group=group)
    if not torch.equal(lo, hi):
        raise RuntimeError("vocab-parallel training: the replicated parameters differ between the ranks; "
                           "every rank must read the same batch with the same RNG state (please report this)")


def _moment_keys(model, optimizer, optim_tensors: dict, rows: int) -> list[str]:
    """Keys ``optim.{id}.{name}`` of the AdamW moments of the sharded parameters that have ``rows`` rows (the
    ids count the parameters over the groups, as ``optimizer.state_dict()``; "step" is a scalar, left out)."""
    sharded = {id(p) for p in sharded_parameters(model)}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    pids = {str(pid) for pid, p in enumerate(params) if id(p) in sharded}
    return sorted(k for k, t in optim_tensors.items()
                  if k.split(".")[1] in pids and t.ndim and t.shape[0] == rows)


def full_state(model, optimizer, optim_tensors: dict[str, torch.Tensor]) -> tuple[dict | None, dict]:
    """``(weights, optim_tensors)`` of the single-process model on rank 0, ``(None, optim_tensors)`` elsewhere.

    A collective (every rank calls it): the sharded table, head weight, bias and their AdamW moments
    (``optim.{id}.exp_avg``/``exp_avg_sq`` from :func:`~tokembed.training.checkpoint.optimizer_to_tensors`)
    are gathered to rank 0 with the padding rows stripped, under the single-process names.
    """
    check_replicas(model)
    shard, group, names = model.embedding.shard, model.embedding.group, _full_names(model)
    main = shard.rank == 0
    weights = {}
    for name, t in model_tensors(model).items():
        full = gather_rows_to(t, shard, group) if name in names else t
        weights[names.get(name, name)] = full
    out = dict(optim_tensors)
    for key in _moment_keys(model, optimizer, optim_tensors, shard.rows):  # the same order on every rank
        out[key] = gather_rows_to(optim_tensors[key], shard, group)
    return (weights if main else None), out


def shard_state(model, optimizer, weights: dict, optim_tensors: dict, *, where: str) -> tuple[dict, dict]:
    """A full checkpoint's ``(weights, optim_tensors)`` cut to this rank's rows under the vocab-parallel names
    (no collective). Works for a checkpoint written by any world size or by one process."""
    shard, weights = model.embedding.shard, dict(weights)
    for name, full_name in _full_names(model).items():
        if full_name not in weights:
            raise ConfigError(f"{where}: the checkpoint has no {full_name!r}, but this vocab-parallel model needs it; "
                              "the checkpoint is of another model design", param="resume")
        weights[name] = shard_rows(weights.pop(full_name), shard, what=f"{where} {full_name}")
    out = dict(optim_tensors)
    for key in _moment_keys(model, optimizer, optim_tensors, shard.vocab_size):
        out[key] = shard_rows(optim_tensors[key], shard, what=f"{where} {key}")
    return weights, out


def full_parameter_counts(model) -> tuple[dict[str, int], int]:
    """``(model.num_parameters(), model.embedding_bytes())`` of the single-process model, from a sharded one."""
    V, sharded = model.vocab_size, {id(p) for p in sharded_parameters(model)}
    counts, nbytes = {}, 0
    for part, items in model._groups().items():
        n = 0
        for _, p in items:
            numel = p.numel() // p.shape[0] * V if id(p) in sharded else p.numel()
            n += numel
            nbytes += numel * p.element_size() if part in ("embedding", "head") else 0
        counts[part] = n
    counts["total"] = sum(counts.values())
    return counts, nbytes


def evaluate(model, tokenizer, data, **kwargs):
    """:func:`~tokembed.training.evaluate.evaluate` on every rank of a sharded model (all ranks call it with
    the same data; each gets the same result), with the parameter counts and bytes of the full model."""
    result = _evaluate(model, tokenizer, data, **kwargs)
    if is_sharded(model):
        result.params, result.embedding_bytes = full_parameter_counts(model)
    return result
