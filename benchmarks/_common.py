"""Shared helpers for the benchmark scripts: machine info, repeated timing, result files, a big corpus.

Benchmarks run tokembed and the anchor side by side in one process and report ratios;
absolute numbers depend on the machine and its load, ratios much less so.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parent / "data"

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing


def machine() -> dict:
    """CPU count, Python, torch/numpy versions and load at start (benchmarks are only comparable within one run)."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        info["loadavg_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    for mod in ("numpy", "torch", "tokenizers", "sentencepiece", "tiktoken"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            pass
    return info


def timeit(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> dict:
    """Run ``fn`` ``warmup + repeats`` times; return median/min/max seconds and the relative spread."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "max_s": max(times), "spread": (max(times) - min(times)) / med if med else 0.0}


def paired_ratio(fast: Callable[[], object], base: Callable[[], object], *, repeats: int = 5) -> dict:
    """Interleave the two (A B A B ...) so load changes hit both; ratio = base_time / fast_time per pair."""
    fast(), base()
    ratios, tf, tb = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fast()
        t1 = time.perf_counter()
        base()
        t2 = time.perf_counter()
        tf.append(t1 - t0)
        tb.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "tokembed_median_s": statistics.median(tf),
        "anchor_median_s": statistics.median(tb),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def big_corpus(min_bytes: int = 20_000_000) -> Path:
    """A ≥ ``min_bytes`` corpus made from the built-in one: copies whose documents are shuffled with
    different seeds (so it is not one block repeated). Cached under benchmarks/data/."""
    from tokembed.corpus import Corpus, default_corpus_path

    DATA.mkdir(parents=True, exist_ok=True)
    out = DATA / f"big-{min_bytes // 1_000_000}mb.txt"
    if out.exists() and out.stat().st_size >= min_bytes:
        return out
    docs = list(Corpus([str(default_corpus_path())]).documents())
    n = 0
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        seed = 0
        while n < min_bytes:
            order = list(range(len(docs)))
            random.Random(seed).shuffle(order)
            for i in order:
                f.write(docs[i] + "\n")
                n += len(docs[i].encode("utf-8")) + 1
            seed += 1
    os.replace(tmp, out)
    return out


def write_results(name: str, payload: dict, table_rows: Sequence[dict], *, title: str, notes: str = "") -> None:
    """Write ``results/<name>.json`` (everything) and ``results/<name>.md`` (a short table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    lines = [f"# {title}", ""]
    m = payload["machine"]
    lines.append(f"Machine: {m.get('cpus')} CPUs, Python {m.get('python')}, torch {m.get('torch', '-')}, "
                 f"load at start {m.get('loadavg_1m', '?')}. Command: `{' '.join(['python'] + sys.argv)}`.")
    lines.append("")
    if table_rows:
        cols = list(table_rows[0].keys())
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in table_rows:
            lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    if notes:
        lines += ["", notes]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)
