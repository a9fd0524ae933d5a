"""Vocabulary surgery benchmark: trim / transplant of an mT5-sized table, and add vs transformers.

1. **trim** and **transplant** of a synthetic Hugging Face folder whose input table is
   V × D = 250 000 × 1024 float32 (1.0 GB, tied head, as mT5-sized vocabularies): wall time
   and peak RSS of a fresh process, as a multiple of the table's bytes. Targets (issue #9):
   <= 60 s and <= 2.5× the table. The tokenizer is a WordPiece vocabulary of 250k synthetic
   words; trim keeps what a 20k-word corpus uses; transplant moves to a tokenizer where 90 % of
   the words are the same and 10 % are new (composed from the old pieces).
2. **add** of 100 tokens (n <= D: tokembed's one-pass sketch) and of 1,000 tokens (n > D: the covariance
   and its Cholesky factor) with the mean-cov init, tokembed ``VocabMap.apply_rows`` vs ``transformers``
   ``resize_token_embeddings(mean_resizing=True)`` on the same GPT-2-style table (rows only, in memory,
   interleaved A B A B; see :func:`bench_add` for what each side includes).

Usage: ``PYTHONPATH=src python benchmarks/bench_vocab.py [--quick] [--only big|add] [--repeats N]``
-> benchmarks/results/vocab[_quick].{json,md} (``--quick``: V = 50 000, D = 512, 3 repeats; ``--only add``
keeps the trim/transplant results of the last full run).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

import torch  # noqa: E402

CHILD = r"""
import json, sys, time
from tokembed.corpus import Corpus
from tokembed.vocab.surgery import trim, transplant
from tokembed.tokenizers import load_tokenizer
def status(key):  # kB; VmHWM is this process's own peak (ru_maxrss would carry the parent's peak across exec)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":"))
op, src, out, extra = sys.argv[1:5]
base = status("VmRSS")
t0 = time.perf_counter()
if op == "trim":
    texts = open(extra, encoding="utf-8").read().splitlines()
    rep = trim(src, out, texts, verify_model=False)
else:
    rep = transplant(src, out, load_tokenizer(extra))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_rss_kb": status("VmHWM"), "base_rss_kb": base,
                  "map": rep["map"]}))
