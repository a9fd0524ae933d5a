"""``tokembed compress``: compress a model's embedding (and head), write the artifact and a quality report."""

from __future__ import annotations

import argparse

from ..corpus import Corpus
from ._common import print_json

__all__ = ["add_parser"]

_METHODS = ("fp16", "bf16", "int8", "int4", "pq", "lowrank", "prune", "trim", "hash", "plan")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress an embedding table / LM head and report the quality cost")
    p.add_argument("source", metavar="SOURCE", help="tokembed checkpoint, Hugging Face model folder or vector file")
    p.add_argument("--method", choices=_METHODS, required=True, help="compression method")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the compressed artifact")
    p.add_argument("--vocab", default=None, help="vocabulary for a bare .npy/.safetensors matrix")
    p.add_argument("--group-size", type=int, default=None, help="int8/int4: elements per scale (default: per row)")
    p.add_argument("--asymmetric", action="store_true", help="int8/int4: scale + offset instead of a symmetric grid")
    p.add_argument("--M", dest="M", type=int, default=None, help="pq: subspaces (default: from --pq-ratio)")
    p.add_argument("--nbits", type=int, default=8, help="pq: bits per code (default 8)")
    p.add_argument("--pq-ratio", type=float, default=16.0, help="pq: target ratio vs fp32 when --M is not given")
    p.add_argument("--rank", type=int, default=None, help="lowrank: rank r")
    p.add_argument("--energy", type=float, default=None, help="lowrank: retained share of Σσ² (default 0.9)")
    p.add_argument("--target-bytes", type=int, default=None, help="lowrank: largest rank within these bytes")
    p.add_argument("--sparsity", type=float, default=0.5, help="prune: share of each row set to zero")
    p.add_argument("--buckets", type=int, default=None, help="hash: number of buckets (default V/8)")
    p.add_argument("--budget-bytes", type=int, default=None, help="plan: byte budget (default: uniform int4's bytes)")
    p.add_argument("--bands", type=int, default=8, help="plan: frequency bands")
    p.add_argument("--smoothing", type=float, default=1.0, help="plan: add-α to the counts (0 = unseen tokens weigh nothing)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed (pq, hash, plan)")
    p.add_argument("--untie", action="store_true", help="compress a tied model's head separately (default: stays tied)")
    p.add_argument("--corpus", nargs="+", default=None, metavar="CORPUS",
                   help="text to count tokens on (frequency bands; needed by trim and plan)")
    p.add_argument("--eval-corpus", nargs="+", default=None, metavar="CORPUS",
                   help="tokembed checkpoints: report the bits-per-byte change on this text")
    p.add_argument("--max-eval-tokens", type=int, default=None, help="evaluate at most this many tokens")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..compress.apply import CompressOptions, compress_source

    opts = CompressOptions(
        method=args.method, group_size=args.group_size, symmetric=not args.asymmetric, M=args.M, nbits=args.nbits,
        pq_ratio=args.pq_ratio, rank=args.rank, energy=args.energy, target_bytes=args.target_bytes,
        sparsity=args.sparsity, buckets=args.buckets, budget_bytes=args.budget_bytes, bands=args.bands,
        smoothing=args.smoothing, seed=args.seed,
    )
    corpus = Corpus(args.corpus) if args.corpus else None
    eval_corpus = Corpus(args.eval_corpus) if args.eval_corpus else None
    rep = compress_source(args.source, opts, out_dir=args.output, corpus=corpus, eval_corpus=eval_corpus,
                          untie=args.untie, max_eval_tokens=args.max_eval_tokens, vocab=args.vocab)
    if args.json:
        print_json(rep)
        return 0
    print(f"{rep['method']}: {rep['shape'][0]}×{rep['shape'][1]}  {rep['bytes_before']:,} -> {rep['bytes_after']:,} bytes "
          f"({rep['ratio']:.2f}×)  tied={rep['tied']}")
    for part in ("input", "output"):
        if part in rep:
            r = rep[part]
            print(f"  {part}: rel. error {r['rel_error']:.4f}  NN-overlap@10 {r['nn_overlap@10']:.3f}")
            for b in r["bands"]:
                print(f"    band {b['name']:>14}  ({b['n_types']} tokens)  rel. error {b['rel_error']:.4f}")
            plan = r.get("method_info", {})
            if "uniform" in plan:
                print(f"    plan: {plan['bytes']:,} bytes (budget {plan['budget_bytes']:,}), frequency-weighted "
                      f"squared error {plan['weighted_sq_error']:.3g}; per band (most frequent first): "
                      + ", ".join(f"{b['rows']}×{b['option']}" for b in plan["bands"]))
                for o, u in plan["uniform"].items():
                    print(f"    uniform {o}: {u['bytes']:,} bytes, frequency-weighted squared error {u['weighted_error']:.3g}")
    if "bits_per_byte" in rep:
        b = rep["bits_per_byte"]
        print(f"  bits/byte {b['before']:.4f} -> {b['after']:.4f} ({100 * b['change']:+.2f}%)")
    for n in rep.get("notes", []):
        print(f"  note: {n}")
    print(f"wrote {rep['output_dir']}")
    return 0
