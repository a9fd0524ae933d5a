"""Training controls for embeddings: freeze a module, freeze some rows, per-part optimizer groups.

Unlike the layers in this package, nothing here computes vectors: these functions change how
an optimizer treats the parameters of an existing model.

Why freezing rows needs more than a gradient mask: with ``torch.optim.AdamW`` a row whose
gradient is zero still moves, because (1) decoupled weight decay shrinks it, ``θ ← θ − lr·λ·θ``,
and (2) the first moment ``m`` it accumulated before being frozen keeps pushing it,
``θ ← θ − lr·m̂/(√v̂+ε)`` with ``m ← β₁ m``. :func:`freeze_rows` therefore (a) masks the gradient
(so clipping, moments and sparse updates never see the rows) and (b) writes the saved rows
back after every optimizer step (a global optimizer step post-hook), so they stay
bit-identical under any optimizer, including decay and momentum from earlier steps.

>>> import torch
>>> from tokembed.embeddings import TokenEmbedding
>>> emb = TokenEmbedding(6, 2)
>>> handle = freeze_rows(emb, [0, 3])
>>> before = emb.weight[[0, 3]].clone()
>>> opt = torch.optim.AdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
>>> emb(torch.tensor([[0, 1, 3]])).sum().backward(); opt.step()
>>> torch.equal(emb.weight[[0, 3]], before), torch.equal(emb.weight[1], before[0])
(True, False)
>>> handle.remove()
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["freeze", "unfreeze", "freeze_rows", "FrozenRows", "embedding_param_groups"]


def freeze(module: nn.Module) -> nn.Module:
    """Stop training every parameter of ``module`` (``requires_grad=False``); returns the module.

    An optimizer built before the call still holds the parameters; since they get no
    gradient, AdamW skips them entirely (no decay either).
    """
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Undo :func:`freeze`."""
    for p in module.parameters():
        p.requires_grad_(True)
    return module


# id(parameter) -> live FrozenRows handles; read by the global optimizer post-hook. Keyed by id
# (tensors compare elementwise, so they cannot be dict keys); each handle checks it still
# points at that very parameter, so a reused id after garbage collection is harmless.
_REGISTRY: "dict[int, list[FrozenRows]]" = {}
_HOOK = None


def _restore_after_step(optimizer, args, kwargs) -> None:
    if not _REGISTRY:
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            for handle in _REGISTRY.get(id(p), ()):
                if handle._param() is p:
                    handle.restore()


class FrozenRows:
    """Handle returned by :func:`freeze_rows`: ``.rows`` (LongTensor), ``.restore()``, ``.remove()``."""

    def __init__(self, param: torch.Tensor, rows: torch.Tensor):
        self._param = weakref.ref(param)
        self.rows = rows  # (R,) long, on the parameter's device
        self.values = param.detach()[rows].clone()  # (R, D) saved rows
        self._grad_hook = param.register_hook(self._mask_grad)
        _REGISTRY.setdefault(id(param), []).append(self)
        weakref.finalize(param, _REGISTRY.pop, id(param), None)

    def _mask_grad(self, grad: torch.Tensor) -> torch.Tensor:
        rows = self.rows.to(grad.device)
        if grad.is_sparse:  # nn.Embedding(sparse=True)-style gradients
            grad = grad.coalesce()
            keep = ~torch.isin(grad.indices()[0], rows)
            return torch.sparse_coo_tensor(grad.indices()[:, keep], grad.values()[keep], grad.shape)
        return grad.index_fill(0, rows, 0.0)

    @torch.no_grad()
    def restore(self) -> None:
        """Write the saved rows back (called after every optimizer step that holds the parameter)."""
        p = self._param()
        if p is None:
            return
        if self.values.device != p.device or self.values.dtype != p.dtype:  # module moved by .to()
            self.values = self.values.to(p.device, p.dtype)
            self.rows = self.rows.to(p.device)
        p.index_copy_(0, self.rows, self.values)

    def remove(self) -> None:
        """Unfreeze the rows (they train again from the next step)."""
        self._grad_hook.remove()
        key = id(self._param()) if self._param() is not None else None
        if key in _REGISTRY:
            handles = [h for h in _REGISTRY[key] if h is not self]
            if handles:
                _REGISTRY[key] = handles
            else:
                del _REGISTRY[key]


