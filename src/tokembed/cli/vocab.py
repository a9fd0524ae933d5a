"""``tokembed vocab``: trim, add, transplant and diff vocabularies of models and tokenizers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..corpus import Corpus
from ..errors import ConfigError
from ..tokenizers import load_tokenizer
from ..vocab.diff import format_diff, vocab_diff
from ._common import print_json

__all__ = ["add_parser"]

_INITS = ("compose", "mean", "mean-cov", "random")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vocab", help="vocabulary surgery: trim, add, transplant, diff (every table kept aligned)")
    ops = p.add_subparsers(dest="vocab_command", metavar="OPERATION", required=True)

    t = ops.add_parser("trim", help="keep the tokens a corpus needs; its segmentation stays the same")
    _common(t)
    t.add_argument("--corpus", nargs="+", required=True, metavar="CORPUS", help="text files the model must keep covering")
    t.add_argument("--min-count", type=int, default=1, help="keep tokens used at least K times (default 1: exact)")
    t.add_argument("--keep-top", type=int, default=None, metavar="N", help="keep only the N most used tokens")
    t.add_argument("--keep", nargs="+", default=[], metavar="TOKEN", help="token strings to keep anyway")
    t.add_argument("--drop", nargs="+", default=[], metavar="TOKEN", help="token strings to remove anyway (never specials)")
    t.add_argument("--held-out", nargs="+", default=None, metavar="CORPUS", help="report the share of these texts whose segmentation changed")
    t.add_argument("--no-verify", action="store_true", help="skip running the old and new model")
    t.set_defaults(func=_trim)

    a = ops.add_parser("add", help="add tokens that encode really produces, with initialised rows")
    _common(a)
    a.add_argument("tokens", nargs="*", metavar="TOKEN", help="token texts (e.g. ' hello' for byte-level BPE)")
    a.add_argument("--tokens-file", default=None, metavar="F", help="one token text per line")
    a.add_argument("--from-corpus", nargs="+", default=None, metavar="CORPUS", help="pick the strings that save the most tokens")
    a.add_argument("--top", type=int, default=None, metavar="N", help="with --from-corpus: how many")
    a.add_argument("--init", choices=_INITS, default="compose", help="rows of the new tokens (default compose)")
    a.add_argument("--special", action="store_true", help="add them as special tokens")
    a.add_argument("--verify", nargs="+", default=None, metavar="CORPUS", help="compare the loss before/after on this text")
    a.set_defaults(func=_add)

    tr = ops.add_parser("transplant", help="move a model to another tokenizer (rows copied or composed)")
    _common(tr)
    tr.add_argument("--tokenizer", required=True, metavar="NEW", help="the new tokenizer (folder or file)")
    tr.add_argument("--init", choices=_INITS, default="compose", help="rows of tokens with no match (default compose)")
    tr.add_argument("--verify", nargs="+", default=None, metavar="CORPUS", help="compare the loss before/after on this text")
    tr.set_defaults(func=_transplant)

    d = ops.add_parser("diff", help="tokens added, removed, renumbered; specials; fingerprints")
    d.add_argument("a", metavar="A", help="tokenizer, checkpoint or Hugging Face folder")
    d.add_argument("b", metavar="B", help="tokenizer, checkpoint or Hugging Face folder")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=_diff)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="tokembed checkpoint, compressed artifact, Hugging Face model folder or tokenizer folder")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="new folder for the result")
    p.add_argument("--pad-to-multiple-of", type=int, default=1, metavar="N", help="round the table rows up to a multiple of N (tokembed heads give the padding rows -inf logits)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random and mean-cov inits")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _texts(specs) -> list[str]:
    return list(Corpus.from_args(specs).texts()) if specs else []


def _show(report: dict, as_json: bool) -> int:
    if as_json:
        print_json(report)
        return 0
    m = report["map"]
    print(f"{report['operation']}: V {m['old_size']} -> {m['new_size']} (kept {m['kept']}, dropped {m['dropped']}, added {m['added']}); "
          f"rows {report['rows'][0]} -> {report['rows'][1]}")
    for token, inter in (report.get("intermediates") or {}).items():  # BPE add: strings built on the way
        print(f"intermediates of {token}: {', '.join(inter)}")
    for key in ("corpus_changed_share", "held_out_changed_share", "transplant", "verify"):
        if key in report:
            print(f"{key}: {json.dumps(report[key])}")
    return 0


def _trim(args: argparse.Namespace) -> int:
    from ..vocab.surgery import trim

    report = trim(args.source, args.output, _texts(args.corpus), min_count=args.min_count, keep_top=args.keep_top,
                  keep=args.keep, drop=args.drop, held_out=_texts(args.held_out), pad_to_multiple_of=args.pad_to_multiple_of,
                  verify_model=not args.no_verify)
    return _show(report, args.json)


def _add(args: argparse.Namespace) -> int:
    from ..vocab.surgery import add

    tokens = list(args.tokens)
    if args.tokens_file:
        tokens += [line.rstrip("\n") for line in Path(args.tokens_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if (args.from_corpus is None) != (args.top is None):
        raise ConfigError("--from-corpus and --top go together: --from-corpus CORPUS --top N")
    report = add(args.source, args.output, tokens, corpus_texts=_texts(args.from_corpus), top=args.top, special=args.special,
                 init=args.init, seed=args.seed, pad_to_multiple_of=args.pad_to_multiple_of, verify_texts=_texts(args.verify))
    return _show(report, args.json)


def _transplant(args: argparse.Namespace) -> int:
    from ..vocab.surgery import transplant

    report = transplant(args.source, args.output, load_tokenizer(args.tokenizer), init=args.init, seed=args.seed,
                        pad_to_multiple_of=args.pad_to_multiple_of, verify_texts=_texts(args.verify))
    return _show(report, args.json)


def _diff(args: argparse.Namespace) -> int:
    from ..vocab.apply import load_source

    d = vocab_diff(load_source(args.a).tokenizer, load_source(args.b).tokenizer)
    if args.json:
        print_json(d)
    else:
        print(format_diff(d))
    return 0
