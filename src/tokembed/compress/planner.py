"""Frequency-aware mixed precision: pick fp16 / int8 / int4 / PQ per frequency band under a byte budget.

Unlike the single-method compressors, the planner spends bytes where tokens are used:
rows are ranked by corpus count and cut into geometric bands (the top band holds the
V/2^(n-1) most frequent ids, each next band twice as many), every band is tried with every
option, and an exact Pareto dynamic programme over bands picks the assignment with the
lowest **frequency-weighted relative error** whose bytes fit the budget:

    err_w = Σ_i c_i ||e_i - ê_i||² / Σ_i c_i ||e_i||²       (c_i = count of token i)

Bytes per row: fp16 ``2D``, int8 ``D + 4``, int4 ``ceil(D/2) + 4·G``, PQ ``M`` (+ the shared
codebooks ``M·2^nbits·(D/M)·4`` once), plus one byte per row for the id -> option map.
Since every uniform choice is one of the candidate assignments (apart from the map byte),
the plan is never worse than uniform compression at the same bytes, and strictly better
when counts are skewed (Zipf) — tested in ``tests/compress/test_planner.py``.

Shapes: V vocab, D dims, n bands.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> E = torch.randn(512, 32, generator=g)
>>> counts = 1000.0 / torch.arange(1, 513)  # Zipf
>>> p = plan(E, counts, budget_bytes=512 * 26, n_bands=4, options=("int8", "int4"))
>>> [b["option"] for b in p.bands], p.nbytes <= 512 * 26
(['int8', 'int8', 'int4', 'int4'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ArtifactError, ConfigError
from .codec import DenseTable, Spec, check_matrix, check_state, config_int
from .pq import PQCodes, pq_for_ratio, product_quantize
from .quantize import QuantizedTensor, quantize

__all__ = ["plan", "Plan", "MixedTables", "frequency_bands", "weighted_error", "OPTIONS"]

OPTIONS = ("fp32", "fp16", "int8", "int4", "pq")


_KINDS = {"fp32": DenseTable, "fp16": DenseTable, "int8": QuantizedTensor, "int4": QuantizedTensor, "pq": PQCodes}


def frequency_bands(counts: torch.Tensor, n_bands: int) -> list[torch.Tensor]:
    """Ids sorted by count (descending, ties by id) cut into geometric bands: sizes V/2^(n-1), V/2^(n-1), V/2^(n-2), ...

    >>> [b.tolist() for b in frequency_bands(torch.tensor([1, 9, 5, 0]), 2)]
    [[1, 2], [0, 3]]
    """
    V = counts.numel()
    order = torch.argsort(-counts.double(), stable=True)
    stops = sorted({max(1, round(V / 2 ** (n_bands - 1 - b))) for b in range(n_bands)} | {V})
    starts = [0] + stops[:-1]
    return [order[a:b] for a, b in zip(starts, stops) if b > a]


def weighted_error(E: torch.Tensor, E_hat: torch.Tensor, counts: torch.Tensor) -> float:
    """Frequency-weighted relative error ``Σ c_i ||e_i - ê_i||² / Σ c_i ||e_i||²``."""
    c = counts.double()
    num = (c * ((E.double() - E_hat.double()) ** 2).sum(1)).sum()
    den = (c * (E.double() ** 2).sum(1)).sum()
    return float(num / den) if den > 0 else 0.0


@dataclass
class MixedTables:
    """Rows grouped by the option that stores them; ``group_of[i]`` names the group of id i."""

    options: tuple[str, ...]  # group index -> option name
    tables: dict  # option name -> stored rows (ids of that group in increasing id order)
    group_of: torch.Tensor  # (V,) uint8
    D: int
    local: torch.Tensor = field(init=False)  # (V,) long: row of id i inside its group's table

    def __post_init__(self):
        g = self.group_of.long()
        onehot = torch.nn.functional.one_hot(g, len(self.options))  # (V, n_opt)
        self.local = (onehot.cumsum(0) - 1).gather(1, g.unsqueeze(1)).squeeze(1)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.group_of.numel(), self.D)

    @property
    def nbytes(self) -> int:
        return self.group_of.numel() + sum(t.nbytes for t in self.tables.values())

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.empty(ids.numel(), self.D)  # (N, D)
        g = self.group_of[ids]
        for j, name in enumerate(self.options):
            if name not in self.tables:
                continue
            sel = (g == j).nonzero().flatten()
            if sel.numel():
                out[sel] = self.tables[name].gather(self.local[ids[sel]])
        return out

    def decode(self) -> torch.Tensor:
        return self.gather(torch.arange(self.shape[0]))

    def state(self) -> tuple[dict, dict]:
        tensors = {"group_of": self.group_of}
        sub = {}
        for name, t in self.tables.items():
            ts, cs = t.state()
            tensors.update({f"{name}.{k}": v for k, v in ts.items()})
            sub[name] = cs
        return tensors, {"options": list(self.options), "tables": sub, "D": self.D}

    @classmethod
    def from_state(cls, tensors: dict, config: dict, where: str = "mixed table") -> "MixedTables":
        """Check the id -> group map, then every group's table against its own specs and row count."""
        options, sub = config.get("options"), config.get("tables")
        if not (isinstance(options, list) and 1 <= len(options) <= len(_KINDS) and set(options) <= set(_KINDS)
                and len(set(options)) == len(options) and isinstance(sub, dict) and set(sub) <= set(options)):
            raise ArtifactError(f"{where}: config options={options!r} / tables={list(sub or ())!r} are not a subset "
                                f"of {list(_KINDS)}; the artifact is corrupt or was edited")
        D = config_int(config, "D", where)
        own = {k: v for k, v in tensors.items() if "." not in k}
        check_state(own, {"group_of": Spec(("V",), (torch.uint8,), below=len(options))}, where)
        sizes = torch.bincount(own["group_of"].long(), minlength=len(options)).tolist()
        tables = {}
        for j, name in enumerate(options):
            if name not in sub:
                if sizes[j]:
                    raise ArtifactError(f"{where}: {sizes[j]} ids map to option {name!r}, which stores no table")
                continue
            ts = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(name + ".")}
            cs = dict(sub[name]) if isinstance(sub[name], dict) else {}
            if cs.setdefault("shape", [sizes[j], D]) != [sizes[j], D]:
                raise ArtifactError(f"{where}: option {name!r} records shape {cs['shape']} but {sizes[j]} ids map to it "
                                    f"(D={D}); the artifact is corrupt or was edited")
            if name in ("fp16", "fp32"):
                cs.setdefault("dtype", "float16" if name == "fp16" else "float32")
            tables[name] = _KINDS[name].from_state(ts, cs, f"{where}, {name} rows")
        stray = sorted(k for k in tensors if "." in k and k.split(".", 1)[0] not in tables)
        if stray:
            raise ArtifactError(f"{where}: unexpected tensors {stray}; the artifact is corrupt or was edited")
        return cls(tuple(options), tables, own["group_of"], D)


