"""Scalar quantization of a (V, D) matrix: int8 / int4, per row or group-wise, symmetric or asymmetric.

Unlike product quantization (``pq.py``), which replaces sub-vectors by codebook entries,
scalar quantization rounds every element on its own grid; each group of ``gs``
consecutive elements of a row shares one scale (and, if asymmetric, one offset).
fp16/bf16 storage (:func:`cast`) is the trivial baseline.

Formulas (per row r, group g of size gs; L = 2^bits - 1):

- symmetric:  ``s = max|w| / (2^(bits-1) - 1)``, ``q = round(w / s)`` in ``[-(2^(bits-1)-1), 2^(bits-1)-1]``,
  ``ŵ = q · s``
- asymmetric: ``s = (max w - min w) / L``, ``q = round((w - min w) / s)`` in ``[0, L]``, ``ŵ = q · s + min w``

Either way ``|w - ŵ| <= s / 2`` per element (up to float rounding). Storage: int8 codes one
per byte; int4 codes two per byte (element ``2j`` in the low nibble, ``2j+1`` in the high
one; an odd D pads the last byte). Stored codes are offset so that every path serves
``ŵ = (c + qoff) · s (+ b)``: int8 symmetric ``qoff = 0``, int8 asymmetric ``qoff = 128``,
int4 symmetric ``qoff = -8`` (nibbles 1..15), int4 asymmetric ``qoff = 0``.

Shapes: V rows, D columns, G = D / gs groups per row, N looked-up rows.

>>> import torch
>>> W = torch.tensor([[0.5, -1.0, 0.25, 1.0]])
>>> qt = quantize(W, bits=8)
>>> qt.codes.view(torch.int8).tolist(), round(qt.scale.item(), 6)
([[64, -127, 32, 127]], 0.007874)
>>> pack_int4(torch.tensor([[1, 2, 15]], dtype=torch.uint8)).tolist()
[[33, 15]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ArtifactError, ConfigError
from ._kernels import gather_dequant, gather_dequant_reference
from .codec import Spec, check_matrix, check_state, codec_shape

__all__ = ["QuantConfig", "QuantizedTensor", "quantize", "pack_int4", "unpack_int4", "cast", "SUPPORTED_BITS"]

SUPPORTED_BITS = (8, 4)


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize a (V, D) matrix."""

    bits: int = 8  # 8 or 4 bits per element
    group_size: int | None = None  # elements sharing one scale; None = the whole row (per-row)
    symmetric: bool = True  # symmetric grid around 0 (scale only) or asymmetric (scale + offset)

    def check(self, D: int) -> int:
        """Validate against the row length D; return the effective group size."""
        if self.bits not in SUPPORTED_BITS:
            raise ConfigError(f"bits={self.bits} is not supported; choose bits=8 or bits=4")
        gs = D if self.group_size is None else self.group_size
        if not isinstance(gs, int) or gs <= 0 or D % gs:
            divisors = [g for g in (16, 32, 64, 128, 256) if D % g == 0] or [D]
            raise ConfigError(
                f"group_size={self.group_size} does not divide the row length D={D}; "
                f"choose a divisor of {D} (e.g. {', '.join(map(str, divisors))}) or omit it for per-row scales"
            )
        return gs


def pack_int4(nibbles: torch.Tensor) -> torch.Tensor:
    """(V, D) uint8 values in [0, 15] -> (V, ceil(D/2)) bytes, element 2j in the low nibble."""
    V, D = nibbles.shape
    if D % 2:
        nibbles = torch.cat([nibbles, nibbles.new_zeros(V, 1)], dim=1)  # pad odd D
    pairs = nibbles.view(V, -1, 2)  # (V, ceil(D/2), 2)
    return (pairs[..., 0] | (pairs[..., 1] << 4)).contiguous()


def unpack_int4(packed: torch.Tensor, D: int) -> torch.Tensor:
    """(V, ceil(D/2)) bytes -> (V, D) uint8 nibbles; inverse of :func:`pack_int4`."""
    lo, hi = packed & 15, packed >> 4
    return torch.stack([lo, hi], dim=-1).reshape(packed.shape[0], -1)[:, :D].contiguous()


