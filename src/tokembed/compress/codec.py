"""What every codec provides, the dense (fp32/fp16/bf16) codec, and the one check of stored tensors.

A *codec* is the stored form of a compressed (V, D) matrix — ``QuantizedTensor``
(``quantize.py``), ``PQCodes`` (``pq.py``), ``LowRank`` (``lowrank.py``), ``SparseRows`` and
``Trimmed`` (``prune.py``), ``HashBuckets`` (``hashing.py``), ``MixedTables`` (``planner.py``) and
:class:`DenseTable` here. Unlike the modules in ``module.py``, which serve any codec as an
embedding or a head, a codec is a plain dataclass with:

- ``shape`` (V, D) and ``nbytes`` (bytes of storage);
- ``gather(ids)``: rows ``ids`` (N,) -> (N, D) float32, and ``decode()``: the whole (V, D);
- ``state() -> (tensors, config)`` and ``from_state(tensors, config)`` for artifacts;
- ``specs(config) -> {name: Spec}``: the tensors ``from_state`` accepts. :func:`check_state`
  compares every tensor with its spec — name, dtype, shape (dimension names bind to one size
  across tensors), integer range, finiteness — before the codec is built, so a corrupt or edited
  artifact is refused with :class:`ArtifactError` instead of reaching an index or a kernel;
- optionally ``logits(h, bias)``: a head's ``z = Ŵ h + b`` without decoding Ŵ row by row.

>>> import torch
>>> t = DenseTable(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).half())
>>> t.gather(torch.tensor([1])).tolist(), t.nbytes
([[3.0, 4.0]], 8)
>>> ts, cfg = t.state()
>>> DenseTable.from_state({"weight": ts["weight"][:1]}, {**cfg, "shape": [2, 2]})
Traceback (most recent call last):
  ...
tokembed.errors.ArtifactError: dense table: tensor 'weight' has shape (1, 2), but the metadata implies (V=2, D=2); the artifact is corrupt or was edited — write it again with 'tokembed compress'
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
from torch.nn import functional as F

from ..errors import ArtifactError, ConfigError, NonFiniteError

__all__ = ["Spec", "check_state", "config_int", "codec_shape", "check_matrix", "matrix_of", "DenseTable"]

_FIX = "the artifact is corrupt or was edited — write it again with 'tokembed compress'"


@dataclass(frozen=True)
class Spec:
    """One stored tensor: its shape (ints or dimension names), allowed dtypes and value constraints."""

    shape: tuple  # e.g. ("V", "D"): a name binds to the first size seen and must match everywhere
    dtypes: tuple  # allowed torch dtypes
    below: int | str | None = None  # integer tensors: every value in [0, below)
    finite: bool = False  # float tensors: no NaN / Inf
    optional: bool = False


def config_int(config: dict, key: str, where: str, *, low: int = 1, high: int | None = None) -> int:
    """``config[key]`` as an int in [low, high]; anything else is an :class:`ArtifactError`."""
    v = config.get(key) if isinstance(config, dict) else None
    if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ArtifactError(f"{where}: config {key}={v!r} is not an integer {rng}; {_FIX}")
    return v


def codec_shape(config: dict, where: str) -> tuple[int, int]:
    """The (V, D) a codec's config records (``[V, D]``), checked to be two ints (V >= 0, D >= 1)."""
    s = config.get("shape") if isinstance(config, dict) else None
    if not (isinstance(s, (list, tuple)) and len(s) == 2):
        raise ArtifactError(f"{where}: config shape={s!r} is not [V, D]; {_FIX}")
    return config_int({"V": s[0]}, "V", where, low=0), config_int({"D": s[1]}, "D", where)