@dataclass
class Plan:
    bands: list[dict]  # per band: rank range, rows, count share, chosen option, bytes, weighted error share
    tables: MixedTables
    nbytes: int
    weighted_error: float
    uniform: dict  # option -> {"bytes", "weighted_error"} of the same option applied to every row


def _encode(name: str, E: torch.Tensor, *, int4_group: int | None, pq_M: int, pq_nbits: int, seed: int):
    if name == "fp32":
        return DenseTable(E.clone())
    if name == "fp16":
        return DenseTable(E.half())
    if name == "int8":
        return quantize(E, bits=8)
    if name == "int4":
        return quantize(E, bits=4, group_size=int4_group)
    return product_quantize(E, M=pq_M, nbits=pq_nbits, seed=seed)


def plan(E: torch.Tensor, counts, *, budget_bytes: int, n_bands: int = 8, options=("fp16", "int8", "int4", "pq"),
         int4_group: int | None = None, pq_M: int | None = None, pq_nbits: int = 8, seed: int = 0,
         smoothing: float = 0.0) -> Plan:
    """Choose one option per frequency band minimising ``err_w`` with total bytes <= ``budget_bytes``.

    ``smoothing`` is added to every count (add-α): with 0, tokens never seen on the corpus weigh
    nothing and get the cheapest option even when bytes are left; with 1 they keep a small weight,
    so spare budget goes to them too.
    """
    E = check_matrix(E, "embedding matrix")
    V, D = E.shape
    counts = torch.as_tensor(counts).double().flatten()
    if counts.numel() != V:
        raise ConfigError(f"counts has {counts.numel()} entries but the matrix has V={V} rows; count with the same tokenizer")
    if bool((counts < 0).any()) or smoothing < 0:
        raise ConfigError(f"counts and smoothing must be >= 0 (smoothing={smoothing})")
    counts = counts + smoothing
    bad = [o for o in options if o not in OPTIONS]
    if bad or not options:
        raise ConfigError(f"unknown planner options {bad or options}; choose from {', '.join(OPTIONS)}")
    options = tuple(dict.fromkeys(options))
    if pq_M is None and "pq" in options:
        pq_M = pq_for_ratio(D, 16, nbits=pq_nbits)
    # full-matrix encodings: one per option (PQ codebooks trained on all rows, shared by every PQ band)
    enc = {o: _encode(o, E, int4_group=int4_group, pq_M=pq_M, pq_nbits=pq_nbits, seed=seed) for o in options}
    row_err = {o: ((E.double() - _decode(enc[o]).double()) ** 2).sum(1) for o in options}  # (V,) ||e - ê||²
    den = float((counts * (E.double() ** 2).sum(1)).sum()) or 1.0
    row_bytes = {o: _row_bytes(enc[o], V) for o in options}
    shared = {o: (enc[o].codebooks.numel() * 4 if o == "pq" else 0) for o in options}

    bands = frequency_bands(counts, n_bands)
    cost = [{o: (row_bytes[o] * len(b) + len(b), float((counts[b] * row_err[o][b]).sum()) / den) for o in options}
            for b in bands]  # + 1 byte/row for the id -> option map

    best = None
    for allowed in {tuple(o for o in options if o != "pq"), options} - {()}:
        overhead = sum(shared[o] for o in allowed)
        choice = _pareto_dp(cost, allowed, budget_bytes - overhead)
        if choice is not None:
            nb = sum(cost[i][o][0] for i, o in enumerate(choice)) + (overhead if "pq" in choice else 0)
            err = sum(cost[i][o][1] for i, o in enumerate(choice))
            if nb <= budget_bytes and (best is None or err < best[1]):
                best = (choice, err, nb)
    if best is None:
        cheapest = min(sum(min(c[o][0] for o in allowed) for c in cost) + sum(shared[o] for o in allowed)
                       for allowed in [(o,) for o in options])
        raise ConfigError(f"budget_bytes={budget_bytes} is below the smallest plan ({cheapest} bytes with options "
                          f"{', '.join(options)}); raise the budget or allow a smaller option such as 'pq'")
    choice, err, _ = best
    used = tuple(o for o in options if o in choice)
    group_of = torch.empty(V, dtype=torch.uint8)
    for b, o in zip(bands, choice):
        group_of[b] = used.index(o)
    tables = {}
    for j, o in enumerate(used):
        rows = (group_of == j).nonzero().flatten()
        tables[o] = _subset(enc[o], rows)
    mixed = MixedTables(used, tables, group_of, D)
    total = counts.sum().clamp_min(1e-300)
    band_info = []
    start = 0
    for b, o, c in zip(bands, choice, cost):
        band_info.append({"ranks": [start, start + len(b)], "rows": len(b), "count_share": float(counts[b].sum() / total),
                          "option": o, "bytes": c[o][0], "weighted_error": c[o][1]})
        start += len(b)
    uniform = {o: {"bytes": row_bytes[o] * V + shared[o], "weighted_error": float((counts * row_err[o]).sum()) / den}
               for o in options}
    return Plan(band_info, mixed, mixed.nbytes, err, uniform)


