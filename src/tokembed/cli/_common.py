"""Helpers shared by subcommands: JSON output, the corpus arguments, and the one map from library
parameters to command-line flags (library errors name the parameter; :func:`error_message` says
which flag sets it)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..corpus import Corpus

__all__ = ["print_json", "add_corpus_args", "corpus_from_args", "FLAGS", "error_message", "fmt_number"]

#: subcommand -> library parameter -> how the user sets it on that command. The only place the CLI
#: renames a parameter: library errors name the parameter (``vocab_size``) and set ``error.param``.
FLAGS: dict[str, dict[str, str]] = {
    "tokenizer": {
        "vocab_size": "--vocab-size",
        "analyzer": "--analyzer",
        "reference": "--reference",
        "max_lines": "--max-lines",
        "alpha": "--alpha",
        "kind": "--kind",
        "pattern": "--pattern",
        "special_tokens": "--option special_tokens=JSON",
    },
    "eval": {"seq_len": "--seq-len", "batch_size": "--batch-size", "max_tokens": "--max-tokens"},
    "embed": {"layers": "--layers"},
    "inspect": {"vocab": "--vocab", "tensor": "--tensor", "limit": "--limit"},
    "neighbors": {"vocab": "--vocab", "tensor": "--tensor", "matrix": "--matrix", "limit": "--limit"},
    "vectors": {"format": "--format", "limit": "--limit", "encoding_errors": "--encoding-errors"},
    "vocab": {"keep": "--keep", "min_count": "--min-count", "special": "--special"},
    "export": {"format": "--format"},
    "compress": {"vocab": "--vocab", "corpus": "--corpus"},
    "*": {"errors": "--errors", "resume": "--resume", "nproc": "--nproc"},  # flags with one meaning wherever they exist
    "train": {
        "vocab_size": "config key or override vocab_size=N",
        "tokenizer": "--tokenizer, or config key or override tokenizer=KIND",
    },
}


def error_message(command: str | None, error: Exception) -> str:
    """The one-line message of a user error, with the flag that sets the parameter it names.

    >>> from tokembed.errors import VocabSizeError
    >>> error_message("tokenizer", VocabSizeError("vocab size 10 is too small; pass vocab_size >= 259", param="vocab_size"))
    'vocab size 10 is too small; pass vocab_size >= 259 (vocab_size: --vocab-size)'
    >>> error_message("eval", VocabSizeError("too small", param="vocab_size"))
    'too small'
    """
    param = getattr(error, "param", None)
    how = (FLAGS.get(command or "", {}).get(param) or FLAGS["*"].get(param)) if param else None
    return f"{error} ({param}: {how})" if how else str(error)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def add_corpus_args(p: argparse.ArgumentParser, *, positional: bool = True, flag: str = "--corpus",
                    default: str = "the built-in corpus (Python's own docs)") -> None:
    """CORPUS arguments: files, folders, globs, '-' (stdin), LANG=PATH; ``default`` says what none means."""
    helptext = f"text files, folders, globs, '-' for stdin, or LANG=PATH; default: {default}"
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
    return Corpus.from_args(getattr(args, "corpus", None) or [], errors=getattr(args, "errors", "strict"))


def fmt_number(x: float) -> str:
    """A table cell: ``-`` for NaN, 4 decimals below 10, 1 above.

    >>> fmt_number(float("nan")), fmt_number(2.5), fmt_number(123.456)
    ('-', '2.5000', '123.5')
    """
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"
