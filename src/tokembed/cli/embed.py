"""``tokembed embed``: per-layer vectors of each token of a text (contextual embeddings)."""

from __future__ import annotations

import argparse

from ._common import print_json

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="per-layer vectors of each token of a text, and how the same token varies with context")
    p.add_argument("source", metavar="SOURCE", help="tokembed checkpoint/run folder or a local Hugging Face model folder")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--layers", default="all", help="'all' or comma-separated layer indices (0 = embedding output, -1 = last)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print tokens, vectors and the summary as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..contextual import contextual_embeddings
    from ..device import resolve_device

    device = str(resolve_device(args.device))
    ce = contextual_embeddings(args.source, args.text, layers=args.layers, device=device)
    data = ce.to_json()
    if args.json:
        print_json(data)
        return 0
    s = data["summary"]
    print(f"{len(ce.tokens)} tokens, {len(ce.layers)} layers of dimension {ce.layers[0].shape[1]}")
    print("tokens: " + " ".join(ce.tokens))
    header = "layer " + "".join(f"{i:>8}" for i in ce.layer_ids)
    print(header)

    def row(name, vals):
        print(f"{name[:14]:14}" + "".join("       -" if v is None else f"{v:8.3f}" for v in vals))

    row("same token", s["same_token_cosine"])
    row("other tokens", s["other_token_cosine"])
    for r in s["repeated"]:
        row(f"{r['token']!s} x{len(r['positions'])}", r["cosine"])
    return 0