"""


def _wordpiece(words: list[str], path: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    alphabet = sorted({c for w in words for c in w})
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + alphabet + ["##" + c for c in alphabet] + words))}
    eng = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    eng.normalizer = normalizers.Lowercase()
    eng.pre_tokenizer = pre_tokenizers.Whitespace()
    eng.add_special_tokens(specials)
    path.mkdir(parents=True, exist_ok=True)
    eng.save(str(path / "tokenizer.json"))


def _words(n: int, seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = set()
    while len(out) < n:
        idx = torch.randint(0, 26, (n, 8), generator=g).tolist()
        lens = torch.randint(3, 9, (n,), generator=g).tolist()
        out.update("".join(letters[i] for i in row[:k]) for row, k in zip(idx, lens))
    return sorted(out)[:n]


def _synthetic_folder(root: Path, V: int, D: int) -> tuple[Path, Path, Path, int]:
    from safetensors.torch import save_file

    words = _words(V, 0)
    src = root / "src"
    _wordpiece(words, src)
    from tokembed.tokenizers import load_tokenizer

    tok = load_tokenizer(src / "tokenizer.json")
    rows = tok.vocab_size
    table = torch.randn(rows, D, generator=torch.Generator().manual_seed(0))
    save_file({"embeddings.word_embeddings.weight": table, "encoder.norm.weight": torch.ones(D)}, str(src / "model.safetensors"))
    table_bytes = table.nbytes
    del table  # the children measure their own memory; the parent need not hold 1 GB meanwhile
    (src / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert", "vocab_size": rows,
                                                 "hidden_size": D, "pad_token_id": 0}))
    corpus = root / "corpus.txt"
    g = torch.Generator().manual_seed(1)
    used = [words[i] for i in torch.randperm(len(words), generator=g)[:20000].tolist()]
    corpus.write_text("\n".join(" ".join(used[i : i + 20]) for i in range(0, len(used), 20)) + "\n", encoding="utf-8")
    new_words = words[: int(0.9 * V)] + [w + "q" for w in words[int(0.9 * V):]]
    _wordpiece(new_words, root / "newtok")
    return src, corpus, root / "newtok", table_bytes


def bench_big(V: int, D: int, repeats: int) -> dict:
    res = {}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        src, corpus, newtok, table_bytes = _synthetic_folder(root, V, D)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        for op, extra in (("trim", corpus), ("transplant", newtok / "tokenizer.json")):
            runs = []
            for r in range(repeats):
                out = root / f"{op}{r}"
                p = subprocess.run([sys.executable, "-c", CHILD, op, str(src), str(out), str(extra)], env=env,
                                   capture_output=True, text=True, check=True)
                runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
                subprocess.run(["rm", "-rf", str(out)], check=True)
            secs = [x["seconds"] for x in runs]
            peaks = [x["peak_rss_kb"] * 1024 / table_bytes for x in runs]
            extra = [(x["peak_rss_kb"] - x["base_rss_kb"]) * 1024 / table_bytes for x in runs]
            res[op] = {"seconds_median": statistics.median(secs), "seconds_min": min(secs), "seconds_max": max(secs),
                       "peak_rss_over_table_median": statistics.median(peaks), "peak_rss_over_table_max": max(peaks),
                       "peak_above_imports_over_table_median": statistics.median(extra),
                       "map": runs[0]["map"]}
    return {"V": V, "D": D, "table_bytes": table_bytes, **res}


ADD_TOKEMBED = "tokembed VocabMap.apply_rows(init='mean-cov')"
ADD_HF = "transformers resize_token_embeddings(mean_resizing=True)"


def bench_add(V: int, D: int, repeats: int, n_new: int = 100) -> dict:
    """Rows only, in memory, like for like: the (V + n) x D table with n mean-cov rows, from the (V, D) table.

    tokembed: ``VocabMap.apply_rows`` (the row step of ``tokembed vocab add``: statistics, sampling, the copy into
    the new table). transformers: ``resize_token_embeddings(n, mean_resizing=True)`` on a GPT-2 model of the
    same table (a new nn.Embedding, its init, the copy, the mean/covariance sampling, re-tying the head).
    Neither includes reading or writing model files or changing a tokenizer. Interleaved A B A B, fresh
    inputs each round; the parts of tokembed's time are timed separately in the same rounds.
    """
    import transformers

    from tokembed.vocab.map import NewToken, VocabMap

    def cfg():  # resize_token_embeddings writes the new size into the config: a fresh one per model
        return transformers.GPT2Config(vocab_size=V, n_embd=D, n_layer=1, n_head=8, n_positions=128)

    transformers.logging.set_verbosity_error()  # the mean_resizing notice on every call
    model = transformers.GPT2LMHeadModel(cfg())
    table = model.transformer.wte.weight.detach().clone()
    vmap = VocabMap(old_size=V, new_size=V + n_new, old_to_new=list(range(V)),
                    new_tokens=[NewToken(V + k, f"new{k}") for k in range(n_new)])
    times: dict[str, list[float]] = {ADD_TOKEMBED: [], ADD_HF: []}
    parts: dict[str, list[float]] = {"source ids": [], "statistics + samples (one pass)": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = vmap.apply_rows(table, init="mean-cov")
        times[ADD_TOKEMBED].append(time.perf_counter() - t0)
        assert out.shape == (V + n_new, D) and torch.equal(out[:V], table)
        del out
        m = transformers.GPT2LMHeadModel(cfg())
        assert m.get_input_embeddings().weight.shape[0] == V
        t0 = time.perf_counter()
        m.resize_token_embeddings(V + n_new, mean_resizing=True)
        times[ADD_HF].append(time.perf_counter() - t0)
        del m
        t0 = time.perf_counter()
        src = vmap.source
        parts["source ids"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        VocabMap._init_stats(table, "mean-cov", n_new=int((src < 0).sum()), g=torch.Generator().manual_seed(0))
        parts["statistics + samples (one pass)"].append(time.perf_counter() - t0)
    path = "mean-cov sketch (n <= D)" if 0 < n_new <= D < V else "mean-cov cholesky (n > D)"
    return {"V": V, "D": D, "new_tokens": n_new, "path": path, **_summary(times, ADD_HF, parts)}


def _summary(times: dict[str, list[float]], anchor: str, parts: dict[str, list[float]]) -> dict:
    """Median [min, max] seconds and per-round speed-ups against ``anchor``, and tokembed's parts."""
    out = {}
    for k, ts in times.items():
        ratios = [b / t for b, t in zip(times[anchor], ts)]
        out[k] = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
                  "speedup_vs_transformers_median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return {"rows": out, "tokembed_parts": {k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
                                            for k, v in parts.items()}}


