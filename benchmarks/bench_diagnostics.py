"""Benchmark: `tokembed inspect` on a 128k × 768 matrix, and exact top-10 neighbours vs gensim.

Run from the repository root:

    PYTHONPATH=src python benchmarks/bench_diagnostics.py            # full: 128,000 × 768, 1,000 queries
    PYTHONPATH=src python benchmarks/bench_diagnostics.py --quick    # 32,000 × 768, 200 queries (< 2 min)

The matrix is generated (seeded): Gaussian rows plus structure a real embedding has — a
shared mean direction (anisotropy), a 64-dimensional "topic" subspace, norms that fall with
a Zipf frequency rank, 2,000 "unused" rows near the mean with small norm, 50 planted
near-duplicate pairs and 3 NaN rows. ``inspect`` runs in a child process (``python -m
tokembed inspect ... --no-progress``, no t-SNE/UMAP) so its wall time and peak RSS
(``VmHWM`` of the child's own address space) are its own. Neighbours: tokembed's blocked
exact top-k (``topk_cosine``) and gensim's ``KeyedVectors.most_similar`` (one call per
query, its API) on the same vectors in this process, side by side, repeated; both include
their row normalisation; the neighbour lists are compared id by id.

Writes benchmarks/results/diagnostics.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _punct(i: int) -> str:
    """A unique all-punctuation token for id i (its base-5 digits spelled with !?.,;)."""
    out, n = "", i + 1
    while n:
        out += "!?.,;"[n % 5]
        n //= 5
    return out


def make_matrix(V: int, D: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((V, D), dtype=np.float32) * 0.5
    topics = rng.standard_normal((64, D), dtype=np.float32)
    X += (rng.standard_normal((V, 64), dtype=np.float32) * 0.6) @ topics / np.sqrt(64)
    mean_dir = rng.standard_normal(D).astype(np.float32)
    mean_dir /= np.linalg.norm(mean_dir)
    X += 3.0 * mean_dir
    rank = np.arange(1, V + 1, dtype=np.float32)
    X *= 1.5 - 0.8 * np.log(rank)[:, None] / np.log(V)  # frequent tokens (low ids) get larger norms
    unused = rng.choice(np.arange(V // 2, V), 2000, replace=False)
    X[unused] = 0.3 * mean_dir + 0.01 * rng.standard_normal((unused.size, D), dtype=np.float32)
    a = rng.choice(V, 50, replace=False)
    b = (a + V // 3) % V
    X[b] = X[a] + 0.005 * rng.standard_normal((50, D), dtype=np.float32) * np.linalg.norm(
        X[a], axis=1, keepdims=True
    ) / np.sqrt(D)
    X[rng.choice(V, 3, replace=False)] = np.nan
    tokens = []
    for i in range(V):  # 55% word-initial (some capitalised), 35% continuations, 7% numbers, 3% punctuation
        k = rng.integers(0, 100)
        if k < 55:
            tokens.append(f"Ġw{i}" if k % 2 else f"ĠW{i}")
        elif k < 90:
            tokens.append(f"x{i}")
        elif k < 97:
            tokens.append(f"{i}")
        else:
            tokens.append(_punct(i))
    return X, tokens


# The child runs the CLI, then reports its own peak RSS (VmHWM of its address space). getrusage's
# ru_maxrss is no good here: Linux carries it across fork+exec, so it would include this parent's matrix.
_CHILD = (
    "import sys\n"
    "from tokembed.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
    "print(f'VmHWM_KB={hwm}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def bench_inspect(tmp: Path, X: np.ndarray, tokens: list[str]) -> dict:
    np.save(tmp / "E.npy", X)
    (tmp / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            "inspect",
            str(tmp / "E.npy"),
            "--vocab",
            str(tmp / "vocab.txt"),
            "-o",
            str(tmp / "out"),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"inspect failed:\n{r.stderr}")
    peak_kb = int(next(ln for ln in r.stderr.splitlines() if ln.startswith("VmHWM_KB=")).split("=")[1])
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(peak_kb / 1024, 1),
        "steps_s": summary["timings_s"],
        "matrix_mib": round(X.nbytes / 2**20, 1),
        "headline": summary["headline"],
    }


def bench_neighbours(X: np.ndarray, n_queries: int, repeats: int, k: int = 10, seed: int = 1) -> dict:
    from gensim.models import KeyedVectors

    from tokembed.diagnostics.neighbors import topk_cosine

    rng = np.random.default_rng(seed)
    finite = np.flatnonzero(np.isfinite(X).all(axis=1))
    Xf = np.ascontiguousarray(X[finite])  # gensim cannot rank NaN rows; both get the same finite table
    q = rng.choice(Xf.shape[0], n_queries, replace=False)
    kv = KeyedVectors(Xf.shape[1], count=0, dtype=np.float32)  # count>0 would preallocate extra zero rows
    kv.add_vectors([str(i) for i in range(Xf.shape[0])], Xf)
    from threadpoolctl import threadpool_limits

    from tokembed.diagnostics.inspect import blas_threads

    threads = blas_threads()  # the same BLAS thread count for both sides (1 on a busy machine)
    ours, theirs = [], []
    ids_ours = ids_theirs = sims_ours = sims_theirs = None
    for _ in range(repeats):
        with threadpool_limits(threads):
            t0 = time.perf_counter()
            ids_ours, sims_ours = topk_cosine(Xf, Xf[q], k=k, exclude=[[int(i)] for i in q])
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            kv.fill_norms(force=True)
            res = [kv.most_similar(str(int(i)), topn=k) for i in q]
            theirs.append(time.perf_counter() - t0)
        ids_theirs = np.array([[int(w) for w, _ in r] for r in res])
        sims_theirs = np.array([[s for _, s in r] for r in res])
    same_rows = int((ids_ours == ids_theirs).all(axis=1).sum())
    same_sets = int(sum(set(a) == set(b) for a, b in zip(ids_ours.tolist(), ids_theirs.tolist())))
    ratios = [t / o for o, t in zip(ours, theirs)]
    return {
        "queries": n_queries,
        "k": k,
        "rows": int(Xf.shape[0]),
        "repeats": repeats,
        "tokembed_s": [round(t, 3) for t in ours],
        "gensim_s": [round(t, 3) for t in theirs],
        "speedup_median": round(statistics.median(ratios), 2),
        "speedup_min": round(min(ratios), 2),
        "speedup_max": round(max(ratios), 2),
        "identical_ordered_lists": same_rows,
        "identical_sets": same_sets,
        # rank by rank cosine difference: ~1e-7 means any order difference is a float32 tie
        "max_abs_cosine_diff": float(np.abs(sims_ours - sims_theirs).max()),
        "blas_threads": threads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32k × 768, 200 queries")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    V, D, nq = (32_000, 768, 200) if args.quick else (128_000, 768, 1000)
    import gensim
    import torch

    X, tokens = make_matrix(V, D)
    with tempfile.TemporaryDirectory() as d:
        ins = bench_inspect(Path(d), X, tokens)
    nb = bench_neighbours(X, nq, args.repeats)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "gensim": gensim.__version__,
            "load_avg_1min": os.getloadavg()[0],
        },
        "mode": "quick" if args.quick else "full",
        "matrix": [V, D],
        "inspect": ins,
        "neighbours": nb,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "diagnostics" + ("_quick" if args.quick else "")
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# diagnostics benchmark ({result['mode']}: {V:,} × {D} fp32)",
        "",
        f"machine: {os.cpu_count()} CPUs, numpy {np.__version__}, torch {torch.__version__}, gensim {gensim.__version__}, "
        f"1-min load average at the end {result['machine']['load_avg_1min']:.1f} (the machine is shared)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| `tokembed inspect` wall time (no t-SNE/UMAP) | {ins['wall_s']} s |",
        f"| peak RSS of the inspect process | {ins['peak_rss_mib']} MiB (matrix alone: {ins['matrix_mib']} MiB) |",
        f"| top-{nb['k']} neighbours, {nb['queries']:,} queries: tokembed `topk_cosine` | {', '.join(map(str, nb['tokembed_s']))} s |",
        f"| same with gensim `most_similar` (one call per query) | {', '.join(map(str, nb['gensim_s']))} s |",
        f"| speedup tokembed vs gensim, median (min–max over {nb['repeats']} repeats) | {nb['speedup_median']}× ({nb['speedup_min']}–{nb['speedup_max']}) |",
        f"| identical neighbour lists: ordered / as sets | {nb['identical_ordered_lists']} / {nb['identical_sets']} of {nb['queries']} "
        f"(max rank-by-rank cosine difference {nb['max_abs_cosine_diff']:.1e}: order differences are float ties) |",
        f"| BLAS threads (both sides) | {nb['blas_threads']} |",
        "",
        "inspect steps (s): " + ", ".join(f"{k} {v}" for k, v in ins["steps_s"].items()),
        "",
        "command: `PYTHONPATH=src python benchmarks/bench_diagnostics.py" + (" --quick" if args.quick else "") + "`",
        "",
    ]
    (out / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
