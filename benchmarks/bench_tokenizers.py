"""Tokenizer benchmark: tokembed vs the raw engines on the same vocabularies, side by side.

Measures, on the built-in corpus (2 MB) and on a >= 20 MB corpus made from it:
1. batch-encode throughput of each tokembed tokenizer vs its raw engine (wrapper overhead; target <= 5%);
2. bytebpe through tokembed's tiktoken path vs the HF engine on the same vocabulary (target >= 2x, identical ids);
3. many short lines on 2 cores: tokembed's block-parallel path vs tiktoken's own
   ``encode_ordinary_batch(lines, num_threads=2)`` (target >= 3x, identical ids);
3b. byte-level BPE vs raw tiktoken on the same ranks (target >= 0.9x, identical ids): a rank file
   saved and loaded as a user would (``load_tokenizer(path, pattern=..., special_tokens=...)``,
   ranks from a bytebpe trained here with up to 50k merges; no cl100k download offline) and the
   trained bytebpe itself: one 1 MB string (``encode`` vs ``encode_ordinary``), a batch of
   documents and many short lines (``encode_batch`` vs ``encode_ordinary_batch(num_threads=2)``);
4. training time vs the raw engine with the same options (target <= 1.1x; morph: the segmenter's share);
5. peak memory (RSS) of training on the 20 MB corpus (each training in its own subprocess).

Run: ``python benchmarks/bench_tokenizers.py`` (full, ~10 min) or ``--quick`` (built-in corpus, < 2 min).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import big_corpus, paired_ratio, write_results  # noqa: E402

from tokembed.corpus import Corpus, default_corpus_path  # noqa: E402
from tokembed.tokenizers import train_tokenizer  # noqa: E402

VOCAB = 8000


def read_lines(path: Path, limit: int | None = None) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.rstrip("\n")
            if s.strip():
                out.append(s)
                if limit and len(out) >= limit:
                    break
    return out


def raw_engine_batch(tok):
    """The anchor for tokembed's encode_batch: the engine's own batch call on the same vocabulary."""
    if tok.kind in ("unigram", "bpe", "char"):
        sp = tok._enc
        return lambda lines: sp.encode(lines, num_threads=2)
    if tok.kind in ("bytebpe", "wordpiece"):
        eng = tok._plain
        return lambda lines: [e.ids for e in eng.encode_batch(lines, add_special_tokens=False)]
    return None


def bench_encode(toks: dict, lines: list[str], repeats: int) -> list[dict]:
    rows = []
    n_bytes = sum(len(s.encode()) + 1 for s in lines)
    for kind, tok in toks.items():
        raw = raw_engine_batch(tok)
        row = {"kind": kind, "lines": len(lines), "MB": round(n_bytes / 1e6, 2)}
        if raw is None:
            t = paired_ratio(lambda: tok.encode_batch(lines), lambda: tok.encode_batch(lines), repeats=1)
            row.update({"tokembed_MB_s": n_bytes / 1e6 / t["tokembed_median_s"], "engine_MB_s": None, "ratio": None})
        else:
            same = tok.encode_batch(lines[:2000]) == [list(x) for x in raw(lines[:2000])]
            r = paired_ratio(lambda: tok.encode_batch(lines), lambda: raw(lines), repeats=repeats)
            row.update(
                {
                    "tokembed_MB_s": n_bytes / 1e6 / r["tokembed_median_s"],
                    "engine_MB_s": n_bytes / 1e6 / r["anchor_median_s"],
                    "ratio": r["ratio_median"],
                    "ratio_min": r["ratio_min"],
                    "ratio_max": r["ratio_max"],
                    "identical_ids": same,
                }
            )
        rows.append(row)
    return rows


def bench_tiktoken(tok, lines: list[str], repeats: int) -> dict:
    """bytebpe: tokembed (tiktoken path, block-parallel) vs HF engine, and vs tiktoken's own batch."""
    import tiktoken  # noqa: F401

    enc = tok.fast_path.encoding
    eng = tok._plain
    ids_te = tok.encode_batch(lines)
    ids_hf = [e.ids for e in eng.encode_batch(lines, add_special_tokens=False)]
    ids_tk = enc.encode_ordinary_batch(lines, num_threads=2)
    # The anchor returns ids too, by the engine's fastest batch path (no offsets).
    vs_hf = paired_ratio(lambda: tok.encode_batch(lines),
                         lambda: [e.ids for e in eng.encode_batch_fast(lines, add_special_tokens=False)], repeats=repeats)
    vs_tk = paired_ratio(lambda: tok.encode_batch(lines), lambda: enc.encode_ordinary_batch(lines, num_threads=2), repeats=repeats)
    single = paired_ratio(lambda: [tok.encode(s) for s in lines[:20000]], lambda: [eng.encode(s, add_special_tokens=False).ids for s in lines[:20000]], repeats=max(1, repeats // 2))
    return {
        "lines": len(lines),
        "identical_ids_hf": ids_te == ids_hf,
        "identical_ids_tiktoken": ids_te == ids_tk,
        "batch_vs_hf_engine": vs_hf,
        "batch_vs_tiktoken_encode_ordinary_batch_2threads": vs_tk,
        "single_encode_vs_hf_engine": single,
    }


def rank_file_tokenizers(corpus: Path, folder: Path, *, vocab: int = 50_000):
    """A bytebpe trained on ``corpus`` (``min_frequency=1``: up to ``vocab`` - 256 merges), its ranks
    written as a tiktoken rank file, that file loaded by tokembed, and raw tiktoken on the same file."""
    import base64
    import os

    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from tokembed.tokenizers import load_tokenizer

    trained = train_tokenizer("bytebpe", Corpus([str(corpus)]), vocab, special_tokens={}, min_frequency=1, progress=False)
    ranks = trained.fast_path.bpe.ranks
    path = folder / "ranks.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda kv: kv[1])))
    specials = {"<|endoftext|>": len(ranks)}
    loaded = load_tokenizer(path, pattern="cl100k", special_tokens=specials)
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the file itself, not tiktoken's cache of an older one
    from tokembed.tokenizers.reference import PATTERNS

    enc = tiktoken.Encoding("ranks", pat_str=PATTERNS["cl100k"], mergeable_ranks=load_tiktoken_bpe(str(path)), special_tokens=specials)
    return trained, loaded, enc


def bench_vs_tiktoken(toks: dict, enc, text: str, docs: list[str], lines: list[str], repeats: int) -> list[dict]:
    """Each tokenizer vs raw tiktoken on the same ranks: one long string, a batch of documents, many short lines."""
    rows = []
    cases = [
        ("one 1 MB string: encode vs encode_ordinary", lambda t: t.encode(text), lambda: enc.encode_ordinary(text)),
        (f"{len(docs)} documents: encode_batch vs encode_ordinary_batch(num_threads=2)",
         lambda t: t.encode_batch(docs), lambda: enc.encode_ordinary_batch(docs, num_threads=2)),
        (f"{len(lines)} short lines: encode_batch vs encode_ordinary_batch(num_threads=2)",
         lambda t: t.encode_batch(lines), lambda: enc.encode_ordinary_batch(lines, num_threads=2)),
    ]  # fmt: skip
    for name, tok in toks.items():
        for label, ours, theirs in cases:
            same = ours(tok) == theirs()
            r = paired_ratio(lambda: ours(tok), theirs, repeats=repeats)
            rows.append({"tokenizer": name, "case": label, "identical_ids": same, **r})
            print(f"{name}: {label}: {r['ratio_median']:.3f} [{r['ratio_min']:.3f}, {r['ratio_max']:.3f}]", flush=True)
    return rows


def run_vs_tiktoken(corpus: Path, repeats: int) -> tuple[list[dict], list[dict]]:
    """Rows 3b (see the module docstring): detailed rows and table rows."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trained, loaded, enc = rank_file_tokenizers(corpus, Path(tmp))
        merges = len(trained.fast_path.bpe.merges)
        text = corpus.read_text(encoding="utf-8")[:1_000_000]
        docs = list(Corpus([str(corpus)]).documents())
        lines = read_lines(corpus, limit=60_000)
        name_l, name_t = f"rank file ({merges} merges), loaded", f"bytebpe trained ({merges} merges)"
        rows = bench_vs_tiktoken({name_l: loaded, name_t: trained}, enc, text, docs, lines, repeats)
    table = [{"corpus": corpus.name, "measure": f"{r['tokenizer']} vs raw tiktoken, {r['case']}",
              "ratio": r["ratio_median"], "min": r["ratio_min"], "max": r["ratio_max"],
              "tokembed MB/s": None, "identical": r["identical_ids"]} for r in rows]  # fmt: skip
    return rows, table


def run_spm_overhead(corpus: Path, repeats: int) -> tuple[list[dict], list[dict]]:
    """sentencepiece kinds: ``encode_batch`` vs the raw ``SentencePieceProcessor.encode(lines, num_threads=2)``.

    Alternating in ABBA order (so neither side always runs second), wall time and CPU time
    (``time.process_time``: all threads, less sensitive to other processes on a shared machine),
    and the wrapper's own Python work timed alone (type checks, the literal-"▁" scan, list copies).
    """
    import statistics

    lines = read_lines(corpus, limit=60_000)
    rows, table = [], []
    for kind in ("unigram", "bpe", "char"):
        tok = train_tokenizer(kind, Corpus([str(corpus)]), None if kind == "char" else VOCAB, progress=False)
        sp = tok._enc
        sides = {"tokembed": lambda: tok.encode_batch(lines), "raw": lambda: sp.encode(lines, num_threads=2)}
        same = sides["tokembed"]() == sides["raw"]()
        wall: dict[str, list[float]] = {k: [] for k in sides}
        cpu: dict[str, list[float]] = {k: [] for k in sides}
        for r in range(2 * repeats):
            for k in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                c0, t0 = time.process_time(), time.perf_counter()
                sides[k]()
                cpu[k].append(time.process_time() - c0)
                wall[k].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        checked = [t for t in list(lines) if isinstance(t, str)]
        any("\u2581" in t for t in checked)
        wrapper_ms = (time.perf_counter() - t0) * 1000
        row = {"kind": kind, "lines": len(lines), "identical_ids": same, "wrapper_python_ms": wrapper_ms,
               "raw_wall_ms": 1000 * statistics.median(wall["raw"]), "raw_cpu_ms": 1000 * statistics.median(cpu["raw"])}  # fmt: skip
        for what, ts in (("wall", wall), ("cpu", cpu)):
            ratios = [a / b for a, b in zip(ts["raw"], ts["tokembed"])]
            row[f"{what}_ratio"] = statistics.median(ratios)
            row[f"{what}_ratio_min"], row[f"{what}_ratio_max"] = min(ratios), max(ratios)
            table.append({"corpus": corpus.name, "measure": f"encode_batch {kind} vs raw SentencePieceProcessor, {what} time (x faster)",
                          "ratio": row[f"{what}_ratio"], "min": min(ratios), "max": max(ratios),
                          "tokembed MB/s": None, "identical": same})  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    return rows, table


TRAIN_SNIPPET = r"""
import io, json, resource, sys, time
sys.path.insert(0, {src!r})
kind, path, vocab, mode = {kind!r}, {path!r}, {vocab!r}, {mode!r}
import tokenizers, sentencepiece  # imports are not timed on either side
if mode == "tokembed":
    import tokembed.tokenizers
def lines():  # the raw side reads the file with a plain loop
    with open(path, encoding="utf-8") as f:
        for l in f:
            l = l.rstrip("\n")
            if l.strip():
                yield l
t0 = time.perf_counter()
extra = {{}}
if mode == "tokembed":
    from tokembed.corpus import Corpus
    from tokembed.tokenizers import train_tokenizer
    tok = train_tokenizer(kind, Corpus([path]), vocab, progress=False)
    extra = {{k: v for k, v in tok.options.items() if "share" in k or k.endswith("_s")}}
elif kind == "bytebpe":
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokembed.tokenizers.reference import PATTERNS
    eng = Tokenizer(models.BPE())
    eng.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PATTERNS["cl100k"]), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    eng.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=["<pad>", "<s>", "</s>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    eng.train_from_iterator(lines(), trainer=tr)
elif kind == "wordpiece":
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    eng = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    eng.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    eng.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tr = trainers.WordPieceTrainer(vocab_size=vocab, min_frequency=2, special_tokens=["<pad>", "<s>", "</s>", "[UNK]"], show_progress=False)
    eng.train_from_iterator(lines(), trainer=tr)
else:  # sentencepiece kinds, the same options as tokembed's defaults (SpmTrainConfig)
    import sentencepiece as spm
    spm.SentencePieceTrainer.train(sentence_iterator=lines(), model_writer=io.BytesIO(), model_type=kind,
        vocab_size=vocab, character_coverage=0.9995, byte_fallback=True, normalization_rule_name="identity",
        add_dummy_prefix=False, remove_extra_whitespaces=False, num_threads=4, minloglevel=2,
        allow_whitespace_only_pieces=True, max_sentencepiece_length=16, max_sentence_length=4192, split_digits=False,
        unk_id=3, bos_id=1, eos_id=2, pad_id=0, unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>")
secs = time.perf_counter() - t0
# VmHWM (not ru_maxrss, which Linux carries over from the parent across fork+exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({{"seconds": secs, "peak_rss_mb": hwm / 1024, **extra}}))
"""


def bench_train(kind: str, path: Path, vocab: int, mode: str) -> dict:
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = TRAIN_SNIPPET.format(src=src, kind=kind, path=str(path), vocab=vocab, mode=mode)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="built-in corpus only, fewer repeats (< 2 min)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--only", choices=["all", "train", "tiktoken", "spm"], default="all",
                    help="'train': only the training comparison, with --train-repeats alternating pairs "
                         "(results in tokenizers_train.{json,md}); 'tiktoken': only byte-level BPE vs raw tiktoken "
                         "on the same ranks (tokenizers_tiktoken.{json,md}); 'spm': only the sentencepiece kinds' "
                         "batch encode vs raw SentencePieceProcessor (tokenizers_spm.{json,md})")
    ap.add_argument("--train-repeats", type=int, default=1, help="alternating tokembed/engine training pairs per kind")
    args = ap.parse_args()
    if args.only == "train":
        return main_train(args)
    repeats = args.repeats or (3 if args.quick else 5)
    if args.only == "spm":
        rows, table = run_spm_overhead(default_corpus_path(), max(repeats, 5))
        notes = "Wrapper's own Python work (type checks, '▁' scan, copies), ms per batch: " + ", ".join(
            f"{r['kind']}: {r['wrapper_python_ms']:.1f} of {r['raw_wall_ms']:.0f} wall / {r['raw_cpu_ms']:.0f} CPU" for r in rows)
        write_results("tokenizers_spm", {"rows": rows}, table, title="sentencepiece kinds: wrapper overhead", notes=notes)
        return print((Path(__file__).parent / "results" / "tokenizers_spm.md").read_text())
    if args.only == "tiktoken":
        rows, table = run_vs_tiktoken(default_corpus_path(), max(repeats, 7))
        write_results("tokenizers_tiktoken", {"rows": rows}, table, title="Byte-level BPE vs raw tiktoken on the same ranks")
        return print((Path(__file__).parent / "results" / "tokenizers_tiktoken.md").read_text())
    builtin = default_corpus_path()
    corpora = {"builtin": builtin} if args.quick else {"builtin": builtin, "big": big_corpus(20_000_000)}
    kinds = ["bytebpe", "wordpiece", "unigram", "bpe", "char", "morph"]

    # Tokenizers trained once on the built-in corpus; encode benchmarks use the same vocabularies.
    toks = {}
    for kind in kinds:
        vs = None if kind == "char" else VOCAB
        toks[kind] = train_tokenizer(kind, Corpus([str(builtin)]), vs, progress=False)
    payload: dict = {"vocab_size": VOCAB, "encode": {}, "tiktoken": {}, "train": {}}
    table = []
    for name, path in corpora.items():
        lines = read_lines(path, limit=60_000 if args.quick else None)
        print(f"[{name}] {len(lines)} lines", flush=True)
        rows = bench_encode(toks, lines, repeats)
        payload["encode"][name] = rows
        tk = bench_tiktoken(toks["bytebpe"], lines, repeats)
        payload["tiktoken"][name] = tk
        for r in rows:
            table.append({"corpus": name, "measure": f"encode_batch {r['kind']} vs engine (x faster)",
                          "ratio": r["ratio"], "min": r.get("ratio_min"), "max": r.get("ratio_max"),
                          "tokembed MB/s": r["tokembed_MB_s"], "identical": r.get("identical_ids")})
        for key, label in [("batch_vs_hf_engine", "bytebpe tiktoken path vs HF engine, batch"),
                           ("batch_vs_tiktoken_encode_ordinary_batch_2threads", "bytebpe short lines vs tiktoken encode_ordinary_batch(num_threads=2)"),
                           ("single_encode_vs_hf_engine", "bytebpe single encode() loop vs HF engine")]:
            v = tk[key]
            table.append({"corpus": name, "measure": label, "ratio": v["ratio_median"], "min": v["ratio_min"],
                          "max": v["ratio_max"], "tokembed MB/s": None,
                          "identical": tk["identical_ids_hf"] and tk["identical_ids_tiktoken"]})
    payload["vs_tiktoken_same_ranks"], rows = run_vs_tiktoken(builtin, max(repeats, 5))
    table += rows
    train_path = corpora.get("big", builtin)
    train_kinds = ["bytebpe", "unigram"] if args.quick else ["bytebpe", "wordpiece", "unigram", "bpe", "morph"]
    for kind in train_kinds:
        te = bench_train(kind, train_path, VOCAB, "tokembed")
        raw = bench_train(kind, train_path, VOCAB, "raw") if kind != "morph" else {}
        payload["train"][kind] = {"tokembed": te, "engine": raw}
        ratio = te.get("seconds", float("nan")) / raw["seconds"] if raw.get("seconds") else None
        table.append({"corpus": train_path.name, "measure": f"train {kind}: time tokembed / engine (x, lower is better)",
                      "ratio": ratio, "min": None, "max": None,
                      "tokembed MB/s": None, "identical": None,
                      })
        print(f"train {kind}: {te} vs {raw}", flush=True)
    notes = ["Peak RSS of training (MB), tokembed / engine: " + ", ".join(
        f"{k}: {v['tokembed'].get('peak_rss_mb', float('nan')):.0f} / {v['engine'].get('peak_rss_mb', float('nan')):.0f}"
        for k, v in payload["train"].items())]
    if "morph" in payload["train"]:
        notes.append(f"morph options (segmenter share of training time): {payload['train']['morph']['tokembed']}")
    write_results("tokenizers", payload, table, title="Tokenizers: tokembed vs raw engines", notes="\n\n".join(notes))
    print((Path(__file__).parent / "results" / "tokenizers.md").read_text())


def main_train(args) -> None:
    """Training time only: alternating tokembed/engine pairs (load changes hit both), median and spread."""
    import statistics

    path = default_corpus_path() if args.quick else big_corpus(20_000_000)
    kinds = ["bytebpe", "unigram"] if args.quick else ["bytebpe", "wordpiece", "unigram", "bpe", "morph"]
    payload, table = {"vocab_size": VOCAB, "corpus": str(path), "train": {}}, []
    for kind in kinds:
        pairs = []
        for _ in range(args.train_repeats):
            te = bench_train(kind, path, VOCAB, "tokembed")
            raw = bench_train(kind, path, VOCAB, "raw") if kind != "morph" else {}
            pairs.append({"tokembed": te, "engine": raw})
            print(kind, te, raw, flush=True)
        payload["train"][kind] = pairs
        ratios = [p["tokembed"]["seconds"] / p["engine"]["seconds"] for p in pairs if p["engine"].get("seconds") and p["tokembed"].get("seconds")]
        te_s = [p["tokembed"].get("seconds", float("nan")) for p in pairs]
        table.append({
            "kind": kind,
            "tokembed s (median)": statistics.median(te_s),
            "time ratio tokembed/engine (median)": statistics.median(ratios) if ratios else None,
            "min": min(ratios) if ratios else None,
            "max": max(ratios) if ratios else None,
            "peak RSS MB tokembed": max(p["tokembed"].get("peak_rss_mb", 0) for p in pairs),
            "peak RSS MB engine": max((p["engine"].get("peak_rss_mb", 0) for p in pairs), default=None),
            "segmenter share": pairs[0]["tokembed"].get("segmenter_share"),
        })
    write_results("tokenizers_train", payload, table, title=f"Tokenizer training: tokembed vs raw engine ({path.name}, V={VOCAB})",
                  notes="Each training runs in its own subprocess (imports not timed); peak RSS is the child's VmHWM. "
                        "morph has no single raw engine: its row gives the Morfessor segmenter's share of training time.")
    print((Path(__file__).parent / "results" / "tokenizers_train.md").read_text())


if __name__ == "__main__":
    main()
