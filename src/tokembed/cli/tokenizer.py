"""``tokembed tokenizer``: train, inspect, use and compare tokenizers.

PATH is anything :func:`tokembed.tokenizers.load_tokenizer` reads: a tokembed tokenizer
folder, a ``tokenizer.json`` (or its folder), a BERT ``vocab.txt``, a sentencepiece ``.model``,
or a tiktoken rank file (with ``--pattern``). The numbers of ``compare`` come from
:mod:`tokembed.tokenizers.stats`; this module only formats them.
"""

from __future__ import annotations

import argparse
import sys
import json
from typing import Any

from ..corpus import corpus_notes
from ..errors import ConfigError
from ..tokenizers import load_tokenizer, train_tokenizer, trainable_kinds
from ..tokenizers.stats import STAT_COLUMNS, compare_tokenizers
from ._common import add_corpus_args, corpus_from_args, fmt_number, print_json
from ._parity import run_parity


__all__ = ["add_parser", "parse_options"]


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> dict; VALUE is read as JSON when it parses (numbers, true/false, null), else a string.

    >>> parse_options(["min_frequency=3", "pattern=gpt2", "lowercase=false"])
    {'min_frequency': 3, 'pattern': 'gpt2', 'lowercase': False}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE, e.g. --option min_frequency=3")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _add_load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pattern", help="pre-tokenization regex of a tiktoken rank file: cl100k, gpt2 or the regex")
    p.add_argument("--load-option", action="append", metavar="KEY=VALUE", help="loader option, e.g. lowercase=false for a vocab.txt")


def _load(path: str, args: argparse.Namespace):
    from pathlib import Path

    opts = parse_options(getattr(args, "load_option", None))
    if getattr(args, "pattern", None) and not Path(path).is_dir():  # --pattern is for rank files (compare may mix)
        opts["pattern"] = args.pattern
    return load_tokenizer(path, **opts)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="train, inspect, use and compare tokenizers")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)

    t = tsub.add_parser("train", help="train a tokenizer on a corpus (progress bar on stderr)")
    t.add_argument("--kind", required=True, help=", ".join(trainable_kinds()))
    t.add_argument("--vocab-size", type=int, default=None)
    t.add_argument("-o", "--output", required=True, help="output folder")
    t.add_argument("--json", action="store_true", help='print {"kind", "vocab_size", "fingerprint", "output"}')
    t.add_argument("--quiet", action="store_true", help="no progress bars, notes or warnings on stderr")
    t.add_argument("--seed", type=int, default=None, help="seed of the language sampling (LANG=PATH corpora)")
    t.add_argument("--alpha", type=float, default=None, help="α of the language sampling p_l ∝ n_l^α (default 0.3)")
    t.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None, help="lowercase (wordpiece)")
    t.add_argument("--analyzer", default=None, help="morphological analyzer of the morph kind: morfessor (default) or kiwi (Korean)")
    t.add_argument("--option", action="append", metavar="KEY=VALUE", help="kind option, e.g. pattern=gpt2, min_frequency=3")
    add_corpus_args(t)
    t.set_defaults(func=_train)

    i = tsub.add_parser("info", help="kind, vocab size, special tokens, fingerprint")
    i.add_argument("path")
    i.add_argument("--json", action="store_true")
    _add_load_args(i)
    i.set_defaults(func=_info)

    e = tsub.add_parser("encode", help="ids and tokens of a text")
    e.add_argument("path")
    e.add_argument("text")
    e.add_argument("--json", action="store_true", help='print {"ids": [...], "tokens": [...]}')
    e.add_argument("--allow-special", action="store_true", help="encode special token strings in TEXT as special tokens")
    _add_load_args(e)
    e.set_defaults(func=_encode)

    c = tsub.add_parser(
        "compare",
        help="fertility, bytes/token, UNK rate, vocab use, round trip, MB/s per tokenizer; "
        "with LANG=PATH also premium, parity, fallback, per-script coverage per language",
    )
    c.add_argument("paths", nargs="*", metavar="PATH", help="tokenizers to compare (optional with --alpha)")
    c.add_argument("--json", action="store_true")
    c.add_argument("--max-lines", type=int, default=None, help="evaluate at most this many lines per language")
    add_corpus_args(c, positional=False)
    _add_load_args(c)
    # -- languages (cli/_parity.py): premium, parity, fallback, per-script coverage, alpha sweep
    c.add_argument("--reference", metavar="LANG", help="reference language of premium/parity (default: en if present, else the first)")
    c.add_argument("--parallel", action="store_true", help="LANG=PATH files are line-aligned translations: premium per sentence")
    c.add_argument("--alpha", metavar="A,B,...", help="train one --kind tokenizer per α of the language sampling, e.g. 0.1,0.3,0.5,1.0")
    c.add_argument("--kind", help="kind the --alpha sweep trains (unigram, bpe, bytebpe, wordpiece, morph)")
    c.add_argument("--train-vocab-size", type=int, default=None, metavar="V", help="vocab size of the --alpha sweep")
    c.add_argument("--option", action="append", metavar="KEY=VALUE", help="kind option of the --alpha sweep, e.g. analyzer=kiwi")
    c.set_defaults(func=_compare)


