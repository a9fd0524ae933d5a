"""WordPiece training time: tokembed ``train_tokenizer("wordpiece", ...)`` vs the raw HF trainer.

Same options on both sides (bench_tokenizers.TRAIN_SNIPPET, ``wordpiece`` branch); each training
runs in its own subprocess, the two alternate (tokembed, engine, tokembed, ...) so machine load
hits both alike; the ratio is taken per pair. Target: median <= 1.1x. On a loaded machine the
pair spread (+-20%) can exceed tokembed's whole overhead, so the deterministic part of it, the
``##c`` pre-pass (``_continuation_alphabet``), is also timed in-process after each pair and
reported as a share of the engine's training time.

Run: ``python benchmarks/bench_wordpiece_train.py [--repeats 3] [--vocab 8000]`` (~1 min on 2 idle cores);
``--quick`` uses the built-in corpus. Writes benchmarks/results/wordpiece_train{,-quick}.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import big_corpus, write_results  # noqa: E402
from bench_tokenizers import bench_train  # noqa: E402

from tokembed.corpus import Corpus, default_corpus_path  # noqa: E402


def prepass_seconds(path: Path) -> float:
    """Time of the ``##c`` pre-pass alone, with the engine tokembed trains (default options)."""
    import time

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from tokembed.tokenizers.wordpiece import _continuation_alphabet

    eng = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    eng.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    eng.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t0 = time.perf_counter()
    _continuation_alphabet(eng, Corpus([str(path)]))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="built-in corpus (2 MB) instead of the 20 MB one")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=8000)
    args = ap.parse_args()
    path = default_corpus_path() if args.quick else big_corpus(20_000_000)
    pairs = []
    for i in range(args.repeats):
        te = bench_train("wordpiece", path, args.vocab, "tokembed")
        raw = bench_train("wordpiece", path, args.vocab, "raw")
        if "error" in te or "error" in raw:
            raise SystemExit(f"training failed: {te} {raw}")
        pre = prepass_seconds(path)
        pairs.append({"tokembed_s": te["seconds"], "engine_s": raw["seconds"], "ratio": te["seconds"] / raw["seconds"],
                      "prepass_s": pre, "tokembed_rss_mb": te["peak_rss_mb"], "engine_rss_mb": raw["peak_rss_mb"]})
        print(f"run {i + 1}: tokembed {te['seconds']:.2f} s, engine {raw['seconds']:.2f} s, ratio {pairs[-1]['ratio']:.3f}, "
              f"pre-pass {pre:.3f} s", flush=True)
    ratios = [p["ratio"] for p in pairs]
    summary = {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
               "tokembed_s_median": statistics.median(p["tokembed_s"] for p in pairs),
               "engine_s_median": statistics.median(p["engine_s"] for p in pairs),
               "prepass_s_median": statistics.median(p["prepass_s"] for p in pairs)}
    summary["prepass_share_of_engine"] = summary["prepass_s_median"] / summary["engine_s_median"]
    payload = {"corpus": str(path.name), "bytes": path.stat().st_size, "vocab_size": args.vocab, "pairs": pairs, **summary}
    row = {"corpus": path.name, "measure": "train wordpiece: time tokembed / engine (x, lower is better)",
           "ratio": summary["ratio_median"], "min": summary["ratio_min"], "max": summary["ratio_max"],
           "tokembed s": summary["tokembed_s_median"], "engine s": summary["engine_s_median"],
           "pre-pass s": summary["prepass_s_median"]}
    name = "wordpiece_train-quick" if args.quick else "wordpiece_train"
    write_results(name, payload, [row], title="WordPiece training: tokembed vs raw HF trainer",
                  notes=f"{args.repeats} alternating pairs, each training in a fresh subprocess; target <= 1.1x. "
                        f"The ##c pre-pass alone: {summary['prepass_s_median']:.3f} s "
                        f"({100 * summary['prepass_share_of_engine']:.1f}% of the engine's training time).")
    print(f"median ratio {summary['ratio_median']:.3f} (min {summary['ratio_min']:.3f}, max {summary['ratio_max']:.3f}); "
          f"pre-pass {summary['prepass_s_median']:.3f} s = {100 * summary['prepass_share_of_engine']:.1f}% of the engine's time")


if __name__ == "__main__":
    main()
