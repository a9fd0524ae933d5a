"""Vocab-parallel loss memory per rank, and MemmapEmbedding lookups against nn.Embedding.

1. **Loss memory**: per-rank peak memory of one loss forward + backward at V = 256k for the
   full-logits loss (UntiedHead + cross_entropy, one process) and the vocab-parallel loss
   (VocabParallelHead.loss) on 1, 2 and 4 gloo ranks launched with torchrun. Method: Linux
   ``VmHWM`` (peak RSS) after resetting it through ``/proc/self/clear_refs`` (write "5"), minus
   ``VmRSS`` before the loss: it sees every page torch's CPU allocator touches (tracemalloc does
   not). Inputs ``h`` (N, D) and the weight shard are allocated before and not counted.
2. **MemmapEmbedding lookup** (eval, no grad) against ``nn.Embedding`` on the same ids at cache
   hit rates of 50/90/99 % of the unique ids of a batch (hot ids stay cached, cold ids are new),
   interleaved A/B in one process; the table file is in the OS page cache (pread cost, not disk).

``python benchmarks/bench_parallel.py --quick`` (N = 1024 tokens: the full-logits baseline at
N = 8192 and V = 256k needs ~17-26 GB, more than this shared machine has) or ``--tokens 8192``
on a machine with the memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from _common import machine, paired_ratio, write_results  # noqa: F401  (adds src/ to sys.path)
from tokembed.embeddings import MemmapEmbedding
from tokembed.heads import UntiedHead
from tokembed.parallel import VocabParallelHead, group_rank

HERE = Path(__file__).resolve().parent
_PER_TIMING = 5  # lookups per timed call: sub-millisecond single calls are mostly scheduler noise on a loaded machine


# ---------------------------------------------------------------- 1. loss memory (worker side)
def _status_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _loss_step(head, h, t) -> None:
    loss = head.loss(h, t)
    loss.backward()
    h.grad = None
    for p in head.parameters():
        p.grad = None


def loss_worker(args) -> None:
    """One rank: build the head and inputs, then measure peak RSS of loss fwd+bwd ``--repeats`` times."""
    torch.set_num_threads(1)
    if args.mode == "vp" and "RANK" in os.environ:
        dist.init_process_group("gloo")
    g = torch.Generator().manual_seed(0)
    V, D, N = args.vocab, args.dim, args.tokens
    head = UntiedHead(D, V, bias=True) if args.mode == "full" else VocabParallelHead(D, V, bias=True)
    h = torch.randn(N, D, generator=g).requires_grad_(True)
    t = torch.randint(0, V, (N,), generator=g)
    _loss_step(head, h, t)  # warm-up (allocator, gloo buffers)
    peaks, times = [], []
    for _ in range(args.repeats):
        base = _status_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        t0 = time.perf_counter()
        _loss_step(head, h, t)
        times.append(time.perf_counter() - t0)
        peaks.append(_status_mb("VmHWM") - base)
    out = {"mode": args.mode, "rank": group_rank(), "peak_mb": peaks, "seconds": times}
    Path(args.out).with_suffix(f".{group_rank()}.json").write_text(json.dumps(out))
    if dist.is_initialized():
        dist.destroy_process_group()


def run_loss(mode: str, world: int, args, tmp: Path) -> list[dict]:
    out = tmp / f"{mode}{world}"
    cmd = [__file__, "--worker", "--mode", mode, "--tokens", str(args.tokens), "--vocab", str(args.vocab), "--dim", str(args.dim), "--repeats", str(args.repeats), "--out", str(out)]
    if mode == "vp":
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}", *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, *cmd], check=True, env=env, timeout=600)
    return [json.loads(out.with_suffix(f".{r}.json").read_text()) for r in range(world)]


def bench_loss(args) -> tuple[list[dict], dict]:
    logits_mb = args.tokens * args.vocab * 4 / 2**20
    rows, raw = [], {}
    with tempfile.TemporaryDirectory() as d:
        runs = [("full", 1)] + [("vp", w) for w in args.worlds]
        for mode, world in runs:
            ranks = run_loss(mode, world, args, Path(d))
            raw[f"{mode}{world}"] = ranks
            per_rank = [statistics.median(r["peak_mb"]) for r in ranks]
            all_peaks = [p for r in ranks for p in r["peak_mb"]]
            rows.append({
                "loss": "full logits (UntiedHead + cross_entropy)" if mode == "full" else f"vocab-parallel, {world} rank(s)",
                "peak MB per rank (median of ranks, median [min,max] of all)": f"{statistics.median(per_rank):.0f} [{min(all_peaks):.0f}, {max(all_peaks):.0f}]",
                "max rank / full": None,
                "target (1/W)": 1.0 / world,
                "seconds (median, rank 0)": statistics.median(ranks[0]["seconds"]),
                "_max_rank": max(per_rank),
            })
    full = rows[0]["_max_rank"]
    for r in rows:
        r["max rank / full"] = r.pop("_max_rank") / full
    return rows, {"logits_mb_fp32": logits_mb, "ranks": raw}


# ---------------------------------------------------------------- 2. MemmapEmbedding lookup
def bench_memmap(args, tmp: Path) -> tuple[list[dict], dict]:
    torch.set_num_threads(1)
    V, D, N, hot_n = args.table_rows, args.dim, args.batch_ids, 2048
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(V, D, generator=g)
    ref = torch.nn.Embedding(V, D, _weight=weight.clone()).eval()
    rows, raw = [], {}
    for rate in (0.5, 0.9, 0.99):
        emb = MemmapEmbedding.create(tmp / f"table{rate}.npy", V, D, weight=weight, cache_rows=4 * hot_n, writable=False).eval()
        perm = torch.randperm(V - hot_n, generator=g) + hot_n  # cold ids, each used once
        hot = torch.arange(hot_n)
        n_cold = round(hot_n * (1 - rate) / rate)  # unique cold ids per batch for this unique-id hit rate
        emb.read_rows(hot)  # warm the cache with the hot set
        batches = []
        for b in range((args.lookup_repeats + 1) * _PER_TIMING):
            cold = perm[b * n_cold : (b + 1) * n_cold]
            ids = torch.cat([hot, cold, hot[torch.randint(0, hot_n, (N - hot_n - n_cold,), generator=g)]])
            batches.append(ids[torch.randperm(N, generator=g)].reshape(8, N // 8))
        it_a, it_b = iter(batches), iter(batches)

        def run(layer, it):
            for _ in range(_PER_TIMING):
                layer(next(it))

        before = dict(emb.cache_info())
        with torch.no_grad():
            res = paired_ratio(lambda: run(emb, it_a), lambda: run(ref, it_b), repeats=args.lookup_repeats)
        info = emb.cache_info()
        hit = (info["hits"] - before["hits"]) / max(1, info["hits"] - before["hits"] + info["misses"] - before["misses"])
        assert torch.equal(emb(batches[0]), ref(batches[0]))  # same rows
        raw[str(rate)] = res | {"measured_hit_rate": hit}
        rows.append({
            "target hit rate (unique ids)": rate,
            "measured": hit,
            "MemmapEmbedding ms/batch": res["tokembed_median_s"] * 1e3 / _PER_TIMING,
            "nn.Embedding ms/batch": res["anchor_median_s"] * 1e3 / _PER_TIMING,
            "slowdown (Memmap / nn.Embedding time), median [min,max]": f"{1 / res['ratio_median']:.3g} [{1 / res['ratio_max']:.3g}, {1 / res['ratio_min']:.3g}]",
        })
        emb.close()
    return rows, raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=1024 tokens, 2 repeats (about 3 minutes here)")
    ap.add_argument("--tokens", type=int, default=None, help="B*T tokens of the loss (default 8192, 1024 with --quick)")
    ap.add_argument("--vocab", type=int, default=262_144)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=None, help="loss repeats per rank (default 3, 2 with --quick)")
    ap.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--table-rows", type=int, default=262_144)
    ap.add_argument("--batch-ids", type=int, default=8192)
    ap.add_argument("--lookup-repeats", type=int, default=15)
    ap.add_argument("--only", choices=["loss", "memmap"], default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["full", "vp"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tokens is None:
        args.tokens = 1024 if args.quick else 8192
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.worker:
        return loss_worker(args)
    payload, notes = {"args": vars(args)}, []
    rows_loss, rows_mm = [], []
    if args.only in (None, "loss"):
        rows_loss, payload["loss"] = bench_loss(args)
    if args.only in (None, "memmap"):
        with tempfile.TemporaryDirectory() as d:
            rows_mm, payload["memmap"] = bench_memmap(args, Path(d))
    name = "parallel" if args.only is None else f"parallel-{args.only}"
    write_results(name, payload | {"rows_loss": rows_loss, "rows_memmap": rows_mm}, rows_loss or rows_mm, title="Vocab-parallel loss memory and MemmapEmbedding lookups", notes=_notes(args, rows_mm if rows_loss else []))
    print((HERE / "results" / f"{name}.md").read_text())


def _notes(args, rows_mm) -> str:
    logits = args.tokens * args.vocab * 4 / 2**20
    lines = [] if args.only == "memmap" else [
        f"Loss: V={args.vocab}, N=B*T={args.tokens}, D={args.dim}, fp32; the full logits are {logits:.0f} MB. "
        "Peak = VmHWM after a /proc/self/clear_refs reset minus VmRSS before the loss (fwd+bwd), per rank; "
        f"{args.repeats} repeats per rank after a warm-up. 'max rank / full' is the largest rank's median peak over the full-logits loss's; target 1/W. "
        "torch threads 1; gloo ranks on one 2-core machine launched with torchrun --standalone.",
    ]
    if rows_mm:
        lines += ["", "## MemmapEmbedding lookup vs nn.Embedding", ""]
        cols = list(rows_mm[0])
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in rows_mm:
            lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
        lines.append("")
        lines.append(f"Table {args.table_rows} x {args.dim} fp32 (.npy, in the page cache), batches of {args.batch_ids} ids (8 x {args.batch_ids // 8}); "
                     f"2048 hot ids stay cached (cache 8192 rows), cold ids are new each batch; hit rate = cache hits / unique ids looked up. "
                     f"{args.lookup_repeats} interleaved A/B repeats of {_PER_TIMING} batches each, ratio per pair.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