def _train(args: argparse.Namespace) -> int:
    opts = parse_options(args.option)
    for key in ("seed", "alpha", "lowercase", "analyzer"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    with corpus_notes():
        tok = train_tokenizer(args.kind, corpus_from_args(args), args.vocab_size, **opts)
    if args.vocab_size is not None and tok.vocab_size < args.vocab_size and not args.quiet:
        print(
            f"note: asked for {args.vocab_size} tokens, the corpus supports {tok.vocab_size} (no further merge/piece "
            "occurs often enough); pass more text or a smaller --vocab-size",
            file=sys.stderr,
        )
    tok.save(args.output)
    if args.json:
        print_json({"kind": tok.kind, "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint, "output": args.output})
        return 0
    print(f"saved {tok.kind} tokenizer, {tok.vocab_size} tokens, fingerprint {tok.fingerprint[:12]} -> {args.output}")
    return 0


def _info(args: argparse.Namespace) -> int:
    tok = _load(args.path, args)
    info = {
        "kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "special_tokens": tok.special_tokens,
        "fingerprint": tok.fingerprint,
        "lossless": bool(tok.lossless),
        "options": tok.options,
    }
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:15} {v}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    tok = _load(args.path, args)
    ids = tok.encode(args.text, allowed_special="all" if args.allow_special else ())
    tokens = [tok.vocab.token(i) for i in ids]
    if args.json:
        print_json({"ids": ids, "tokens": tokens})
    else:
        print(" ".join(map(str, ids)))
        print(" ".join(tokens))
    return 0


def _compare(args: argparse.Namespace) -> int:
    if args.max_lines is not None and args.max_lines < 1:
        raise ConfigError(f"--max-lines {args.max_lines}; pass a positive number")
    toks = {path: _load(path, args) for path in args.paths}
    corpus = corpus_from_args(args)
    if corpus.languages or args.reference or args.parallel or args.alpha:  # per language vs a reference (cli/_parity.py)
        with corpus_notes():
            return run_parity(args, toks, corpus, options=parse_options(args.option))
    if not toks:
        raise ConfigError("nothing to compare: pass one or more tokenizer PATHs")
    with corpus_notes():
        rows = compare_tokenizers(toks, corpus, max_lines=args.max_lines)
    if args.json:
        print_json([r.to_dict() for r in rows])
        return 0
    header = ["tokenizer", "lang", "kind", "vocab", *STAT_COLUMNS]
    table = [header]
    for r in rows:
        tok = toks[r.name]
        table.append([r.name, r.language or "-", tok.kind, str(r.vocab_size), *(fmt_number(getattr(r, k)) for k in STAT_COLUMNS)])
    widths = [max(len(row[j]) for row in table) for j in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) if j < 3 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths))))
    return 0
