"""Positions: how a Transformer learns where a token is.

Unlike the token embeddings (ids -> vectors), these modules carry no vocabulary: they
inject the position ``t`` of each token. Every kind offers the same three hooks so the
model never branches on the kind (composition, not inheritance):

- ``add(x)``:  ``x_t = e_t + PE_t`` for the additive kinds (sinusoidal, learned); identity otherwise.
- ``rotate(q, k)``: RoPE rotates queries and keys inside attention; identity otherwise.
- ``attn_bias(T)``: ALiBi's additive attention bias ``-m_h (i - j)`` (H, T, T); ``None`` otherwise.

Kinds: ``"sinusoidal"`` (Vaswani et al. 2017, §3.5), ``"learned"`` (GPT-2), ``"rope"``
(Su et al. 2021, RoFormer), ``"alibi"`` (Press et al. 2022, "Train Short, Test Long"),
``"none"`` (causal attention alone still leaks position; Haviv et al. 2022).

Shapes: B batch, T time, D model dim, H heads, hs head dim (D / H).

>>> pe = SinusoidalPositions(4, max_seq_len=8)
>>> [round(v, 6) for v in pe.table[1].tolist()]  # [sin(1), cos(1), sin(1/100), cos(1/100)]
[0.841471, 0.540302, 0.01, 0.99995]
>>> alibi_slopes(8)
[0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625]
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "POSITIONAL_KINDS",
    "Positional",
    "NoPositions",
    "SinusoidalPositions",
    "LearnedPositions",
    "RotaryPositions",
    "ALiBiPositions",
    "alibi_slopes",
    "rope_rotate_reference",
    "build_positional",
]

POSITIONAL_KINDS = ("sinusoidal", "learned", "rope", "alibi", "none")

#: RoPE base θ (Su et al. 2021, eq. 15: θ_i = 10000^{-2i/d}), also the sinusoidal base (Vaswani et al. 2017).
BASE = 10000.0


class Positional(nn.Module):
    """Identity hooks; each kind overrides the one it uses."""

    kind = "none"

    def __init__(self, *, max_seq_len: int):
        super().__init__()
        self.max_seq_len = max_seq_len

    def _check_len(self, T: int) -> None:
        if T > self.max_seq_len:
            raise ConfigError(
                f"sequence length {T} exceeds max_seq_len={self.max_seq_len} of the {self.kind} positions; "
                f"pass shorter sequences or build the model with max_seq_len >= {T}"
            )

    def add(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        self._check_len(x.shape[1])
        return x

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, H, T, hs)
        return q, k

    def attn_bias(self, T: int, *, device=None, dtype=None) -> torch.Tensor | None:
        return None


class NoPositions(Positional):
    """No explicit positions ("NoPE"): order reaches the model only through the causal mask."""

    kind = "none"


def sinusoidal_table(T: int, D: int) -> torch.Tensor:
    """PE[t, 2i] = sin(t / 10000^{2i/D}), PE[t, 2i+1] = cos(t / 10000^{2i/D}); (T, D)."""
    if D % 2:
        raise ConfigError(f"sinusoidal positions need an even d_model, got {D}; pass an even d_model")
    t = torch.arange(T, dtype=torch.float64)[:, None]  # (T, 1)
    inv = BASE ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # (D/2,)
    pe = torch.zeros(T, D, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(t * inv)
    pe[:, 1::2] = torch.cos(t * inv)
    return pe.float()


class SinusoidalPositions(Positional):
    """Fixed sinusoids added to the token embeddings: ``x_t = e_t + PE_t`` (no parameters)."""

    kind = "sinusoidal"

    def __init__(self, d_model: int, *, max_seq_len: int):
        super().__init__(max_seq_len=max_seq_len)
        self.register_buffer("table", sinusoidal_table(max_seq_len, d_model), persistent=False)  # (Tmax, D)

    def add(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        self._check_len(T)
        return x + self.table[:T].to(x.dtype)  # (B, T, D) + (T, D): x_t = e_t + PE_t


class LearnedPositions(Positional):
    """A learned table ``P ∈ R^{Tmax×D}`` added to the token embeddings: ``x_t = e_t + P_t`` (GPT-2)."""

    kind = "learned"

    def __init__(self, d_model: int, *, max_seq_len: int, init_std: float = 0.02):
        super().__init__(max_seq_len=max_seq_len)
        self.weight = nn.Parameter(torch.empty(max_seq_len, d_model))  # (Tmax, D)
        nn.init.normal_(self.weight, 0.0, init_std)

    def add(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        self._check_len(T)
        return x + self.weight[:T]  # (B, T, D) + (T, D)


def rope_rotate_reference(x: torch.Tensor, positions: torch.Tensor, *, base: float = BASE) -> torch.Tensor:
    """Slow, readable RoPE: rotate each pair ``(x_{2i}, x_{2i+1})`` by the angle ``t·θ_i``.

    The pair convention of the RoFormer paper (eq. 34); the fast path :class:`RotaryPositions`
    uses the "rotate half" layout (pairs ``(x_i, x_{i+hs/2})``) — the same rotation on permuted
    coordinates, checked by a test. x: (..., T, hs), positions: (T,).
    """
    hs = x.shape[-1]
    out = x.clone()
    for t_idx, t in enumerate(positions.tolist()):
        for i in range(hs // 2):
            theta = t * base ** (-2.0 * i / hs)
            c, s = math.cos(theta), math.sin(theta)
            a, b = x[..., t_idx, 2 * i], x[..., t_idx, 2 * i + 1]
            out[..., t_idx, 2 * i] = a * c - b * s
            out[..., t_idx, 2 * i + 1] = a * s + b * c
    return out


class RotaryPositions(Positional):
    """RoPE: rotate q and k by position-dependent angles so ``q_m·k_n`` depends on ``m - n`` only.

    ``R_t x``: for i < hs/2, ``(x_i, x_{i+hs/2}) -> (x_i cos tθ_i - x_{i+hs/2} sin tθ_i,
    x_i sin tθ_i + x_{i+hs/2} cos tθ_i)``, ``θ_i = base^{-2i/hs}`` (rotate-half layout, as GPT-NeoX).
    Rotations preserve norms.
    """

    kind = "rope"

    def __init__(self, head_dim: int, *, max_seq_len: int, base: float = BASE):
        super().__init__(max_seq_len=max_seq_len)
        if head_dim % 2:
            raise ConfigError(f"RoPE needs an even head dim (d_model / n_heads), got {head_dim}; change d_model or n_heads")
        self.head_dim = head_dim
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (hs/2,) θ_i
        ang = torch.arange(max_seq_len, dtype=torch.float64)[:, None] * inv  # (Tmax, hs/2) tθ_i
        ang = torch.cat([ang, ang], dim=-1)  # (Tmax, hs)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([-x2, x1], dim=-1)

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = q.shape[-2]
        self._check_len(T)
        cos = self.cos[:T].to(q.dtype)  # (T, hs)
        sin = self.sin[:T].to(q.dtype)
        q = q * cos + self._rotate_half(q) * sin  # (B, H, T, hs): R_t q
        k = k * cos + self._rotate_half(k) * sin
        return q, k


def alibi_slopes(n_heads: int) -> list[float]:
    """Head slopes ``m_h`` of ALiBi (Press et al. 2022, §3): the geometric sequence starting at
    ``2^{-8/n}`` with ratio ``2^{-8/n}``; for n not a power of 2, the slopes of the closest
    power of 2 followed by every other slope of twice that many heads (their reference code).

    >>> alibi_slopes(4)
    [0.25, 0.0625, 0.015625, 0.00390625]
    """
    if n_heads < 1:
        raise ConfigError(f"ALiBi needs n_heads >= 1, got {n_heads}")

    def power_of_2(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


class ALiBiPositions(Positional):
    """ALiBi: no position vectors; attention logits get ``-m_h (i - j)`` for key j ≤ query i.

    ``attn_bias(T)`` returns the bias with the causal mask folded in (``-inf`` above the
    diagonal), ready for ``scaled_dot_product_attention(attn_mask=...)``.
    """

    kind = "alibi"

    def __init__(self, n_heads: int, *, max_seq_len: int):
        super().__init__(max_seq_len=max_seq_len)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(n_heads)), persistent=False)  # (H,)
        self._cache: dict[tuple, torch.Tensor] = {}

    def attn_bias(self, T: int, *, device=None, dtype=None) -> torch.Tensor:
        self._check_len(T)
        key = (T, str(device), dtype)
        bias = self._cache.get(key)
        if bias is None:
            pos = torch.arange(T, device=self.slopes.device)
            dist = (pos[:, None] - pos[None, :]).float()  # (T, T): i - j
            bias = -self.slopes[:, None, None] * dist  # (H, T, T): -m_h (i - j)
            bias = bias.masked_fill(dist < 0, float("-inf"))  # causal: keys after the query are masked
            bias = bias.to(device=device or self.slopes.device, dtype=dtype or torch.float32)
            self._cache = {key: bias}
        return bias


def build_positional(kind: str, *, d_model: int, n_heads: int, max_seq_len: int) -> Positional:
    """The positional module of ``kind`` (one of :data:`POSITIONAL_KINDS`)."""
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model, max_seq_len=max_seq_len)
    if kind == "learned":
        return LearnedPositions(d_model, max_seq_len=max_seq_len)
    if kind == "rope":
        return RotaryPositions(d_model // n_heads, max_seq_len=max_seq_len)
    if kind == "alibi":
        return ALiBiPositions(n_heads, max_seq_len=max_seq_len)
    if kind == "none":
        return NoPositions(max_seq_len=max_seq_len)
    raise ConfigError(f"positional={kind!r} is not known; choose one of {', '.join(POSITIONAL_KINDS)}")
