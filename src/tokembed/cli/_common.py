"""Helpers shared by subcommands: JSON output and the corpus arguments."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

__all__ = ["print_json", "add_corpus_args", "corpus_from_args", "fmt_number"]


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def add_corpus_args(p: argparse.ArgumentParser, *, positional: bool = True, flag: str = "--corpus") -> None:
    """CORPUS arguments: files, folders, globs, '-' (stdin), LANG=PATH; none = the built-in corpus."""
    helptext = "text files, folders, globs, '-' for stdin, or LANG=PATH; default: the built-in corpus (Python's own docs)"
    if positional:
        p.add_argument("corpus", nargs="*", metavar="CORPUS", help=helptext)
    else:
        p.add_argument(flag, dest="corpus", nargs="+", metavar="CORPUS", default=None, help=helptext)
    p.add_argument(
        "--errors",
        choices=["strict", "replace"],
        default="strict",
        help="invalid UTF-8/NUL bytes: 'strict' stops with the file and byte offset, 'replace' repairs",
    )


def corpus_from_args(args: argparse.Namespace):
    from ..corpus import Corpus

    return Corpus.from_args(getattr(args, "corpus", None) or [], errors=getattr(args, "errors", "strict"))


def fmt_number(x: float) -> str:
    """A table cell: ``-`` for NaN, 4 decimals below 10, 1 above.

    >>> fmt_number(float("nan")), fmt_number(2.5), fmt_number(123.456)
    ('-', '2.5000', '123.5')
    """
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"