def _pareto_dp(cost: list[dict], allowed: tuple, budget: float):
    """Exact multiple-choice knapsack over bands via Pareto fronts of (bytes, error)."""
    front = [(0, 0.0, ())]
    for c in cost:
        cand = sorted(((b + c[o][0], e + c[o][1], ch + (o,)) for b, e, ch in front for o in allowed), key=lambda t: (t[0], t[1]))
        front = []
        for t in cand:  # keep points that strictly lower the error as bytes grow
            if t[0] <= budget and (not front or t[1] < front[-1][1]):
                front.append(t)
        if not front:
            return None
    return front[-1][2]  # the lowest error within the budget


def _decode(t) -> torch.Tensor:
    return t.decode()


def _row_bytes(t, V: int) -> int:
    if isinstance(t, PQCodes):
        return t.codes.shape[1] * t.codes.element_size()
    return t.nbytes // V


def _subset(t, rows: torch.Tensor):
    if isinstance(t, DenseTable):
        return DenseTable(t.weight[rows].contiguous())
    if isinstance(t, QuantizedTensor):
        b = t.bias[rows].contiguous() if t.bias is not None else None
        return QuantizedTensor(t.codes[rows].contiguous(), t.scale[rows].contiguous(), b, (len(rows), t.shape[1]), t.config)
    return PQCodes(t.codes[rows].contiguous(), t.codebooks, (len(rows), t.shape[1]), t.nbits)
