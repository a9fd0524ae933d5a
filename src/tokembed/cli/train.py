"""``tokembed train``: tokenize a corpus, train the LM, checkpoint, evaluate on the held-out documents."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ._common import print_json

__all__ = ["add_parser"]


def _options(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--config", default=None, help="TOML or YAML training config (default: built-in defaults)")
    p.add_argument("-o", "--output", required=required, help="run folder (checkpoint/, data/, history.json, ...)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output exactly where it stopped")
    p.add_argument("--tokenizer", default=None, help="tokenizer kind to train (byte, bytebpe, ...) or a tokenizer folder")
    p.add_argument("--workers", type=int, default=None, help="processes for tokenizing (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the final evaluation as JSON")
    p.add_argument(
        "--errors", choices=["strict", "replace"], default="strict", help="invalid UTF-8 in the corpus: stop or repair"
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a small Transformer LM on a corpus (config file + key=value overrides)",
        description="Train a decoder-only LM. Positional arguments of the form key=value (lr=1e-3, model.d_model=64) "
        "override the config; the others are the corpus (files, folders, globs, '-', LANG=PATH; none = built-in corpus).",
    )
    _options(p, required=False)
    # argparse cannot mix positionals and options after the first positional: collect the rest and re-parse it.
    p.add_argument("items", nargs=argparse.REMAINDER, metavar="OVERRIDE|CORPUS", help="key=value overrides and corpus paths")
    p.set_defaults(func=_run)


def _parse_rest(args: argparse.Namespace) -> argparse.Namespace:
    """Options given after the first positional (``lr=1 -o DIR corpus.txt``) are parsed here, intermixed."""
    inner = argparse.ArgumentParser(prog="tokembed train", add_help=False)
    _options(inner, required=False)
    inner.add_argument("items", nargs="*")
    rest = inner.parse_intermixed_args(args.items)
    defaults = vars(inner.parse_args([]))
    for k, v in vars(rest).items():
        if k != "items" and v != defaults[k]:
            setattr(args, k, v)
    args.items = rest.items
    if not args.output:
        from ..errors import ConfigError

        raise ConfigError("no run folder: pass -o DIR")
    return args


def _run(args: argparse.Namespace) -> int:
    from ..corpus import Corpus
    from ..training.shards import build_shards, load_shards
    from ..errors import ConfigError, VocabSizeError
    from ..training.evaluate import evaluate, plot_reliability
    from ..artifacts import read_json, write_json
    from ..tokenizers import load_tokenizer, train_tokenizer
    from ..training.checkpoint import load_checkpoint
    from ..training.config import TrainConfig, is_override
    from ..training.loop import train

    args = _parse_rest(args)
    out = Path(args.output)
    overrides = [i for i in args.items if is_override(i)]
    corpus_specs = [i for i in args.items if not is_override(i)]
    for spec in corpus_specs:  # `key=value` that is no option and no LANG=PATH file: most likely a typo'd option
        key, sep, value = spec.partition("=")
        if sep and not any(c in value for c in "*?[") and value != "-" and not Path(value).exists():
            raise ConfigError(
                f"{spec!r} is neither a training option ({key!r} is not a TrainConfig field; model fields take "
                f"'model.', e.g. model.d_model=64) nor a LANG=PATH corpus ({value!r} does not exist); "
                "see tokembed train --help and docs/training.md"
            )
    if args.resume:
        if args.config is None and (out / "run_config.json").is_file():
            base = read_json(out / "run_config.json")
            base.pop("corpus", None)  # recorded for the reader, not a training option
            from ..config import apply_override

            for o in overrides:
                apply_override(base, o)
            config = TrainConfig.from_dict(base)
        else:
            config = TrainConfig.from_file(args.config, overrides)
        tok_dir = out / "data" / "tokenizer"
        if not tok_dir.is_dir():
            raise ConfigError(f"{out}: no data/tokenizer to resume with; is this a run folder written by 'tokembed train'?")
        tokenizer = load_tokenizer(tok_dir)
        shards = load_shards(out / "data", tokenizer=tokenizer)
    else:
        config = TrainConfig.from_file(args.config, overrides)
        if args.tokenizer:
            config.tokenizer = args.tokenizer
        corpus = Corpus.from_args(corpus_specs, errors=args.errors)
        from ..tokenizers import KINDS

        if Path(config.tokenizer).exists():  # a tokenizer folder or file (tokenizer.json, vocab.txt, .model)
            tokenizer = load_tokenizer(config.tokenizer)
        elif config.tokenizer in KINDS:
            try:
                tokenizer = train_tokenizer(config.tokenizer, corpus, config.vocab_size)
            except VocabSizeError as e:  # the library names the tokenizer CLI's flag; here it is a config key
                raise VocabSizeError(str(e).replace("--vocab-size", "vocab_size (config key or override vocab_size=N)")) from e
        else:
            raise ConfigError(
                f"tokenizer {config.tokenizer!r} is neither a kind to train ({', '.join(sorted(KINDS))}) nor a local "
                "tokenizer folder or file; tokembed works offline, so a hub id must be downloaded elsewhere and "
                "passed as a local folder"
            )
        shards = build_shards(
            tokenizer, corpus, out / "data", val_fraction=config.val_fraction, seed=config.seed,
            workers=args.workers, progress=not args.quiet,
        )
        if args.config:
            shutil.copyfile(args.config, out / f"config_source{Path(args.config).suffix}")
        write_json(out / "run_config.json", {**config.to_dict(), "corpus": corpus_specs})
    result = train(config, tokenizer=tokenizer, shards=shards, out_dir=out, resume=args.resume, progress=not args.quiet)
    summary = {"checkpoint": str(result.checkpoint), "steps": result.steps, "tokens": result.tokens,
               "train_tokens_per_s": result.tokens_per_s, "seconds": result.seconds}
    if len(shards["val"]) > 1:
        model, _, _ = load_checkpoint(result.checkpoint)
        ev = evaluate(model, tokenizer, shards["val"], seq_len=config.seq_len, batch_size=config.batch_size)
        write_json(out / "eval.json", ev.to_dict())
        plot_reliability(ev, out / "reliability.png")
        summary.update(val_loss=ev.loss, val_bits_per_byte=ev.bits_per_byte, val_ece=ev.ece)
    if args.json:
        print_json(summary)
    else:
        for k, v in summary.items():
            print(f"{k:20} {v:.4f}" if isinstance(v, float) else f"{k:20} {v}")
    return 0