@dataclass
class QuantizedTensor:
    """Codes + per-(row, group) scales (+ offsets) of a quantized (V, D) matrix."""

    codes: torch.Tensor  # (V, row_bytes) uint8: int8 codes (D bytes) or packed int4 (ceil(D/2) bytes)
    scale: torch.Tensor  # (V, G) float32
    bias: torch.Tensor | None  # (V, G) float32 offset (asymmetric) or None
    shape: tuple[int, int]  # (V, D)
    config: QuantConfig

    @property
    def qoff(self) -> float:
        c = self.config
        if c.bits == 8:
            return 0.0 if c.symmetric else 128.0
        return -8.0 if c.symmetric else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes of storage (codes + scales + offsets)."""
        n = self.codes.numel() * self.codes.element_size() + self.scale.numel() * 4
        return n + (self.bias.numel() * 4 if self.bias is not None else 0)

    def gather(self, ids: torch.Tensor, *, use_kernel: bool = True) -> torch.Tensor:
        """Dequantize only rows ``ids`` (N,) -> (N, D) float32 (fused kernel when available; ids checked first)."""
        return gather_dequant(self.codes, self.scale, self.bias, ids, D=self.shape[1], bits=self.config.bits,
                              qoff=self.qoff, use_kernel=use_kernel)

    def gather_reference(self, ids: torch.Tensor) -> torch.Tensor:
        return gather_dequant_reference(self.codes, self.scale, self.bias, ids, D=self.shape[1],
                                        bits=self.config.bits, qoff=self.qoff)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Dequantized rows ``start:stop`` -> (stop - start, D)."""
        return self.gather(torch.arange(start, stop))

    def dequantize(self) -> torch.Tensor:
        """The full (V, D) float32 matrix ``ŵ`` (reference path)."""
        return self.gather_reference(torch.arange(self.shape[0]))

    decode = dequantize

    def state(self) -> tuple[dict, dict]:
        """(tensors, JSON config) for artifacts."""
        t = {"codes": self.codes, "scale": self.scale}
        if self.bias is not None:
            t["bias"] = self.bias
        c = {"bits": self.config.bits, "group_size": self.config.group_size, "symmetric": self.config.symmetric,
             "shape": list(self.shape)}
        return t, c

    @staticmethod
    def _config(config: dict, where: str) -> tuple[QuantConfig, int, int]:
        V, D = codec_shape(config, where)
        qc = QuantConfig(bits=config.get("bits"), group_size=config.get("group_size"), symmetric=config.get("symmetric"))
        if not isinstance(qc.symmetric, bool):
            raise ArtifactError(f"{where}: config symmetric={qc.symmetric!r} is not true/false; the artifact is corrupt")
        try:
            gs = qc.check(D)
        except ConfigError as e:
            raise ArtifactError(f"{where}: {e}; the artifact is corrupt or was edited") from e
        return qc, V, D // gs

    @classmethod
    def specs(cls, config: dict, where: str = "quantized table") -> dict[str, Spec]:
        qc, V, G = cls._config(config, where)
        D = config["shape"][1]
        row_bytes = D if qc.bits == 8 else (D + 1) // 2
        f32 = (torch.float32,)
        return {"codes": Spec((V, row_bytes), (torch.uint8,)), "scale": Spec((V, G), f32, finite=True),
                "bias": Spec((V, G), f32, finite=True, optional=qc.symmetric)}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "quantized table") -> "QuantizedTensor":
        specs = cls.specs(config, where)
        if config["symmetric"] and "bias" in tensors:
            raise ArtifactError(f"{where}: a symmetric table stores no offsets but tensor 'bias' is present; the "
                                "artifact is corrupt or was edited")
        check_state(tensors, specs, where)
        qc, V, _ = cls._config(config, where)
        b = tensors.get("bias")
        return cls(tensors["codes"].contiguous(), tensors["scale"].contiguous(),
                   b.contiguous() if b is not None else None, (V, config["shape"][1]), qc)


def quantize(W: torch.Tensor, *, bits: int = 8, group_size: int | None = None, symmetric: bool = True) -> QuantizedTensor:
    """Quantize a (V, D) matrix to int8/int4 codes with per-row or group-wise scales.

    >>> import torch
    >>> W = torch.randn(100, 64, generator=torch.Generator().manual_seed(0))
    >>> qt = quantize(W, bits=4, group_size=16)
    >>> qt.codes.shape, qt.scale.shape, qt.nbytes
    (torch.Size([100, 32]), torch.Size([100, 4]), 4800)
    >>> bool(((qt.dequantize() - W).abs() <= qt.scale.repeat_interleave(16, 1) / 2 + 1e-6).all())
    True
    """
    W = check_matrix(W)
    V, D = W.shape
    cfg = QuantConfig(bits=bits, group_size=group_size, symmetric=symmetric)
    gs = cfg.check(D)
    G = D // gs
    Wg = W.view(V, G, gs)  # (V, G, gs)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1  # 127 or 7
        amax = Wg.abs().amax(-1)  # (V, G)
        scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
        q = torch.round(Wg / scale.unsqueeze(-1)).clamp_(-qmax, qmax)  # (V, G, gs)
        bias = None
    else:
        L = 2**bits - 1  # 255 or 15
        lo, hi = Wg.amin(-1), Wg.amax(-1)  # (V, G)
        scale = torch.where(hi > lo, (hi - lo) / L, torch.ones_like(lo))
        q = torch.round((Wg - lo.unsqueeze(-1)) / scale.unsqueeze(-1)).clamp_(0, L)
        bias = lo.contiguous()
    q = q.view(V, D)
    qoff = QuantizedTensor(torch.empty(0), scale, None, (V, D), cfg).qoff
    stored = (q - qoff).to(torch.int16)  # code that serves ŵ = (c + qoff)·s (+ b)
    if bits == 8:
        codes = stored.to(torch.int8).view(torch.uint8).contiguous()
    else:
        codes = pack_int4(stored.to(torch.uint8))
    return QuantizedTensor(codes, scale.contiguous(), bias, (V, D), cfg)


def cast(W: torch.Tensor, dtype: str | torch.dtype = "fp16") -> torch.Tensor:
    """fp16/bf16 storage, the trivial baseline: returns the cast (V, D) matrix.

    >>> import torch
    >>> cast(torch.tensor([[1/3]]), "fp16").item()
    0.333251953125
    """
    dtypes = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if isinstance(dtype, str):
        if dtype not in dtypes:
            raise ConfigError(f"dtype={dtype!r} is not a half-precision type; choose 'fp16' or 'bf16'")
        dtype = dtypes[dtype]
    return check_matrix(W).to(dtype)
