"""Remaps of tables that do not keep one row per token id: adaptive bands and clusters, compressed codecs.

Unlike :meth:`VocabMap.apply_rows <tokembed.vocab.map.VocabMap.apply_rows>` (row ``j`` of the new
table is row ``source[j]`` of the old one), these tables store rows in another order or form:

- **AdaptiveInput / AdaptiveSoftmax** store rows in *frequency-rank* order, cut into bands of
  decreasing width (``cutoffs``). :func:`band_plan` re-derives the order and the cutoffs: the
  kept tokens keep their rank order (the checkpoint's frequency order, so the new order is the
  old ``token_counts`` order restricted to them) **and their band**, so the new cutoffs are the
  number of kept tokens in each old band (cumulated). New tokens have no count (0): they go to
  the tail of the last band. Keeping every token in its band keeps its vectors bit for bit
  (``E_k`` row and ``P_k`` unchanged); moving a token to a band of another width would change it
  (``P_j^+ P_k e`` is exact only for ``P_j = I``). A tail band left with no token stays, empty
  (a repeated cutoff): removing it would change the widths of the bands after it, and the
  softmax gives an empty cluster no probability. An empty shortlist (band 0) is refused.
- **compressed codecs** (``tokembed.compress``): per-row tensors (int8/int4 codes, scales and
  offsets, PQ codes, low-rank ``A``, sparse values/indices, hash buckets, trimmed id map, mixed
  groups) follow the map row by row, byte for byte; shared tensors (codebooks, ``B``,
  centroids) are unchanged; new rows are encoded from their init with the same codec
  (:func:`remap_codec`).

Shapes: V / V' old / new tokens, D model dim, n_k / d_k rows / width of band k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..compress.codec import DenseTable
from ..compress.hashing import HashBuckets
from ..compress.kmeans import assign
from ..compress.lowrank import LowRank
from ..compress.planner import MixedTables
from ..compress.pq import PQCodes
from ..compress.prune import SparseRows, Trimmed
from ..compress.quantize import QuantizedTensor, quantize
from ..embeddings.adaptive import band_bounds
from ..errors import ArtifactError
from ..model import ModelConfig, build_model, default_cutoffs
from ..training.checkpoint import load_model_tensors
from .map import VocabMap

__all__ = ["BandPlan", "band_plan", "gather_rows", "lstsq_rows", "adaptive_checkpoint", "remap_codec"]


@dataclass
class BandPlan:
    """Where every row of the new adaptive table comes from.

    >>> m = VocabMap.from_keep(old_size=6, keep=[0, 1, 3, 5])
    >>> p = band_plan(torch.tensor([3, 1, 5, 2, 4, 0]), [2, 4], m)   # old order: ids by rank
    >>> p.order.tolist(), p.cutoffs, [r.tolist() for r in p.rows]
    ([2, 1, 3, 0], [2, 3], [[0, 1], [0], [1]])
    """

    order: torch.Tensor  # (V',) new id of each new rank
    cutoffs: list[int]  # new band boundaries (ranks)
    rows: list[torch.Tensor]  # per band k: (n'_k,) row inside old band k of each new row, -1 for a new token
    new_ids: torch.Tensor  # (n_new,) new ids of the new tokens (the tail of the last band)

    @property
    def band_sizes(self) -> list[int]:
        return [len(r) for r in self.rows]


def band_plan(order: torch.Tensor, cutoffs: list[int], vmap: VocabMap) -> BandPlan:
    """The new rank order and cutoffs of an adaptive table after ``vmap`` (see the module docstring)."""
    V = order.numel()
    if V != vmap.old_size:
        raise ArtifactError(f"the adaptive table has {V} rows but the map is for {vmap.old_size} tokens; "
                            "pass the tokenizer the model was trained with")
    o2n = torch.tensor(vmap.old_to_new, dtype=torch.int64)
    new_of_rank = o2n[order.long()]  # (V,) new id of each old rank, -1 dropped
    fresh = torch.tensor(sorted(t.id for t in vmap.new_tokens), dtype=torch.int64)
    bounds = band_bounds(V, cutoffs)
    rows, ids = [], []
    for k, (lo, hi) in enumerate(bounds):
        kept = (new_of_rank[lo:hi] >= 0).nonzero().squeeze(1)  # (n_kept,) rows of band k that stay
        r, i = kept, new_of_rank[lo:hi][kept]
        if k == len(bounds) - 1:  # new tokens have count 0: the tail of the last band
            r, i = torch.cat([r, torch.full((len(fresh),), -1)]), torch.cat([i, fresh])
        if len(r) == 0 and k == 0:
            lost = order[lo:hi][:5].tolist()
            raise ArtifactError(
                f"the adaptive shortlist (band 0, frequency ranks {lo}..{hi - 1}, old ids {lost}{' ...' if hi - lo > 5 else ''}) "
                "would keep no token; keep at least one of the most frequent tokens (--keep TOKEN)", param="keep")
        rows.append(r)
        ids.append(i)
    sizes = [len(r) for r in rows]
    cuts = [sum(sizes[: k + 1]) for k in range(len(sizes) - 1)]
    return BandPlan(torch.cat(ids), cuts, rows, fresh)


def gather_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``out[j] = t[idx[j]]``, zeros where ``idx[j] < 0``: (R, ...) -> (len(idx), ...), bit-identical copies."""
    out = torch.zeros((len(idx), *t.shape[1:]), dtype=t.dtype)
    ok = (idx >= 0).nonzero().squeeze(1)
    out[ok] = t[idx[ok]]
    return out


