"""Sentencepiece surgery benchmark: the cost of the ``.model`` part of a vocabulary operation on an mT5-sized model.

A Hugging Face folder with a sentencepiece model next to its ``tokenizer.json`` (T5's ``spiece.model``,
Llama's ``tokenizer.model``) costs, on top of the ``tokenizer.json`` operation, (1) reading the model
(tokembed's wire-format reader + sentencepiece), (2) comparing the old pair on probe texts, (3)
rewriting the piece list, (4) comparing the new pair. Measured here on a synthetic 250 000-piece
Unigram model (a trained 600-piece model + random pieces), trimmed to what ~700 lines of Python
source use; also the conversion of the same model to ``tokenizer.json`` (``tok.save``). Each step:
median [min, max] over the repeats, in one process.

Usage: ``PYTHONPATH=src python benchmarks/bench_spm_surgery.py [--quick]`` -> benchmarks/results/spm_surgery[_quick].{json,md}
(``--quick``: 50 000 pieces, 3 repeats.)
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import random
import statistics
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402


def synthetic_model(pieces: int, lines: list[str]) -> bytes:
    import sentencepiece

    from tokembed.tokenizers._spm_proto import NORMAL, parse_model, rebuild_model

    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=out, model_type="unigram", vocab_size=600,
                                             byte_fallback=True, minloglevel=2, normalization_rule_name="identity")  # fmt: skip
    info = parse_model(out.getvalue())
    rng, letters = random.Random(0), "abcdefghijklmnopqrstuvwxyz"
    have, extra = {p for p, _, _ in info.pieces}, []
    while len(extra) < pieces - len(info.pieces):
        w = ("\u2581" if rng.random() < 0.5 else "") + "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
        if w not in have:
            have.add(w)
            extra.append((w, -12.0 - 5 * rng.random(), NORMAL))
    return rebuild_model(out.getvalue(), info.pieces + extra, {})


def run(pieces: int, repeats: int) -> dict:
    from tokenizers import Tokenizer as Engine

    from tokembed.tokenizers import SentencePieceTokenizer
    from tokembed.tokenizers.hf_engine import HFTokenizer
    from tokembed.tokenizers.spm_hf import probe_texts
    from tokembed.vocab.spm_file import remap_model_file, same_ids
    from tokembed.vocab.trim import trim_tokenizer

    lines = [line for m in (json, textwrap) for line in inspect.getsource(m).splitlines() if line.strip()]
    blob = synthetic_model(pieces, lines)
    times: dict[str, list[float]] = {}

    def step(name, fn):
        t = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - t)
        return out

    for _ in range(repeats):
        tok = step("read .model", lambda: SentencePieceTokenizer(blob))
        tok.__dict__.pop("_hf_json", None)
        doc = step("convert to tokenizer.json (checked)", tok._hf_tokenizer_json)
        hf = HFTokenizer(Engine.from_str(json.dumps(doc)), add_special_tokens=False)
        small, vmap, _ = step("trim tokenizer.json", lambda: trim_tokenizer(hf, lines))
        new_doc = json.loads(small.engine.to_str())
        probes = probe_texts(tok.info)
        assert step("compare old pair", lambda: same_ids(blob, doc, probes)) is None
        new_blob, new_doc = step("rewrite .model", lambda: remap_model_file(blob, vmap, new_doc, small))
        assert step("compare new pair", lambda: same_ids(new_blob, new_doc, probes)) is None
    rows = {k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)} for k, v in times.items()}
    model_part = [sum(times[k][r] for k in ("compare old pair", "rewrite .model", "compare new pair")) for r in range(repeats)]
    rows[".model part (compare, rewrite, compare)"] = {"median_s": statistics.median(model_part), "min_s": min(model_part), "max_s": max(model_part)}
    return {"pieces": pieces, "kept": small.vocab_size, "repeats": repeats, "steps": rows, "machine": machine()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    res = run(50_000 if args.quick else 250_000, 3 if args.quick else 5)
    name = "spm_surgery_quick" if args.quick else "spm_surgery"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    md = [f"# Sentencepiece surgery: {res['pieces']:,}-piece Unigram model, trimmed to {res['kept']:,} pieces", "",
          f"`PYTHONPATH=src python benchmarks/bench_spm_surgery.py{' --quick' if args.quick else ''}`, {res['repeats']} repeats, "
          "median [min, max] seconds.", "", "| step | seconds |", "|---|---|"]  # fmt: skip
    md += [f"| {k} | {v['median_s']:.2f} [{v['min_s']:.2f}, {v['max_s']:.2f}] |" for k, v in res["steps"].items()]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