E2E_TOKEMBED = "tokembed vocab add (library surgery.add, folder -> folder)"
E2E_HF = "transformers from_pretrained + add_tokens + resize_token_embeddings(mean_resizing=True) + save_pretrained"


def bench_add_e2e(V: int, D: int, repeats: int, n_new: int = 100) -> dict:
    """End to end, folder -> folder, what ``tokembed vocab add SRC TOKEN... --init mean-cov -o OUT`` runs (the
    library call behind the CLI, without interpreter start-up) vs the same job done with transformers
    (load the model and tokenizer, add the tokens, resize with mean_resizing, save both). A BERT-style folder
    with a synthetic WordPiece vocabulary of V words, D wide, one layer. tokembed's time is split into its
    phases (load, tokenizer, rows + write) in the same rounds.
    """
    import transformers

    from tokembed.vocab import surgery

    transformers.logging.set_verbosity_error()
    phases: dict[str, list[float]] = {"load source": [], "add tokens to the tokenizer": [], "rows + write output": []}
    current: dict[str, float] = {}

    def timed(name, fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                current[name] = current.get(name, 0.0) + time.perf_counter() - t0
        return run

    originals = {"load_source": surgery.load_source, "add_tokens": surgery.add_tokens, "write_output": surgery.write_output}
    names = {"load_source": "load source", "add_tokens": "add tokens to the tokenizer", "write_output": "rows + write output"}
    times: dict[str, list[float]] = {E2E_TOKEMBED: [], E2E_HF: []}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        words = _words(V, 0)
        src = root / "src"
        _wordpiece(words, src)
        from tokembed.tokenizers import load_tokenizer

        rows = load_tokenizer(src / "tokenizer.json").vocab_size
        cfg = transformers.BertConfig(vocab_size=rows, hidden_size=D, num_hidden_layers=1, num_attention_heads=8,
                                      intermediate_size=256, max_position_embeddings=64)
        transformers.BertForMaskedLM(cfg).save_pretrained(src)
        (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                               "unk_token": "[UNK]", "pad_token": "[PAD]"}))
        new = [w + "zq" for w in words[:n_new]]
        for r in range(repeats):
            for k, fn in originals.items():
                setattr(surgery, k, timed(names[k], fn))
            current.clear()
            t0 = time.perf_counter()
            surgery.add(src, root / f"t{r}", new, init="mean-cov")
            times[E2E_TOKEMBED].append(time.perf_counter() - t0)
            for k, fn in originals.items():
                setattr(surgery, k, fn)
            for k in phases:
                phases[k].append(current.get(k, 0.0))
            t0 = time.perf_counter()
            model = transformers.BertForMaskedLM.from_pretrained(src)
            tok = transformers.PreTrainedTokenizerFast.from_pretrained(src)
            tok.add_tokens(new)
            model.resize_token_embeddings(len(tok), mean_resizing=True)
            model.save_pretrained(root / f"h{r}")
            tok.save_pretrained(root / f"h{r}")
            times[E2E_HF].append(time.perf_counter() - t0)
            del model, tok
            subprocess.run(["rm", "-rf", str(root / f"t{r}"), str(root / f"h{r}")], check=True)
    return {"V": rows, "D": D, "new_tokens": n_new, "path": "end to end, BERT-style folder",
            **_summary(times, E2E_HF, phases)}


