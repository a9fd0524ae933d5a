"""``tokembed tokenizer``: train, inspect and use tokenizers."""

from __future__ import annotations

import argparse

from ._common import add_corpus_args, corpus_from_args, print_json

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="train, inspect and use tokenizers")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)

    t = tsub.add_parser("train", help="train a tokenizer on a corpus")
    t.add_argument("--kind", required=True, help="byte, char, bytebpe, bpe, wordpiece, unigram, morph")
    t.add_argument("--vocab-size", type=int, default=None)
    t.add_argument("-o", "--output", required=True, help="output folder")
    add_corpus_args(t)
    t.set_defaults(func=_train)

    i = tsub.add_parser("info", help="kind, vocab size, special tokens, fingerprint")
    i.add_argument("path")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)

    e = tsub.add_parser("encode", help="ids and tokens of a text")
    e.add_argument("path")
    e.add_argument("text")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_encode)


def _train(args: argparse.Namespace) -> int:
    from ..tokenizers import train_tokenizer

    tok = train_tokenizer(args.kind, corpus_from_args(args), args.vocab_size)
    tok.save(args.output)
    print(f"saved {tok.kind} tokenizer, {tok.vocab_size} tokens, fingerprint {tok.fingerprint[:12]} -> {args.output}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..tokenizers import load_tokenizer

    tok = load_tokenizer(args.path)
    info = {
        "kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "special_tokens": tok.special_tokens,
        "fingerprint": tok.fingerprint,
        "options": tok.options,
    }
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:15} {v}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from ..tokenizers import load_tokenizer

    tok = load_tokenizer(args.path)
    ids = tok.encode(args.text)
    tokens = [tok.vocab.token(i) for i in ids]
    if args.json:
        print_json({"ids": ids, "tokens": tokens})
    else:
        print(" ".join(map(str, ids)))
        print(" ".join(tokens))
    return 0
