"""The ``tokembed`` command line: one module per subcommand, each with ``add_parser(sub)``.

A :class:`~tokembed.errors.TokembedError` (a user error) prints one line on stderr and
exits with code 2, without a traceback; anything else is a bug and keeps its traceback.
Subcommand modules are imported only when needed so ``tokembed --help`` stays fast.

Every command takes ``--quiet`` (no progress bars, no warnings: stderr carries only errors) and
``--json`` (the report as JSON on stdout); :func:`build_parser` adds ``--quiet`` to any command
that does not define it, and a library warning is printed as one line ``tokembed CMD: warning: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator, Sequence

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
    "vocab": "vocab",
    "export": "export",
    "checkpoint": "checkpoint",
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
        for leaf in leaf_parsers(sub.choices[name]):
            if "--quiet" not in leaf._option_string_actions:
                leaf.add_argument("--quiet", action="store_true", help="no progress bars and no warnings on stderr")
    return parser


def leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parsers that run something: ``parser`` itself, or those of its sub-subcommands (``tokenizer train``)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for a in subs:
        for p in dict.fromkeys(a.choices.values()):  # aliases map to the same parser
            yield from leaf_parsers(p)


@contextlib.contextmanager
def _tqdm_disabled() -> Iterator[None]:
    """Every tqdm bar created inside is disabled (``disable=True`` as the default of ``tqdm.__init__``)."""
    import functools

    from tqdm import std

    init = std.tqdm.__init__
    std.tqdm.__init__ = functools.partialmethod(init, disable=True)
    try:
        yield
    finally:
        std.tqdm.__init__ = init


@contextlib.contextmanager
def _output_mode(command: str, quiet: bool) -> Iterator[None]:
    """``--quiet``: progress bars (tqdm) and warnings off; otherwise warnings as one line each on stderr."""
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        if quiet:
            stack.enter_context(_tqdm_disabled())
            warnings.simplefilter("ignore")
        else:
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, category, *a, **k: print(
                f"tokembed {command}: warning: {message}", file=sys.stderr)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given (tokembed train --nproc re-runs it under torchrun)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv else EXIT_USER_ERROR
    quiet = bool(getattr(args, "quiet", False)) or "--quiet" in argv  # vectors: --quiet is its --no-progress
    if quiet and hasattr(args, "no_progress"):
        args.no_progress = True
    try:
        with _output_mode(args.command, quiet):
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
