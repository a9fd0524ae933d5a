"""``tokembed vectors``: inspect, convert and check the coverage of pretrained word-vector files.

FILE is a word2vec (text or binary), GloVe or fastText ``.vec`` file (``.gz`` too); the
format is detected unless ``--format`` is given. The work is done by
:mod:`tokembed.embeddings.pretrained`; this module only parses arguments and prints JSON.
"""

from __future__ import annotations

import argparse
import sys

from ._common import print_json

__all__ = ["add_parser"]

_FORMATS = ["word2vec", "word2vec-binary", "glove", "fasttext"]


def add_parser(sub) -> None:
    p = sub.add_parser("vectors", help="inspect, convert and check coverage of word2vec/GloVe/fastText files")
    vsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("file", metavar="FILE", help="the vector file")
        q.add_argument("--format", choices=_FORMATS, default=None, help="force the format (default: detect)")
        q.add_argument("--limit", type=int, default=None, help="read only the first N vectors")
        q.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar")
        q.add_argument(
            "--json", action="store_true", help="print the result as JSON (the default and only format; for scripts)"
        )
        q.add_argument(
            "--encoding-errors", choices=["strict", "replace"], default="strict",
            help="words that are not valid UTF-8: 'strict' stops with the line, 'replace' keeps them with U+FFFD",
        )

    q = vsub.add_parser("info", help="format, count, dimension, duplicates and norms of a vector file")
    common(q)
    q.set_defaults(func=_info)

    q = vsub.add_parser("coverage", help="how many tokens of a tokenizer's vocab the file covers (exact/fallback)")
    common(q)
    q.add_argument(
        "--tokenizer", required=True, metavar="PATH", help="tokenizer folder or file (see tokembed tokenizer)"
    )
    q.set_defaults(func=_coverage)

    q = vsub.add_parser("convert", help="rewrite a vector file in another format")
    common(q)
    q.add_argument("output", metavar="OUTPUT", help="the file to write (atomically)")
    q.add_argument("--to", required=True, choices=["word2vec", "word2vec-binary", "glove"], help="output format")
    q.set_defaults(func=_convert)


def _read(args):
    from ..embeddings.pretrained import read_vectors

    # A bar only on a terminal: piped or captured stderr would get the bar glued to the error line.
    progress = not args.no_progress and sys.stderr.isatty()
    return read_vectors(args.file, limit=args.limit, progress=progress, format=args.format, encoding_errors=args.encoding_errors)


def _info(args) -> int:
    import numpy as np

    v = _read(args)
    norms = np.linalg.norm(v.matrix, axis=1) if len(v.tokens) else np.zeros(1)
    print_json(
        {
            "file": v.path,
            "format": v.format,
            "vectors": len(v.tokens),
            "dim": int(v.matrix.shape[1]),
            "duplicates_dropped": v.duplicates,
            "norm_mean": float(norms.mean()),
            "norm_min": float(norms.min()),
            "norm_max": float(norms.max()),
            "first_tokens": v.tokens[:10],
        }
    )
    return 0


def _coverage(args) -> int:
    import numpy as np

    from ..embeddings.pretrained import init_from_pretrained
    from ..tokenizers import load_tokenizer

    vocab = load_tokenizer(args.tokenizer).vocab
    v = _read(args)
    scratch = np.zeros((len(vocab), v.matrix.shape[1]), dtype=np.float32)  # rows are written, then dropped
    report = init_from_pretrained(scratch, vocab, v, fill="keep")
    print_json({"file": v.path, "tokenizer": args.tokenizer, **report.to_dict()})
    return 0


def _convert(args) -> int:
    from ..embeddings.pretrained import write_vectors

    v = _read(args)
    out = write_vectors(args.output, v.tokens, v.matrix, format=args.to)
    print_json(
        {"input": v.path, "input_format": v.format, "output": str(out), "format": args.to, "vectors": len(v.tokens)}
    )
    return 0
