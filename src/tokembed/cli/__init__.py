"""The ``tokembed`` command line: one module per subcommand, each with ``add_parser(sub)``.

A :class:`~tokembed.errors.TokembedError` (a user error) prints one line on stderr and
exits with code 2, without a traceback; anything else is a bug and keeps its traceback.
Subcommand modules are imported only when needed so ``tokembed --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import TokembedError
from ._common import error_message

__all__ = ["main", "build_parser", "COMMANDS"]

#: subcommand name -> module under tokembed.cli that defines ``add_parser(subparsers)``.
COMMANDS: dict[str, str] = {
    "tokenizer": "tokenizer",
    "vectors": "vectors",
    "train": "train",
    "eval": "eval",
    "embed": "embed",
    "study": "study",
    "inspect": "inspect",
    "neighbors": "neighbors",
    "compress": "compress",
}

EXIT_USER_ERROR = 2


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="tokembed",
        description="Token embeddings in Transformers: tokenizers, embeddings, training, diagnostics, compression.",
    )
    parser.add_argument("--version", action="version", version=f"tokembed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(run 'tokembed {name} --help')", add_help=False)
            continue
        importlib.import_module(f"{__name__}.{module}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv else EXIT_USER_ERROR
    try:
        rc = args.func(args)
    except TokembedError as e:
        print(f"tokembed {args.command}: error: {error_message(args.command, e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"tokembed {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tokembed ... | head`
        return 0
    return int(rc or 0)
