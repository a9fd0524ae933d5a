"""``tokembed inspect``: diagnose the token embedding of a model, checkpoint or vector file."""

from __future__ import annotations

import argparse

from ._common import add_corpus_args, corpus_from_args, print_json
from ..diagnostics.inspect import InspectConfig, inspect
from ..sources import load_embeddings

__all__ = ["add_parser", "add_source_args", "source_from_args"]


def add_source_args(p: argparse.ArgumentParser) -> None:
    """SOURCE plus --vocab/--tensor/--limit, shared with ``tokembed neighbors``."""
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="Hugging Face model folder, tokembed checkpoint, .npy/.safetensors matrix (with --vocab) or word-vector file",
    )
    p.add_argument("--vocab", default=None, help="for a bare matrix: vocab.txt, tokenizer.json or a tokenizer folder")
    p.add_argument("--tensor", default=None, help="for a .safetensors file with several tensors: the one to read")
    p.add_argument("--limit", type=int, default=None, help="for vector files: read only the first N vectors")


def source_from_args(args: argparse.Namespace, *, progress: bool = True):
    return load_embeddings(args.source, vocab=args.vocab, tensor=args.tensor, limit=args.limit, progress=progress)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="diagnose an embedding: geometry, frequency, under-trained tokens, probes, projections"
    )
    add_source_args(p)
    p.add_argument(
        "-o", "--output", required=True, help="output folder (report.html, summary.json, plots/, projector/)"
    )
    add_corpus_args(p, positional=False, default="none: no token counts, so the frequency sections are left out "
                    "(checkpoints: the contextual section still reads the built-in corpus)")
    p.add_argument("--labels", default=None, help="CSV of 'token,label' lines for a user probe (e.g. part of speech)")
    p.add_argument("--tsne", action="store_true", help="add a t-SNE plot of a sample (scikit-learn; ~10 s)")
    p.add_argument("--umap", action="store_true", help="add a UMAP plot of a sample (needs umap-learn)")
    p.add_argument(
        "--label-tokens", nargs="+", default=[], metavar="TOKEN", help="tokens to label in the scatter plots"
    )
    p.add_argument("-k", type=int, default=10, help="neighbours per token (default 10)")
    p.add_argument(
        "--projector-rows", type=int, default=5000, help="rows exported for the Embedding Projector (0: none)"
    )
    p.add_argument(
        "--max-corpus-bytes", type=int, default=50_000_000, help="count tokens on at most this many corpus bytes"
    )
    p.add_argument(
        "--verify", action="store_true", help="checkpoints: run the causal LM repeat test on under-trained candidates"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print summary.json instead of the headline")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    progress = not args.no_progress and not args.json
    src = source_from_args(args, progress=progress)
    corpus = corpus_from_args(args) if args.corpus else None
    cfg = InspectConfig(
        corpus=corpus,
        labels=args.labels,
        tsne=args.tsne,
        umap=args.umap,
        k=args.k,
        projector_rows=args.projector_rows,
        max_corpus_bytes=args.max_corpus_bytes,
        label_tokens=args.label_tokens,
        verify=args.verify,
        seed=args.seed,
        progress=progress,
    )
    summary = inspect(src, args.output, cfg)
    if args.json:
        print_json(summary)
    else:
        for line in summary["headline"]:
            print(line)
        print(f"report: {args.output}/report.html")
    return 0