def freeze_rows(embedding: nn.Module | torch.Tensor, rows: Iterable[int] | torch.Tensor) -> FrozenRows:
    """Keep rows ``rows`` of an embedding table bit-identical through training; returns a handle.

    Args:
        embedding: a module with a ``weight`` parameter of V rows (``TokenEmbedding``,
            ``nn.Embedding``, ``UntiedHead.proj``) or such a parameter itself.
        rows: row ids (token ids) to freeze; the values at call time are the ones kept, so
            call it after any initialisation (e.g. :func:`init_from_pretrained`).

    Works with every optimizer (the rows are written back after each ``optimizer.step()``)
    and with tying (the head shares the parameter). Call ``handle.remove()`` to unfreeze.
    """
    param = embedding if isinstance(embedding, torch.Tensor) else getattr(embedding, "weight", None)
    if not isinstance(param, nn.Parameter) or param.dim() < 1:
        raise ConfigError(
            f"freeze_rows needs a module with a 'weight' parameter of V rows or the parameter itself, "
            f"got {type(embedding).__name__}; for a factorized/hashed design freeze its parts with freeze()"
        )
    rows_t = torch.as_tensor(list(rows) if not isinstance(rows, torch.Tensor) else rows)
    if rows_t.dtype.is_floating_point or rows_t.dtype == torch.bool:
        raise ConfigError(f"rows must be integer row ids, got dtype {rows_t.dtype}; pass e.g. [0, 5, 7]")
    rows_t = rows_t.to(torch.long).flatten().unique()
    n = param.shape[0]
    bad = rows_t[(rows_t < 0) | (rows_t >= n)]
    if bad.numel():
        raise ConfigError(f"rows {bad[:5].tolist()} are outside [0, {n}); pass row ids below {n}")
    global _HOOK
    if _HOOK is None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        _HOOK = register_optimizer_step_post_hook(_restore_after_step)
    return FrozenRows(param, rows_t.to(param.device))


# ---------------------------------------------------------------------------------------------
# optimizer parameter groups

_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)


def _is_head(m: nn.Module) -> bool:
    return callable(getattr(m, "log_prob", None)) and callable(getattr(m, "loss", None))


def _is_embedding(m: nn.Module) -> bool:
    if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
        return True
    return hasattr(m, "num_embeddings") and callable(getattr(m, "weight_matrix", None)) and not _is_head(m)


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, _NORM_TYPES) or type(m).__name__.endswith("Norm")


def embedding_param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    embedding_lr: float | None = None,
    embedding_weight_decay: float = 0.0,
    head_lr: float | None = None,
    head_weight_decay: float | None = None,
) -> list[dict]:
    """Optimizer parameter groups where embeddings and heads get their own LR and weight decay.

    Parts: ``embedding`` (params under any embedding module: ``nn.Embedding`` or a module with
    ``num_embeddings`` and ``weight_matrix()``), ``head`` (under a module with ``log_prob`` and
    ``loss``, i.e. tokembed heads) and ``other``. Within each part, norm-layer parameters and
    any parameter with fewer than 2 dims (biases, gains) get no decay. A parameter shared by
    several modules (a tied head) is listed once, in the ``embedding`` part. Frozen parameters
    (``requires_grad=False``) are left out. Empty groups are dropped; each group has a ``name``.

    Args:
        lr / weight_decay: for the rest of the model.
        embedding_lr: LR of the embedding part (default ``lr``).
        embedding_weight_decay: decay of embedding tables (default 0: decay pulls rare tokens,
            which get few gradient updates, towards zero).
        head_lr / head_weight_decay: for an untied head (default ``lr`` / ``weight_decay``).

    >>> from tokembed.embeddings import TokenEmbedding
    >>> from tokembed.heads import TiedHead
    >>> emb = TokenEmbedding(10, 4)
    >>> model = nn.ModuleDict({"emb": emb, "norm": nn.LayerNorm(4), "head": TiedHead(emb, bias=True)})
    >>> groups = embedding_param_groups(model, lr=1e-3, weight_decay=0.1)
    >>> [(g["name"], len(g["params"]), g["lr"], g["weight_decay"]) for g in groups]
    [('embedding', 1, 0.001, 0.0), ('head.no_decay', 1, 0.001, 0.0), ('other.no_decay', 2, 0.001, 0.0)]
    """
    settings = {
        "embedding": (lr if embedding_lr is None else embedding_lr, embedding_weight_decay),
        "head": (lr if head_lr is None else head_lr, weight_decay if head_weight_decay is None else head_weight_decay),
        "other": (lr, weight_decay),
    }
    part_of: dict[int, str] = {}
    params: dict[int, nn.Parameter] = {}
    no_decay: set[int] = set()
    # pass 1 embeddings, pass 2 heads, pass 3 the rest: a shared (tied) parameter lands in the first part that holds it
    for part, test in (("embedding", _is_embedding), ("head", _is_head), ("other", lambda m: True)):
        if part == "other":
            roots = [model]
        else:  # the model itself counts only when it is a bare embedding/head (it may expose loss()/weight_matrix())
            found = [m for _, m in model.named_modules() if test(m) and m is not model]
            roots = found or ([model] if test(model) and not any(
                _is_embedding(m) or _is_head(m) for m in model.modules() if m is not model) else [])
        for root in roots:
            for m in root.modules():
                for p in m.parameters(recurse=False):
                    if not p.requires_grad or id(p) in part_of:
                        continue
                    part_of[id(p)] = part
                    params[id(p)] = p
                    if p.dim() < 2 or _is_norm(m):
                        no_decay.add(id(p))
    groups = []
    for part in ("embedding", "head", "other"):
        part_lr, part_wd = settings[part]
        decay = [params[i] for i, pt in part_of.items() if pt == part and i not in no_decay]
        plain = [params[i] for i, pt in part_of.items() if pt == part and i in no_decay]
        if decay:
            groups.append({"name": part, "params": decay, "lr": part_lr, "weight_decay": part_wd})
        if plain:
            groups.append({"name": f"{part}.no_decay", "params": plain, "lr": part_lr, "weight_decay": 0.0})
    return groups
