"""Read speed of tokembed.embeddings.read_vectors against gensim's KeyedVectors.load_word2vec_format.

Both read the same generated files (word2vec text, word2vec binary) in one process, interleaved
(A B A B ...); the ratio is gensim time / tokembed time (> 1: tokembed is faster). Values are
checked to be identical before timing.

    python benchmarks/bench_pretrained.py            # 100k words x 300 dims (~250 MB text)
    python benchmarks/bench_pretrained.py --quick    # 20k words x 100 dims (~20 MB text)
"""

from __future__ import annotations

import argparse
import struct
import tempfile
from pathlib import Path

import numpy as np
from _common import paired_ratio, peak_rss_mb, write_results

from tokembed.embeddings import read_vectors


def make_files(folder: Path, n: int, dim: int, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}_{'x' * (i % 7)}" for i in range(n)]
    mat = rng.standard_normal((n, dim)).astype(np.float32).round(5)
    text = folder / "vectors.txt"
    with open(text, "w", encoding="utf-8") as f:
        f.write(f"{n} {dim}\n")
        for w, row in zip(words, mat):
            f.write(w + " " + " ".join(f"{x:.5f}" for x in row) + "\n")
    binary = folder / "vectors.bin"
    with open(binary, "wb") as f:
        f.write(f"{n} {dim}\n".encode())
        for w, row in zip(words, mat):
            f.write(w.encode() + b" " + struct.pack(f"<{dim}f", *row.tolist()) + b"\n")
    return {"word2vec-text": text, "word2vec-binary": binary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small files, 3 repeats (under ~2 minutes)")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    from gensim.models import KeyedVectors

    n, dim = (20_000, 100) if args.quick else (100_000, 300)
    repeats = args.repeats or (3 if args.quick else 5)
    rows, details = [], {}
    with tempfile.TemporaryDirectory() as d:
        files = make_files(Path(d), n, dim)
        for kind, path in files.items():
            binary = kind.endswith("binary")
            tokens, mat = read_vectors(path, progress=False)
            kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
            assert tokens == list(kv.index_to_key) and np.array_equal(mat, kv.vectors), "readers disagree"
            r = paired_ratio(
                lambda: read_vectors(path, progress=False),
                lambda: KeyedVectors.load_word2vec_format(str(path), binary=binary),
                repeats=repeats,
            )
            details[kind] = {**r, "bytes": path.stat().st_size}
            rows.append(
                {
                    "format": kind,
                    "file MB": path.stat().st_size / 1e6,
                    "tokembed s": r["tokembed_median_s"],
                    "gensim s": r["anchor_median_s"],
                    "speedup (gensim/tokembed), median": r["ratio_median"],
                    "min..max": f"{r['ratio_min']:.2f}..{r['ratio_max']:.2f}",
                }
            )
            print(rows[-1], flush=True)
    write_results(
        "pretrained" + ("-quick" if args.quick else ""),
        {"n": n, "dim": dim, "repeats": repeats, "results": details, "peak_rss_mb": peak_rss_mb()},
        rows,
        title=f"Reading word vectors: tokembed.read_vectors vs gensim KeyedVectors.load_word2vec_format ({n} x {dim})",
        notes="Same files, same process, interleaved runs; identical tokens and float32 values checked first.",
    )


if __name__ == "__main__":
    main()
