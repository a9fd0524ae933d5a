"""``tokembed export``: a checkpoint as a transformers folder, a word-vector file or plain tensors."""

from __future__ import annotations

import argparse

from ._common import print_json

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint: transformers folder, word vectors or safetensors")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="tokembed checkpoint or run folder")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="new folder for the export")
    p.add_argument("--format", choices=("hf", "vectors", "safetensors"), default="hf",
                   help="hf: GPT-2/GPT-NeoX folder transformers runs; vectors: word2vec text; safetensors: plain tensors")
    p.add_argument("--json", action="store_true",
                   help="the report is always one JSON document on stdout; accepted so every command takes it")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..vocab.export import export_checkpoint

    print_json(export_checkpoint(args.checkpoint, args.output, format=args.format))
    return 0