def lstsq_rows(P: torch.Tensor | None, e: torch.Tensor) -> torch.Tensor:
    """Rows ``x`` (n, d) with ``P x ≈ e`` (least squares) for effective vectors ``e`` (n, D), ``P`` (D, d).

    Exact when ``e`` lies in the range of ``P`` (e.g. a mean of rows of the same band);
    ``P = None`` is the identity (a band of full width).
    """
    if P is None:
        return e.clone()
    return torch.linalg.lstsq(P.double(), e.double().T).solution.T  # (n, d)


# -- tokembed checkpoints with adaptive designs ---------------------------------------------------------
def _head_gathers(prefix: str, plan: BandPlan, tensors: dict, *, tied: bool) -> dict[str, torch.Tensor]:
    """Row gathers of an AdaptiveSoftmax's own tensors: shortlist rows of H (and bias), tail rows O_k."""
    out: dict[str, torch.Tensor] = {}
    K = len(plan.rows) - 1
    for name in (f"{prefix}head.weight", f"{prefix}head.bias", f"{prefix}head_bias"):
        if name in tensors:
            c0 = tensors[name].shape[0] - K
            out[name] = torch.cat([plan.rows[0], torch.arange(c0, c0 + K)])  # shortlist rows, then the K cluster rows
    if not tied:
        for k in range(K):
            out[f"{prefix}tail.{k}.1.weight"] = plan.rows[k + 1]  # O_k (n_k, d_k)
    return out


def adaptive_checkpoint(model_cfg: dict, tensors: dict, vmap: VocabMap, *, init: str, seed: int):
    """Remap the adaptive tensors of a tokembed checkpoint's ``model.safetensors``.

    Returns ``(tensors, gathers, cutoffs)``: the new tensors (every other tensor untouched),
    ``{name: (R',) old row or -1}`` for the optimizer moments of each remapped parameter, and the
    new cutoffs for ``config.json``. New tokens' rows are their init (``vmap``'s ``init`` on the
    effective (V, D) vectors), solved into the last band's width (:func:`lstsq_rows`).
    """
    emb_ad, head = model_cfg.get("embedding") == "adaptive", model_cfg.get("head", "untied")
    head_ad = head in ("adaptive", "adaptive_tied")
    if vmap.pad_to_multiple_of > 1:
        raise ArtifactError("padding rows have no place in adaptive bands (every row has a frequency rank and a width); "
                            "drop --pad-to-multiple-of for this model", param="pad_to_multiple_of")
    order = tensors["embedding.order"] if emb_ad else tensors["head.order"]
    plan = band_plan(order, _cutoffs_of(model_cfg, order.numel()), vmap)
    gathers: dict[str, torch.Tensor] = {}
    if emb_ad:
        gathers |= {f"embedding.bands.{k}": r for k, r in enumerate(plan.rows)}
    if head == "adaptive":
        gathers |= _head_gathers("head.", plan, tensors, tied=False)
    elif head == "adaptive_tied":
        gathers |= _head_gathers("head.", plan, tensors, tied=True)
    out = dict(tensors)
    for name, idx in gathers.items():
        out[name] = gather_rows(tensors[name], idx)
    rank = torch.empty_like(plan.order)
    rank[plan.order] = torch.arange(len(plan.order))
    for p in ("embedding." if emb_ad else None, "head." if head == "adaptive" else None):
        if p is not None:
            out[p + "order"], out[p + "rank"] = plan.order.clone(), rank.clone()
    if len(plan.new_ids):
        _init_new_rows(model_cfg, tensors, out, plan, vmap, init=init, seed=seed, emb_ad=emb_ad, head=head)
    return out, gathers, plan.cutoffs


