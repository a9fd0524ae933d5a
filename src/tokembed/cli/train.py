"""``tokembed train``: tokenize a corpus, train the LM, checkpoint, evaluate on the held-out documents."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from ..artifacts import read_json, write_json
from ..config import apply_override
from ..corpus import Corpus
from ..errors import ConfigError
from ..tokenizers import load_tokenizer
from ..training.shards import build_shards, load_shards
from ._common import print_json

__all__ = ["add_parser"]


def _options(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--config", default=None, help="TOML or YAML training config (default: built-in defaults)")
    p.add_argument("-o", "--output", required=required, help="run folder (checkpoint/, data/, history.json, ...)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output exactly where it stopped")
    p.add_argument("--force", action="store_true", help="start over in an --output that already holds a run (replaces it)")
    p.add_argument("--tokenizer", default=None, help="tokenizer kind to train (byte, bytebpe, ...) or a tokenizer folder")
    p.add_argument("--workers", type=int, default=None, help="processes for tokenizing (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--nproc", type=int, default=0, metavar="N",
                   help="data-parallel over N processes on this machine: re-runs this command under torchrun "
                   "(torch.distributed.run); for several machines run torchrun yourself (docs/parallel.md)")
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
        raise ConfigError("no run folder: pass -o DIR")
    return args


def _split_items(items: list[str]) -> tuple[list[str], list[str]]:
    """(``key=value`` overrides, corpus specs); a ``key=value`` that is neither is most likely a typo'd option."""
    from ..training.config import is_override

    overrides = [i for i in items if is_override(i)]
    corpus_specs = [i for i in items if not is_override(i)]
    for spec in corpus_specs:
        key, sep, value = spec.partition("=")
        if sep and not any(c in value for c in "*?[") and value != "-" and not Path(value).exists():
            raise ConfigError(
                f"{spec!r} is neither a training option ({key!r} is not a TrainConfig field; model fields take "
                f"'model.', e.g. model.d_model=64) nor a LANG=PATH corpus ({value!r} does not exist); "
                "see tokembed train --help and docs/training.md"
            )
    return overrides, corpus_specs


def _resume_inputs(args: argparse.Namespace, out: Path, overrides: list[str]):
    """(config, tokenizer, shards) of the run in ``out`` to continue."""
    from ..training.config import TrainConfig

    if args.config is None and (out / "run_config.json").is_file():
        base = read_json(out / "run_config.json")
        base.pop("corpus", None)  # recorded for the reader, not a training option
        for o in overrides:
            apply_override(base, o)
        config = TrainConfig.from_dict(base)
    else:
        config = TrainConfig.from_file(args.config, overrides)
    tok_dir = out / "data" / "tokenizer"
    if not tok_dir.is_dir():
        raise ConfigError(f"{out}: no data/tokenizer to resume with; is this a run folder written by 'tokembed train'?")
    tokenizer = load_tokenizer(tok_dir)
    return config, tokenizer, load_shards(out / "data", tokenizer=tokenizer)


def _new_inputs(args: argparse.Namespace, out: Path, overrides: list[str], corpus_specs: list[str]):
    """(config, tokenizer, shards) of a new run: the tokenizer prepared on the corpus, the shards built in ``out/data``."""
    from ..training.config import TrainConfig
    from ..training.pipeline import prepare_tokenizer

    config = TrainConfig.from_file(args.config, overrides)
    if args.tokenizer:
        config.tokenizer = args.tokenizer
    corpus = Corpus.from_args(corpus_specs, errors=args.errors)
    tokenizer = prepare_tokenizer(config.tokenizer, corpus, vocab_size=config.vocab_size)
    shards = build_shards(
        tokenizer, corpus, out / "data", val_fraction=config.val_fraction, seed=config.seed,
        workers=args.workers, progress=not args.quiet,
    )
    if args.config:
        shutil.copyfile(args.config, out / f"config_source{Path(args.config).suffix}")
    write_json(out / "run_config.json", {**config.to_dict(), "corpus": corpus_specs})
    return config, tokenizer, shards


#: What ``tokembed train`` writes into a run folder (``--force`` removes these before starting over).
RUN_FILES = ("checkpoint", "checkpoint.prev", "data", "run_config.json", "history.json", "band_stats.json", "bands.png",
             "eval.json", "reliability.png")


def _check_new_run(out: Path, *, force: bool) -> None:
    """Refuse to train over an existing run (it would be overwritten silently), unless ``--force``."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if not existing:
        return
    if not force:
        raise ConfigError(f"{out} already holds a run ({', '.join(existing[:3])}); pass --resume to continue it, "
                          "--force to replace it, or another -o folder")
    for name in existing:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def _ranked_inputs(args: argparse.Namespace, out: Path, overrides: list[str], corpus_specs: list[str]):
    """(config, tokenizer, shards); under torchrun rank 0 prepares a new run's data and the others then read it."""
    from ..training.config import TrainConfig
    from ..training.distributed import context, main_first

    if args.resume:
        return _resume_inputs(args, out, overrides)
    ctx = context(device=TrainConfig.from_file(args.config, overrides).device)
    with main_first(ctx):
        if ctx.is_main:
            _check_new_run(out, force=args.force)
            return _new_inputs(args, out, overrides, corpus_specs)
        inputs = _resume_inputs(args, out, overrides)  # the data rank 0 has just written
    return inputs


def _run(args: argparse.Namespace) -> int:
    from ..training.plots import plot_reliability
    from ..training.pipeline import train_and_evaluate

    args = _parse_rest(args)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # the shortcut: the same command under torchrun
        from ..training.distributed import launch

        return launch(args.nproc, args.argv)
    out = Path(args.output)
    overrides, corpus_specs = _split_items(args.items)
    config, tokenizer, shards = _ranked_inputs(args, out, overrides, corpus_specs)
    run = train_and_evaluate(config, tokenizer=tokenizer, shards=shards, out_dir=out, resume=args.resume,
                             progress=not args.quiet)
    result, ev = run.train, run.eval
    if int(os.environ.get("RANK", "0")) != 0:  # data-parallel: rank 0 reports
        return 0
    summary = {"checkpoint": str(result.checkpoint), "steps": result.steps, "tokens": result.tokens,
               "train_tokens_per_s": result.tokens_per_s, "seconds": result.seconds}
    if ev is not None:
        write_json(out / "eval.json", ev.to_dict())
        plot_reliability(ev, out / "reliability.png")
        summary.update(val_loss=ev.loss, val_bits_per_byte=ev.bits_per_byte, val_ece=ev.ece)
    if args.json:
        print_json(summary)
    else:
        for k, v in summary.items():
            print(f"{k:20} {v:.4f}" if isinstance(v, float) else f"{k:20} {v}")
    return 0
