"""TokenEmbedding: the plain lookup table ``e_t = E[i_t]``, ``E ∈ R^{V×D}``.

Unlike ``nn.Embedding`` it validates ids before the lookup (ids outside ``[0, V)`` or of
a non-integer dtype raise :class:`TokenIdError` naming the positions) instead of
crashing natively or wrapping silently.

Max-norm constraint: ``nn.Embedding(max_norm=...)`` renormalises the looked-up rows of its
weight *in place* during the forward, so any graph that used the weight before (a tied head,
a second lookup before ``backward``) fails with "one of the variables needed for gradient
computation has been modified by an inplace operation". Here the constraint is functional,
``e_t = E[i_t] · min(1, max_norm / ‖E[i_t]‖)``, so it is differentiable and safe with tying;
:meth:`TokenEmbedding.apply_max_norm_` projects the stored table itself (call it after
``optimizer.step()``, when no graph holds the weight).

Optional LayerNorm after the lookup ("stable embedding", as bitsandbytes' ``StableEmbedding``
with Xavier init) keeps the scale of the inputs fixed whatever the row norms.
Order in the forward: lookup -> max-norm -> LayerNorm -> ×√D.

Shapes: B batch, T time, V vocab, D model dim.

>>> import torch
>>> emb = TokenEmbedding(10, 4, seed=0)
>>> emb(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 4])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import TokenIdError
from ..errors import ConfigError

__all__ = ["TokenEmbedding", "check_ids"]


def check_ids(ids: torch.Tensor, num_embeddings: int, *, where: str = "embedding") -> None:
    """Raise :class:`TokenIdError` if ``ids`` is not an integer tensor with values in ``[0, V)``."""
    if not isinstance(ids, torch.Tensor):
        raise TokenIdError(f"{where}: ids must be a torch tensor of integers, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TokenIdError(f"{where}: ids have dtype {ids.dtype}; pass an integer tensor (torch.long)")
    if ids.numel() == 0:
        return
    bad = (ids < 0) | (ids >= num_embeddings)
    if bool(bad.any()):
        pos = bad.nonzero()[:5].tolist()
        vals = ids[bad][:5].tolist()
        raise TokenIdError(
            f"{where}: ids {vals} at positions {pos} are outside the valid range [0, {num_embeddings}); "
            f"the ids come from another tokenizer or the vocab size V={num_embeddings} is too small"
        )


class TokenEmbedding(nn.Module):
    """Lookup table ``E ∈ R^{V×D}`` with optional √D scaling and padding row.

    Args:
        num_embeddings: V.
        embedding_dim: D.
        padding_idx: row kept at zero and never updated (as ``nn.Embedding``).
        scale: multiply outputs by √D (Vaswani et al. 2017, §3.4).
        init: ``"normal"`` (std ``init_std``), ``"xavier"`` or ``"small"`` (uniform ±1e-4, "small init").
        init_std: std of the normal init (0.02 as GPT-2).
        validate: check ids before the lookup (on by default; costs one reduction).
        seed: init seed (deterministic by default).
        max_norm: rows are returned with ``‖e‖_p ≤ max_norm`` (functional, see module doc).
        norm_type: ``p`` of the max-norm constraint.
        layer_norm: apply ``nn.LayerNorm(D)`` to the looked-up vectors ("stable embedding").
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        padding_idx: int | None = None,
        scale: bool = False,
        init: str = "normal",
        init_std: float = 0.02,
        validate: bool = True,
        seed: int | None = 0,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        layer_norm: bool = False,
    ):
        super().__init__()
        if max_norm is not None and not max_norm > 0:
            raise ConfigError(f"max_norm={max_norm} must be > 0 (or None for no constraint)")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.scale = math.sqrt(embedding_dim) if scale else 1.0
        self.validate = validate
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))  # (V, D)
        self.norm = nn.LayerNorm(embedding_dim) if layer_norm else None
        self.reset_parameters(init=init, init_std=init_std, seed=seed)

    @torch.no_grad()
    def reset_parameters(self, *, init: str = "normal", init_std: float = 0.02, seed: int | None = 0) -> None:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        w = torch.empty_like(self.weight, device="cpu")
        if init == "normal":
            w.normal_(0.0, init_std, generator=g)
        elif init == "xavier":
            bound = math.sqrt(6.0 / (self.num_embeddings + self.embedding_dim))
            w.uniform_(-bound, bound, generator=g)
        elif init == "small":
            w.uniform_(-1e-4, 1e-4, generator=g)
        else:
            raise ConfigError(f"init={init!r} is not known; choose 'normal', 'xavier' or 'small'")
        if self.padding_idx is not None:
            w[self.padding_idx] = 0
        self.weight.copy_(w)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_ids(ids, self.num_embeddings)
        x = nn.functional.embedding(ids, self.weight, self.padding_idx)  # (B, T, D) = E[i_t]
        if self.max_norm is not None:
            x = self._clip(x)
        if self.norm is not None:
            x = self.norm(x)
        return x * self.scale if self.scale != 1.0 else x

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        """``x · min(1, max_norm / ‖x‖_p)`` row-wise, out of place (differentiable)."""
        n = torch.linalg.vector_norm(x, ord=self.norm_type, dim=-1, keepdim=True)  # (..., 1)
        return x * (self.max_norm / (n + 1e-7)).clamp(max=1.0)  # 1e-7: nn.Embedding's epsilon

    @torch.no_grad()
    def apply_max_norm_(self) -> None:
        """Project the stored table onto ``‖E[i]‖_p ≤ max_norm`` in place (call after ``optimizer.step()``)."""
        if self.max_norm is not None:
            self.weight.copy_(self._clip(self.weight))

    def weight_matrix(self) -> torch.Tensor:
        """The table ``E`` as a tied head sees it, (V, D): max-norm constrained if set (no LayerNorm, no √D)."""
        return self.weight if self.max_norm is None else self._clip(self.weight)

    def extra_repr(self) -> str:
        extra = f", max_norm={self.max_norm}" if self.max_norm is not None else ""
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, scale={self.scale != 1.0}, "
            f"padding_idx={self.padding_idx}{extra}"
        )
