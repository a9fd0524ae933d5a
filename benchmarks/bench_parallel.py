"""Vocab-parallel loss memory per rank, and MemmapEmbedding lookups against nn.Embedding.

1. **Loss memory**: per-rank peak memory of one loss forward + backward at V = 256k for the
   full-logits loss (UntiedHead + cross_entropy, one process) and the vocab-parallel loss
   (VocabParallelHead.loss) on 1, 2 and 4 gloo ranks launched with torchrun. Method: Linux
   ``VmHWM`` (peak RSS) after resetting it through ``/proc/self/clear_refs`` (write "5"), minus
   ``VmRSS`` before the loss: it sees every page torch's CPU allocator touches (tracemalloc does
   not). Inputs ``h`` (N, D) and the weight shard are allocated before and not counted.
   Every loss runs under ``RLIMIT_AS`` = its address space + ``--mem-cap-gb`` (default 6 GiB), and
   a W-rank run only when the W ranks together fit that cap. Otherwise a rank is measured as one
   process holding one rank's V/W shard (the same local buffers; checked against real ranks at
   the largest N where they fit), or, when even that does not fit, fitted by a line through
   smaller N. The table says which.
2. **MemmapEmbedding lookup** (eval, no grad) against ``nn.Embedding`` on the same ids at cache
   hit rates of 50/90/99 % of the unique ids of a batch (hot ids stay cached, cold ids are new),
   interleaved A/B in one process; the table file is in the OS page cache (pread cost, not disk).

``python benchmarks/bench_parallel.py --quick`` (N = 1024 tokens: everything measured on real
ranks) or ``python benchmarks/bench_parallel.py`` (N = 8192; the full-logits baseline needs
~25 GB there, so it is fitted from N = 256..1024 under a 6 GiB cap; ``--mem-cap-gb 40`` on a
machine with the memory measures everything).
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


def _build_head(args):
    """The head of one rank. ``--shard-of W`` without a process group: a one-process head over the V/W columns of
    one rank's shard (V is a multiple of W·64, so the shard has no padding): the same local logits, softmax and
    gradient buffers as a rank of a W-process group, without the W-1 other processes' memory on this machine."""
    V, D = args.vocab, args.dim
    if args.mode == "full":
        return UntiedHead(D, V, bias=True)
    if args.shard_of > 1:
        assert V % (args.shard_of * 64) == 0, "the emulated shard must equal a real rank's (no padding)"
        return VocabParallelHead(D, V // args.shard_of, bias=True)
    return VocabParallelHead(D, V, bias=True)


def _cap_address_space(cap_mb: float) -> None:
    """RLIMIT_AS = the current address space + ``cap_mb``: a loss that would take more fails with an allocation error
    instead of pressing the shared machine (the inputs and the head are already allocated and not counted)."""
    import resource

    limit = int((_status_mb("VmSize") + cap_mb) * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def loss_worker(args) -> None:
    """One rank: build the head and inputs, then measure peak RSS of loss fwd+bwd ``--repeats`` times."""
    torch.set_num_threads(1)
    if args.mode == "vp" and "RANK" in os.environ:
        dist.init_process_group("gloo")
    g = torch.Generator().manual_seed(0)
    V, N = args.vocab, args.tokens
    head = _build_head(args)
    h = torch.randn(N, args.dim, generator=g).requires_grad_(True)
    t = torch.randint(0, V // max(1, args.shard_of), (N,), generator=g)
    out = {"mode": args.mode, "rank": group_rank(), "shard_of": args.shard_of, "tokens": N, "peak_mb": [], "seconds": []}
    _cap_address_space(args.mem_cap_mb)
    try:
        _loss_step(head, h, t)  # warm-up (allocator, gloo buffers)
        for _ in range(args.repeats):
            base = _status_mb("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            t0 = time.perf_counter()
            _loss_step(head, h, t)
            out["seconds"].append(time.perf_counter() - t0)
            out["peak_mb"].append(_status_mb("VmHWM") - base)
    except (MemoryError, RuntimeError) as e:  # torch reports a refused allocation as RuntimeError
        out["error"] = f"over the {args.mem_cap_mb:.0f} MB cap: {str(e)[:200]}"
    Path(args.out).with_suffix(f".{group_rank()}.json").write_text(json.dumps(out))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_loss(mode: str, world: int, tokens: int, args, tmp: Path, *, real: bool = True) -> list[dict]:
    """Peaks of ``world`` real gloo ranks (``real``), or of one process holding one rank's V/world shard."""
    out = tmp / f"{mode}{world}-{tokens}-{'real' if real else 'shard'}"
    cmd = [__file__, "--worker", "--mode", mode, "--tokens", str(tokens), "--vocab", str(args.vocab), "--dim", str(args.dim),
           "--repeats", str(args.repeats), "--out", str(out), "--mem-cap-gb", str(args.mem_cap_gb)]
    if mode == "vp" and real:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}", *cmd]
    elif mode == "vp":
        cmd += ["--shard-of", str(world)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, *cmd], check=True, env=env, timeout=900)
    return [json.loads(out.with_suffix(f".{r}.json").read_text()) for r in range(world if real else 1)]


def _predicted_mb(mode: str, world: int, tokens: int, vocab: int) -> float:
    """Expected peak of one rank: 3 fp32 (N, V) buffers for the full-logits loss (logits, log-softmax, gradient),
    one fp32 (N, V/W) buffer for the fused vocab-parallel loss (measured at N = 1024: 3072 and 1056/W MB)."""
    return (3 if mode == "full" else 1) * tokens * vocab / world * 4 / 2**20 * 1.05


def _fit(points: list[tuple[int, float]], n: int) -> float:
    """Least-squares line through (tokens, MB) points, evaluated at ``n`` tokens."""
    xs, ys = zip(*points)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return my + slope * (n - mx)


def _measure(mode: str, world: int, tokens: int, args, tmp: Path, raw: dict, *, real: bool) -> float | None:
    """Median peak MB of the largest rank (None: over the cap), kept in ``raw``."""
    ranks = run_loss(mode, world, tokens, args, tmp, real=real)
    raw[f"{mode}-W{world}-N{tokens}-{'real' if real else 'shard'}"] = ranks
    if any("error" in r for r in ranks):
        return None
    return max(statistics.median(r["peak_mb"]) for r in ranks)


def _loss_row(mode: str, world: int, args, tmp: Path, raw: dict) -> dict:
    """Per-rank peak at ``args.tokens``: measured on W real ranks when they all fit the cap together, else measured
    on one process holding one rank's shard when that fits, else fitted on smaller N (N/32 .. N/2) that fit."""
    cap, n = args.mem_cap_mb, args.tokens
    label = "full logits (UntiedHead + cross_entropy), 1 process" if mode == "full" else f"vocab-parallel, {world} rank(s)"
    per_rank = _predicted_mb(mode, world, n, args.vocab)
    if mode == "full" or per_rank * world <= cap:
        if per_rank <= cap:
            got = _measure(mode, world, n, args, tmp, raw, real=True)
            if got is not None:
                return {"loss": label, "how": f"measured, {world} process(es)", "peak MB per rank": round(got)}
    elif per_rank <= cap:
        got = _measure(mode, world, n, args, tmp, raw, real=False)
        if got is not None:
            return {"loss": label, "how": "measured, one process holding one rank's V/W shard", "peak MB per rank": round(got)}
    sizes = [n // d for d in (32, 16, 8, 4, 2) if _predicted_mb(mode, world, n // d, args.vocab) * (world if mode == "vp" else 1) <= cap]
    points = [(m, p) for m in sizes[-3:] if (p := _measure(mode, world, m, args, tmp, raw, real=True)) is not None]
    if len(points) < 2:
        return {"loss": label, "how": "not measured: no two sizes fit the cap", "peak MB per rank": None}
    return {"loss": label, "how": "extrapolated: line through N = " + ", ".join(f"{m} ({p:.0f} MB)" for m, p in points),
            "peak MB per rank": round(_fit(points, n))}


def _check_shard_emulation(args, tmp: Path, raw: dict) -> list[dict]:
    """The one-shard process against W real ranks at the largest N ≤ args.tokens where W real ranks fit the cap."""
    checks = []
    for w in args.worlds:
        if w == 1:
            continue
        n = args.tokens
        while n > 256 and _predicted_mb("vp", w, n, args.vocab) * w > args.mem_cap_mb:
            n //= 2
        real = _measure("vp", w, n, args, tmp, raw, real=True)
        shard = _measure("vp", w, n, args, tmp, raw, real=False)
        checks.append({"W": w, "N": n, "real ranks, max rank MB": real, "one-shard process MB": shard,
                       "ratio": shard / real if real and shard else None})
    return checks


def bench_loss(args) -> tuple[list[dict], dict]:
    logits_mb = args.tokens * args.vocab * 4 / 2**20
    rows, raw = [], {}
    with tempfile.TemporaryDirectory() as d:
        for mode, world in [("full", 1)] + [("vp", w) for w in args.worlds]:
            row = _loss_row(mode, world, args, Path(d), raw)
            rows.append({**row, "target (1/W)": 1.0 / world})
        checks = _check_shard_emulation(args, Path(d), raw)
    full = rows[0]["peak MB per rank"]
    for r in rows:
        p = r["peak MB per rank"]
        r["per rank / full logits"] = p / full if p and full else None
        r["per rank / fp32 logits (N·V·4)"] = p / logits_mb if p else None
    return rows, {"logits_mb_fp32": logits_mb, "shard_emulation_checks": checks, "ranks": raw}


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
    ap.add_argument("--mem-cap-gb", type=float, default=6.0,
                    help="most GiB one loss may add to a process (RLIMIT_AS), and to all ranks of a run together; "
                         "larger runs are measured on one rank's shard or extrapolated (default 6: a shared machine)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["full", "vp"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--shard-of", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.mem_cap_mb = args.mem_cap_gb * 1024
    if args.tokens is None:
        args.tokens = 1024 if args.quick else 8192
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.worker:
        return loss_worker(args)
    payload, notes = {"args": vars(args), "load_1m_at_start": os.getloadavg()[0]}, []
    rows_loss, rows_mm = [], []
    if args.only in (None, "loss"):
        rows_loss, payload["loss"] = bench_loss(args)
    if args.only in (None, "memmap"):
        with tempfile.TemporaryDirectory() as d:
            rows_mm, payload["memmap"] = bench_memmap(args, Path(d))
    name = "parallel" if args.only is None else f"parallel-{args.only}"
    payload["load_1m_at_end"] = os.getloadavg()[0]
    write_results(name, payload | {"rows_loss": rows_loss, "rows_memmap": rows_mm}, rows_loss or rows_mm, title="Vocab-parallel loss memory and MemmapEmbedding lookups", notes=_notes(args, rows_mm if rows_loss else [], payload.get("loss", {}).get("shard_emulation_checks", []),
                                                              (payload["load_1m_at_start"], payload["load_1m_at_end"])))
    print((HERE / "results" / f"{name}.md").read_text())


def _mb(v) -> str:
    return "over the cap" if v is None else f"{v:.0f}"


def _notes(args, rows_mm, checks, load: tuple[float, float]) -> str:
    logits = args.tokens * args.vocab * 4 / 2**20
    lines = [f"Load (1 min) {load[0]:.1f} when the benchmark started, {load[1]:.1f} when it ended ('load at start' above is "
             "read when the results are written).", ""]
    lines += [] if args.only == "memmap" else [
        f"Loss: V={args.vocab}, N=B*T={args.tokens}, D={args.dim}, fp32; the full logits are {logits:.0f} MB. "
        "Peak = VmHWM after a /proc/self/clear_refs reset minus VmRSS before the loss (fwd+bwd), per rank; "
        f"{args.repeats} repeats per rank after a warm-up; the largest rank's median. Target 1/W of the full-logits loss. "
        f"Every loss ran under RLIMIT_AS = its address space + {args.mem_cap_gb:g} GiB, and a W-rank run only when its W ranks "
        "together fit that cap (a shared machine): a larger rank was measured as one process holding one rank's V/W "
        "shard (the same local buffers; see the check below), a larger loss was fitted by a line through smaller N. "
        "torch threads 1; real gloo ranks on one machine launched with torchrun --standalone.",
    ]
    if checks:
        lines += ["", "One-shard process against real gloo ranks (the largest rank's median peak, MB):", ""]
        lines += [f"- W={c['W']}, N={c['N']}: real ranks {_mb(c['real ranks, max rank MB'])}, one-shard process "
                  f"{_mb(c['one-shard process MB'])}" + (f" (ratio {c['ratio']:.3f})" if c["ratio"] else "") for c in checks]
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
