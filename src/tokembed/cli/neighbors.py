"""``tokembed neighbors``: exact cosine nearest neighbours of tokens in an embedding source.

Output convention shared by the reporting commands: the result goes to stdout (a table, or with
``--json`` one JSON document); progress bars go to stderr, only on a terminal, and ``--quiet``
turns them off.
"""

from __future__ import annotations

import argparse
import sys

from ._common import print_json
from .inspect import add_source_args, source_from_args
from ..diagnostics.neighbors import neighbors_of

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("neighbors", help="nearest neighbours (cosine) of tokens in an embedding")
    add_source_args(p)
    p.add_argument(
        "tokens", nargs="+", metavar="TOKEN", help="token strings as the vocabulary spells them (e.g. '##ing', 'Ġthe')"
    )
    p.add_argument("-k", type=int, default=10, help="neighbours per token (default 10)")
    p.add_argument("--matrix", choices=["input", "output"], default="input", help="input embedding or LM head rows")
    p.add_argument(
        "--method",
        choices=["exact", "faiss", "auto"],
        default="exact",
        help="exact blocked matmul (default), faiss HNSW (approximate, needs faiss-cpu), or auto",
    )
    p.add_argument("--json", action="store_true", help="print {token: [{rank, id, token, cosine}, ...]} as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar while reading large vector files")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    src = source_from_args(args, progress=not args.quiet and sys.stderr.isatty())
    res = neighbors_of(src, args.tokens, k=args.k, matrix=args.matrix, method=args.method)
    if args.json:
        print_json({t: [asdict(n) for n in ns] for t, ns in res.items()})
        return 0
    for t, ns in res.items():
        print(f"{t}:")
        for n in ns:
            print(f"  {n.rank:3d}  {n.cosine:7.4f}  {n.token}")
    return 0