def check_state(tensors: dict, specs: dict[str, Spec], where: str, dims: dict | None = None) -> dict:
    """Check ``tensors`` against ``specs`` (names, dtypes, shapes, then values); returns the bound dimensions.

    Shapes and dtypes are checked for every tensor before any value is read; ``dims`` holds the sizes
    the metadata claims (e.g. ``{"V": 30522, "D": 384}``), which the tensors must match.
    """
    dims = dict(dims or {})
    extra = sorted(set(tensors) - set(specs))
    if extra:
        raise ArtifactError(f"{where}: unexpected tensors {extra}; {_FIX}")
    for name, sp in specs.items():
        t = tensors.get(name)
        if t is None:
            if sp.optional:
                continue
            raise ArtifactError(f"{where}: tensor {name!r} is missing; the artifact is truncated or corrupt — write it "
                                "again with 'tokembed compress'")
        if not isinstance(t, torch.Tensor) or t.dtype not in sp.dtypes:
            want = " or ".join(str(d).replace("torch.", "") for d in sp.dtypes)
            raise ArtifactError(f"{where}: tensor {name!r} has dtype {getattr(t, 'dtype', type(t).__name__)}, expected "
                                f"{want}; {_FIX}")
        if t.ndim != len(sp.shape):
            raise ArtifactError(f"{where}: tensor {name!r} has shape {tuple(t.shape)}, expected {len(sp.shape)} "
                                f"dimensions {sp.shape}; {_FIX}")
        for want, got in zip(sp.shape, t.shape):
            if isinstance(want, str) and want not in dims:
                dims[want] = int(got)
            if got != (dims[want] if isinstance(want, str) else want):
                expected = ", ".join(f"{w}={dims[w]}" if isinstance(w, str) and w in dims else str(w) for w in sp.shape)
                raise ArtifactError(f"{where}: tensor {name!r} has shape {tuple(t.shape)}, but the metadata implies "
                                    f"({expected}); {_FIX}")
    for name, sp in specs.items():
        t = tensors.get(name)
        if t is None or t.numel() == 0:
            continue
        if sp.below is not None:
            hi = dims[sp.below] if isinstance(sp.below, str) else sp.below
            lo_v, hi_v = int(t.min()), int(t.max())
            if lo_v < 0 or hi_v >= hi:
                raise ArtifactError(f"{where}: tensor {name!r} holds values {lo_v}..{hi_v} outside [0, {hi}); {_FIX}")
        if sp.finite and not bool(torch.isfinite(t).all()):
            rows = (~torch.isfinite(t)).reshape(t.shape[0], -1).any(1).nonzero().flatten()[:5].tolist()
            raise ArtifactError(f"{where}: tensor {name!r} has NaN/Inf values in rows {rows}; {_FIX}")
    return dims


def check_matrix(W, what: str = "matrix") -> torch.Tensor:
    """A finite 2-D float32 CPU copy of ``W`` (V, D); :class:`ConfigError` / :class:`NonFiniteError` otherwise."""
    if not isinstance(W, torch.Tensor):
        W = torch.as_tensor(W)
    if W.ndim != 2:
        raise ConfigError(f"{what} must be 2-D (V, D), got shape {tuple(W.shape)}")
    W = W.detach().float().cpu()
    bad = ~torch.isfinite(W)
    if bool(bad.any()):
        rows = bad.any(1).nonzero().flatten()[:5].tolist()
        raise NonFiniteError(f"{what} has NaN/Inf values in rows {rows}; fix the source weights before compressing")
    return W


def matrix_of(W) -> torch.Tensor:
    """A (V, D) tensor from a tensor, ``nn.Embedding``/``nn.Linear`` or anything with ``weight_matrix()``."""
    if isinstance(W, torch.Tensor):
        return W.detach()
    if hasattr(W, "weight_matrix"):
        return W.weight_matrix().detach()
    if hasattr(W, "weight"):
        return W.weight.detach()
    return torch.as_tensor(W)


_DENSE = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class DenseTable:
    """The table itself at fp32, fp16 or bf16: the trivial codec (``--method fp16``, the planner's fp16/fp32 bands)."""

    weight: torch.Tensor  # (V, D) float32 / float16 / bfloat16

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    @property
    def nbytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).float()  # (N, D)

    def decode(self) -> torch.Tensor:
        return self.weight.float()

    def state(self) -> tuple[dict, dict]:
        return {"weight": self.weight}, {"dtype": str(self.weight.dtype).replace("torch.", ""), "shape": list(self.shape)}

    @staticmethod
    def specs(config: dict, where: str = "dense table") -> dict[str, Spec]:
        dt = config.get("dtype") if isinstance(config, dict) else None
        dtypes = (_DENSE[dt],) if dt in _DENSE else tuple(_DENSE.values())
        return {"weight": Spec(("V", "D"), dtypes, finite=True)}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "dense table") -> "DenseTable":
        dims = dict(zip("VD", codec_shape(config, where))) if "shape" in config else None
        check_state(tensors, cls.specs(config), where, dims)
        return cls(tensors["weight"])