def _cutoffs_of(model_cfg: dict, V: int) -> list[int]:
    return default_cutoffs(ModelConfig.from_dict({**model_cfg, "vocab_size": V}))


def _init_new_rows(model_cfg, tensors, out, plan: BandPlan, vmap: VocabMap, *, init, seed, emb_ad, head) -> None:
    """Rows of the new tokens (tail of the last band): the init of their effective vectors, in the band's width."""
    model = build_model(ModelConfig.from_dict(model_cfg), token_counts=tensors.get("token_counts"))
    load_model_tensors(model, tensors)
    last = len(plan.rows) - 1
    at = (plan.rows[last] < 0).nonzero().squeeze(1)  # positions of the new tokens inside the last band
    with torch.no_grad():
        if emb_ad:
            e = vmap.apply_rows(model.embedding.weight_matrix().detach(), init=init, seed=seed)[plan.new_ids]  # (n, D)
            _, P = model.embedding.band_weights(last)
            band = out[f"embedding.bands.{last}"]
            band[at] = lstsq_rows(P, e).to(band.dtype)
        if head == "adaptive":
            w = vmap.apply_rows(model.head.weight_matrix().detach(), init=init, seed=seed + 1)[plan.new_ids]  # (n, D)
            Q = model.head.tail[last - 1][0].weight  # (d, D)
            O = out[f"head.tail.{last - 1}.1.weight"]
            O[at] = lstsq_rows(Q.T, w).to(O.dtype)


# -- compressed codecs (tokembed.compress) ---------------------------------------------------------------
def remap_codec(table, vmap: VocabMap, *, init: str = "compose", seed: int = 0):
    """A compressed (R, D) table of any codec -> the same codec, (R', D), rows following ``vmap``.

    Kept rows keep their stored bytes (codes, scales, offsets, indices, bucket or group); new
    tokens' rows are their init (``vmap``'s ``init`` on the decoded table) encoded with the same
    codec and its stored parameters (bits and group size, codebooks, ``B``, centroids, sparsity k);
    padding rows are zero rows, encoded. Shared tensors are unchanged.
    """
    V, D = table.shape
    R2 = vmap.rows(V)
    idx = torch.full((R2,), -1, dtype=torch.int64)  # (R',) old row of each new row, -1: new token or padding
    idx[: vmap.new_size] = vmap.source
    fill = torch.zeros(R2, D)  # (R', D) float rows to encode where idx < 0
    fresh = torch.tensor([t.id for t in vmap.new_tokens], dtype=torch.int64)
    if len(fresh):
        fill[fresh] = vmap.apply_rows(table.decode(), init=init, seed=seed)[fresh].float()
    bias_fill = None
    if isinstance(table, Trimmed) and table.bias is not None:
        bias_fill = torch.zeros(R2)
        if len(fresh):
            bias_fill[fresh] = vmap.apply_rows(table.bias[table.id_map.long()], init=init, seed=seed)[fresh].float()
    return _remap(table, idx, fill, bias_fill, tokens=vmap.new_size)


def _remap(table, idx: torch.Tensor, fill: torch.Tensor, bias_fill: torch.Tensor | None = None, *, tokens: int = 0):
    """Dispatch on the codec; ``idx`` (R',) old row or -1, ``fill`` (R', D) rows to encode where idx < 0."""
    remaps = {QuantizedTensor: _quantized, DenseTable: _dense, PQCodes: _pq, LowRank: _lowrank, SparseRows: _sparse,
              HashBuckets: _buckets, MixedTables: _mixed}
    if isinstance(table, Trimmed):
        return _trimmed(table, idx, fill, bias_fill, tokens=tokens)
    for cls, fn in remaps.items():
        if isinstance(table, cls):
            return fn(table, idx, fill)
    raise ArtifactError(f"compressed table of type {type(table).__name__} has no vocabulary remap; "
                        "decompress it (tokembed export --format safetensors) and compress the changed model again")


def _fresh(idx: torch.Tensor) -> torch.Tensor:
    return (idx < 0).nonzero().squeeze(1)  # (n,) rows to encode


