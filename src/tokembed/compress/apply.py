"""Apply one compression method to a model's embedding (and head) and measure what it costs.

This is the layer behind ``tokembed compress``: it picks the method's function
(``quantize``, ``pq``, ``lowrank``, ``prune``, ``hashing``, ``planner``), runs it on the
input table and — for untied models, or tied ones with ``untie=True`` — on the head, and
reports bytes before/after, relative reconstruction error ``||E - Ê||_F / ||E||_F``
overall and per frequency band, NN-overlap@10 against the original and, for tokembed
language models, the bits-per-byte change on an evaluation corpus.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..diagnostics.neighbors import topk_cosine
from ..errors import ConfigError
from ..metrics import frequency_bands, nn_overlap
from ..sources import load_embeddings
from ..training.evaluate import evaluate
from .artifact import CompressedTable, embedding_module, head_module, save_compressed
from .codec import DenseTable
from .hashing import hash_buckets
from .lowrank import low_rank
from .planner import plan
from .pq import pq_for_ratio, product_quantize
from .prune import magnitude_prune, token_counts, trim_vocab
from .quantize import quantize

__all__ = ["CompressOptions", "METHODS", "compress_matrix", "table_report", "swap_into_model", "compress_source",
           "apply_to_model"]

METHODS = ("fp16", "bf16", "int8", "int4", "pq", "lowrank", "prune", "trim", "hash", "plan")


@dataclass
class CompressOptions:
    """Options of every method (each method reads its own; the rest are ignored)."""

    method: str = "int8"  # one of METHODS
    group_size: int | None = None  # int8/int4: elements per scale (None = per row)
    symmetric: bool = True  # int8/int4: symmetric grid (else scale + offset)
    M: int | None = None  # pq: subspaces (None = from pq_ratio)
    nbits: int = 8  # pq: bits per code
    pq_ratio: float = 16.0  # pq: target ratio vs fp32 when M is None
    rank: int | None = None  # lowrank: rank r
    energy: float | None = None  # lowrank: retained share of Σσ² (default 0.9 when no rank/target)
    target_bytes: int | None = None  # lowrank: rank from a byte budget
    sparsity: float = 0.5  # prune: share of each row set to zero
    buckets: int | None = None  # hash: number of buckets (default V // 8)
    budget_bytes: int | None = None  # plan: byte budget (default: the bytes of uniform int4)
    bands: int = 8  # plan: frequency bands
    smoothing: float = 1.0  # plan: add-α to the counts, so unseen tokens still weigh a little
    iters: int = 25  # pq / hash: k-means iterations
    seed: int = 0  # pq / hash: k-means seed

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r} is not known; choose one of {', '.join(METHODS)}")


def compress_matrix(W: torch.Tensor, opts: CompressOptions, *, counts=None, keep_ids=None,
                    bias: torch.Tensor | None = None) -> CompressedTable:
    """Compress one (V, D) matrix with ``opts.method``; ``counts`` (V,) for trim/plan."""
    m = opts.method
    V, D = W.shape
    if m in ("fp16", "bf16"):
        return CompressedTable(DenseTable(W.detach().float().to(torch.float16 if m == "fp16" else torch.bfloat16)))
    if m in ("int8", "int4"):
        return CompressedTable(quantize(W, bits=int(m[3:]), group_size=opts.group_size, symmetric=opts.symmetric))
    if m == "pq":
        M = opts.M or pq_for_ratio(D, opts.pq_ratio, nbits=opts.nbits)
        return CompressedTable(product_quantize(W, M=M, nbits=opts.nbits, iters=opts.iters, seed=opts.seed))
    if m == "lowrank":
        energy = opts.energy if (opts.energy or opts.rank or opts.target_bytes) else 0.9
        return CompressedTable(low_rank(W, rank=opts.rank, energy=energy, target_bytes=opts.target_bytes))
    if m == "prune":
        return CompressedTable(magnitude_prune(W, sparsity=opts.sparsity))
    if m == "hash":
        return CompressedTable(hash_buckets(W, buckets=opts.buckets or max(1, V // 8), iters=min(opts.iters, 10),
                                            seed=opts.seed))
    if m == "trim":
        if keep_ids is None:
            if counts is None:
                raise ConfigError("method 'trim' needs token counts: pass counts (from corpus=, text the tokenizer "
                                  "encodes) or a tokembed checkpoint that stores its training counts", param="corpus")
            keep_ids = torch.as_tensor(counts).nonzero().flatten()
        return CompressedTable(trim_vocab(W, keep=keep_ids, bias=bias))
    # plan
    if counts is None:
        raise ConfigError("method 'plan' needs token counts: pass counts (from corpus=) or a checkpoint with training counts",
                      param="corpus")
    # default budget: the bytes of uniform int4 (+ the plan's 1 byte/row id -> option map)
    budget = opts.budget_bytes or (quantize(W[:1], bits=4, group_size=opts.group_size).nbytes + 1) * V
    p = plan(W, counts, budget_bytes=budget, n_bands=opts.bands, seed=opts.seed, int4_group=opts.group_size,
             pq_M=opts.M, pq_nbits=opts.nbits, smoothing=opts.smoothing)
    info = {"budget_bytes": budget, "smoothing": opts.smoothing, "bytes": p.nbytes, "weighted_sq_error": p.weighted_error, "bands": p.bands,
            "uniform": p.uniform}
    return CompressedTable(p.tables, info=info)


def _bands(counts, V: int) -> tuple[np.ndarray, list[dict]]:
    if counts is None:  # no counts: id order as the frequency proxy (BPE/WordPiece ids grow roughly as frequency falls)
        edges = [0] + [min(V, 2**k) for k in range(8, 40) if 2**k < V] + [V]
        band_of = np.zeros(V, dtype=np.int64)
        bands = []
        for b, (a, z) in enumerate(zip(edges[:-1], edges[1:])):
            band_of[a:z] = b
            bands.append({"name": f"ids {a}-{z - 1}", "n_types": z - a})
        return band_of, bands
    return frequency_bands(np.asarray(counts))


def _neighbours(W: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    ids, _ = topk_cosine(W, W[q], k=k, exclude=[[int(i)] for i in q])
    return ids


def table_report(W: torch.Tensor, W_hat: torch.Tensor, *, counts=None, k: int = 10, n_queries: int = 2000,
                 seed: int = 0) -> dict[str, Any]:
    """Relative error ``||W - Ŵ||_F / ||W||_F`` overall and per frequency band, and NN-overlap@k on sampled rows."""
    Wd, Hd = W.detach().double(), W_hat.detach().double()
    row_err = ((Wd - Hd) ** 2).sum(1).numpy()  # (V,)
    row_norm = (Wd**2).sum(1).numpy()
    V = W.shape[0]
    band_of, bands = _bands(counts, V)
    per_band = []
    for b, info in enumerate(bands):
        sel = band_of == b
        den = row_norm[sel].sum()
        per_band.append({**info, "rel_error": float(np.sqrt(row_err[sel].sum() / den)) if den > 0 else 0.0})
    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(V, size=min(n_queries, V), replace=False))
    Wn, Hn = W.detach().float().numpy(), W_hat.detach().float().numpy()
    kk = min(k, V - 1)
    overlap = nn_overlap(_neighbours(Wn, q, kk), _neighbours(Hn, q, kk)) if kk > 0 else float("nan")
    out = {"rel_error": float(np.sqrt(row_err.sum() / max(row_norm.sum(), 1e-300))), "bands": per_band,
           f"nn_overlap@{k}": overlap, "nn_queries": int(len(q))}
    if counts is not None:
        c = np.asarray(counts, dtype=np.float64)
        den = float((c * row_norm).sum())
        out["weighted_rel_error"] = float(np.sqrt((c * row_err).sum() / den)) if den > 0 else 0.0
    return out


def swap_into_model(model, embedding, head) -> Any:
    """Replace a tokembed Transformer's embedding and head in place (the model is then inference-only)."""
    model.embedding = embedding
    model.head = head
    object.__setattr__(model, "_type_dropout", None)
    return model