def _add_lines(a: dict) -> list[str]:
    what = ("end to end, folder -> folder (BERT-style model, synthetic WordPiece vocabulary)"
            if a.get("path", "").startswith("end to end") else f"GPT-2 table (mean-cov, tokembed path: "
            f"{a.get('path', 'cholesky')}), rows only, in memory")
    lines = ["", f"add {a['new_tokens']} tokens to a {a['V']} x {a['D']} {what}:", "",
             "| method | seconds median [min, max] | speed vs transformers median [min, max] |", "|---|---|---|"]
    for k, r in a["rows"].items():
        lines.append(f"| {k} | {r['median_s']:.3f} [{r['min_s']:.3f}, {r['max_s']:.3f}] | "
                     f"{r['speedup_vs_transformers_median']:.2f} [{r['min']:.2f}, {r['max']:.2f}] |")
    if a.get("tokembed_parts"):
        parts = ", ".join(f"{k} {r['median_s']:.3f} s" for k, r in a["tokembed_parts"].items())
        rest = "" if a.get("path", "").startswith("end to end") else "; the rest is the copy into the new table"
        lines.append(f"| (parts of tokembed's time, medians) | {parts}{rest} | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["big", "add"], default=None,
                    help="run one part and keep the other part's last results from the JSON file")
    ap.add_argument("--repeats", type=int, default=None, help="add: rounds (default 5, --quick 3)")
    args = ap.parse_args()
    V, D, reps = (50_000, 512, 3) if args.quick else (250_000, 1024, 3)
    name = "vocab_quick" if args.quick else "vocab"
    json_path = RESULTS / f"{name}.json"
    result = json.loads(json_path.read_text()) if args.only and json_path.is_file() else {}
    result["machine"] = machine()
    if args.only != "add":
        result["big"] = bench_big(V, D, reps)
    if args.only != "big":
        add_reps = args.repeats or (3 if args.quick else 5)
        Va = 32_000 if args.quick else 50_257
        result["add"] = bench_add(Va, 768, add_reps)
        result["add_many"] = bench_add(Va, 768, add_reps, n_new=1000)
        result["add_e2e"] = bench_add_e2e(Va, 768, max(3, add_reps // 2))
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    b = result["big"]
    lines = [f"# Vocabulary surgery ({'quick' if args.quick else 'full'})", "", f"Machine: {result['machine']}", "",
             f"Table V={b['V']} x D={b['D']} float32 = {b['table_bytes'] / 2**30:.2f} GiB (targets: <= 60 s, peak RSS <= 2.5x table)", "",
             "Peak RSS is the whole process (Python, torch, tokenizers included); 'above imports' subtracts the RSS",
             "after the imports, i.e. what the operation itself holds.", "",
             "| operation | seconds median [min, max] | peak RSS / table median (max) | above imports / table | map |",
             "|---|---|---|---|---|"]
    for op in ("trim", "transplant"):
        r = b[op]
        lines.append(f"| {op} | {r['seconds_median']:.1f} [{r['seconds_min']:.1f}, {r['seconds_max']:.1f}] | "
                     f"{r['peak_rss_over_table_median']:.2f} ({r['peak_rss_over_table_max']:.2f}) | "
                     f"{r['peak_above_imports_over_table_median']:.2f} | {r['map']} |")
    if args.only == "add":
        lines.append(f"\n(trim/transplant: kept from the last full run; machine above is the add run's)")
    for key in ("add", "add_many", "add_e2e"):
        if key in result:
            lines += _add_lines(result[key])
    lines += ["", "What each side includes (rows only): " + " ".join(bench_add.__doc__.split("\n\n")[1].split()),
              "", "End to end: " + " ".join(bench_add_e2e.__doc__.split())]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
