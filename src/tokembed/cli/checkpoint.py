"""``tokembed checkpoint``: operations on a training checkpoint folder (a sharded one made whole)."""

from __future__ import annotations

import argparse

from ..artifacts import read_json
from ._common import print_json

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checkpoint", help="checkpoint folders: consolidate the shards of an FSDP run into one checkpoint")
    ops = p.add_subparsers(dest="checkpoint_command", metavar="OPERATION", required=True)
    c = ops.add_parser(
        "consolidate",
        help="write a sharded checkpoint (parallel.fsdp runs) as a normal one: full weights and AdamW moments",
        description="Reassemble the shards of every rank (checked against shards.json and manifest.json) into one "
        "model.safetensors and train_state.safetensors. The result is read by eval, export and vocab, and resumes "
        "on any number of processes. 'tokembed eval' and 'export' also read a sharded checkpoint directly.",
    )
    c.add_argument("checkpoint", metavar="CHECKPOINT", help="a sharded checkpoint folder, or the run folder that holds it")
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="the new checkpoint folder (written atomically)")
    c.add_argument("--json", action="store_true", help="the report is always one JSON document on stdout")
    c.set_defaults(func=_consolidate)


def _consolidate(args: argparse.Namespace) -> int:
    from ..training.sharded_checkpoint import consolidate

    out = consolidate(args.checkpoint, args.output)
    manifest = read_json(out / "manifest.json")
    print_json({"checkpoint": str(out), "files": len(manifest["files"]),
                "bytes": sum(f["bytes"] for f in manifest["files"].values())})
    return 0