def options_dict(opts: CompressOptions) -> dict:
    return {k: v for k, v in asdict(opts).items() if v is not None}


def apply_to_model(artifact, model):
    """Serve a loaded :class:`CompressedArtifact` inside a tokembed Transformer (replaces embedding and head)."""
    emb = artifact.embedding()
    return swap_into_model(model, emb, artifact.head(emb))


def _head_bias(model) -> torch.Tensor | None:
    head = model.head
    b = getattr(getattr(head, "proj", head), "bias", None)
    return b.detach().float().clone() if isinstance(b, torch.Tensor) else None


def compress_source(source, opts: CompressOptions, *, out_dir, corpus=None, eval_corpus=None, untie: bool = False,
                    max_eval_tokens: int | None = None, vocab=None, seq_len: int = 128) -> dict[str, Any]:
    """Load ``source`` (checkpoint, HF folder, vector file), compress, report, and write the artifact to ``out_dir``."""
    src = load_embeddings(source, vocab=vocab)
    E = torch.from_numpy(np.ascontiguousarray(src.input)).float()  # (V, D)
    V, D = E.shape
    model = src.model_loader() if src.model_loader is not None else None
    notes: list[str] = list(src.notes)
    emb_scale = float(getattr(model.embedding, "scale", 1.0) or 1.0) if model is not None else 1.0  # √D of the source
    counts, counts_from = None, None
    if corpus is not None:
        if src.tokenizer is None:
            raise ConfigError(f"{source}: corpus= needs the source's tokenizer to count tokens, and none could be loaded; "
                              "pass a model folder with tokenizer.json or a tokembed checkpoint", param="corpus")
        counts, counts_from = token_counts(src.tokenizer, corpus.texts()), "corpus"
    elif model is not None and int(model.token_counts.sum()) > 0:
        counts, counts_from = model.token_counts.clone(), "checkpoint training counts"
    has_head = src.output is not None
    tied = bool(src.tied) and not untie
    bias = _head_bias(model) if model is not None and has_head else None
    if model is not None and has_head and type(model.head).__name__ not in ("UntiedHead", "TiedHead"):
        raise ConfigError(f"{source}: head {type(model.head).__name__} cannot be served compressed; compress models "
                          "with an untied or tied head (adaptive softmax is not supported)")
    inp = compress_matrix(E, opts, counts=counts)
    out = None
    if has_head and not tied:
        W = torch.from_numpy(np.ascontiguousarray(src.output)).float()
        out = compress_matrix(W, opts, counts=counts, bias=bias if opts.method == "trim" else None)
    if opts.method == "trim":
        notes.append("trim: the tokenizer is unchanged (a subword vocabulary cannot lose tokens safely); ids never "
                     f"seen on the corpus map to one fallback row (mean of the dropped rows); kept {len(inp.table.kept)}/{V}")
    bytes_before = V * D * 4 * (2 if has_head and not src.tied else 1)
    bytes_after = inp.nbytes + (out.nbytes if out is not None else 0)
    report: dict[str, Any] = {
        "source": str(source), "kind": src.kind, "method": opts.method, "options": options_dict(opts),
        "shape": [V, D], "tied": tied, "source_tied": bool(src.tied), "counts": counts_from or "none (bands by id)",
        "bytes_before": bytes_before, "bytes_after": bytes_after, "ratio": bytes_before / max(bytes_after, 1),
        "input": table_report(E, inp.decode(), counts=counts, seed=opts.seed),
    }
    if inp.info:
        report["input"]["method_info"] = inp.info
    if out is not None:
        report["output"] = table_report(torch.from_numpy(np.ascontiguousarray(src.output)).float(), out.decode(),
                                        counts=counts, seed=opts.seed)
    if model is not None and eval_corpus is not None:
        docs = list(eval_corpus.documents())
        model.eval()
        seq_len = min(seq_len, int(model.config.max_seq_len))
        before = evaluate(model, src.tokenizer, docs, seq_len=seq_len, max_tokens=max_eval_tokens)
        emb = embedding_module(inp, scale=emb_scale)
        head = head_module(None if tied else out, embedding=emb, bias=None if opts.method == "trim" and not tied else bias)
        swap_into_model(model, emb, head)
        after = evaluate(model, src.tokenizer, docs, seq_len=seq_len, max_tokens=max_eval_tokens)
        report["bits_per_byte"] = {"before": before.bits_per_byte, "after": after.bits_per_byte,
                                   "change": (after.bits_per_byte - before.bits_per_byte) / before.bits_per_byte,
                                   "n_tokens": after.n_tokens}
    report["notes"] = notes
    save_compressed(out_dir, input=inp, output=out, tied=tied, fingerprint=src.fingerprint, tokenizer=src.tokenizer,
                    method=opts.method, options=options_dict(opts), report=report,
                    output_bias=None if (opts.method == "trim" or not has_head) else bias,
                    embedding_scale=emb_scale,
                    source=str(source))
    report["output_dir"] = str(out_dir)
    return report