def _quantized(t, idx, fill):
    new = _fresh(idx)
    c = t.config
    codes, scale = gather_rows(t.codes, idx), gather_rows(t.scale, idx)
    bias = None if t.bias is None else gather_rows(t.bias, idx)
    if len(new):
        enc = quantize(fill[new], bits=c.bits, group_size=c.group_size, symmetric=c.symmetric)  # same bits, groups, grid
        codes[new], scale[new] = enc.codes, enc.scale
        if bias is not None:
            bias[new] = enc.bias
    return QuantizedTensor(codes, scale, bias, (len(idx), t.shape[1]), c)


def _dense(t, idx, fill):
    w = gather_rows(t.weight, idx)
    new = _fresh(idx)
    w[new] = fill[new].to(w.dtype)
    return DenseTable(w)


def _pq(t, idx, fill):
    M, _, ds = t.codebooks.shape
    new = _fresh(idx)
    codes = gather_rows(t.codes, idx)
    if len(new):
        X = fill[new].view(len(new), M, ds).transpose(0, 1).contiguous()  # (M, n, ds)
        codes[new] = assign(X, t.codebooks)[0].t().to(codes.dtype)  # nearest centroid in each subspace
    return PQCodes(codes, t.codebooks, (len(idx), t.shape[1]), t.nbits)


def _lowrank(t, idx, fill):
    new = _fresh(idx)
    A = gather_rows(t.A, idx)
    if len(new):
        A[new] = lstsq_rows(t.B.T, fill[new]).float()  # a B ≈ e
    return LowRank(A, t.B, t.energy)


def _sparse(t, idx, fill):
    new = _fresh(idx)
    values, index = gather_rows(t.values, idx), gather_rows(t.index, idx)
    k = t.values.shape[1]
    if len(new):
        cols = fill[new].abs().topk(k, dim=1, sorted=False).indices.sort(dim=1).values  # the k largest |w|, as magnitude_prune
        values[new], index[new] = fill[new].gather(1, cols), cols.to(index.dtype)
    return SparseRows(values, index, (len(idx), t.shape[1]))


def _buckets(t, idx, fill):
    new = _fresh(idx)
    bucket = gather_rows(t.bucket, idx)
    if len(new):
        bucket[new] = assign(fill[new].unsqueeze(0), t.centroids.unsqueeze(0))[0][0].to(bucket.dtype)  # nearest centroid
    return HashBuckets(t.centroids, bucket)


def _trimmed(t, idx, fill, bias_fill, *, tokens: int):
    """Kept ids keep their stored row, new tokens get a row of their own, dropped rows and padding -> the fallback."""
    fb = t.table.shape[0] - 1
    old_row = torch.where(idx >= 0, t.id_map.long()[idx.clamp(min=0)], -1)  # (R',) stored row or -1
    is_new = (idx < 0) & (torch.arange(len(idx)) < tokens)  # new tokens (rows past ``tokens`` are padding)
    own = ((old_row >= 0) & (old_row != fb)) | is_new
    rows = own.nonzero().squeeze(1)  # (n_own,) new ids with a row, in id order
    table = torch.cat([gather_rows(t.table, old_row[rows]), t.table[fb:]])  # (n_own + 1, D)
    new = (old_row[rows] < 0).nonzero().squeeze(1)
    table[new] = fill[rows[new]]
    id_map = torch.full((len(idx),), len(rows), dtype=torch.int32)
    id_map[rows] = torch.arange(len(rows), dtype=torch.int32)
    bias = None
    if t.bias is not None:
        bias = torch.cat([gather_rows(t.bias, old_row[rows]), t.bias[fb:]])
        bias[new] = bias_fill[rows[new]]
    return Trimmed(table.contiguous(), id_map, bias)


def _mixed(t, idx, fill):
    """Each group's stored rows follow the map on their own; new and padding rows join the cheapest group."""
    present = [j for j, name in enumerate(t.options) if name in t.tables]
    cheapest = min(present, key=lambda j: t.tables[t.options[j]].nbytes / max(1, t.tables[t.options[j]].shape[0]))
    group = torch.where(idx >= 0, t.group_of.long()[idx.clamp(min=0)], cheapest)  # (R',)
    local = torch.where(idx >= 0, t.local[idx.clamp(min=0)], -1)  # (R',) row inside the old group table
    tables = {}
    for j, name in enumerate(t.options):
        if name in t.tables:
            mine = (group == j).nonzero().squeeze(1)  # new ids of group j, in increasing order
            tables[name] = _remap(t.tables[name], local[mine], fill[mine])
    return MixedTables(t.options, tables, group.to(torch.uint8), t.D)
