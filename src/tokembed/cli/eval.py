"""``tokembed eval``: bits per byte, perplexity, ECE, band loss, speed and size of a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import FLAGS, print_json
from ..artifacts import read_json
from ..corpus import Corpus
from ..errors import ConfigError
from ..training.shards import load_shards

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint: bits per byte, perplexity, ECE, loss per frequency band")
    p.add_argument("checkpoint", help="run folder or checkpoint folder written by 'tokembed train', or a compressed "
                   "artifact written by 'tokembed compress' (then --model names the checkpoint it came from)")
    p.add_argument("--model", default=None, metavar="CHECKPOINT",
                   help="with a compressed artifact: the checkpoint it was compressed from (its other weights, tokenizer "
                   "and validation shard); the model runs on the artifact's compressed embedding and head")
    p.add_argument("--corpus", nargs="+", default=None, metavar="CORPUS",
                   help="text to evaluate on (default: the run's held-out validation documents)")
    p.add_argument("--seq-len", type=int, default=None, help="window length (default: the training seq_len)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=None, help="evaluate the first whole documents within this many tokens")
    p.add_argument("--device", default="cpu")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the reliability diagram here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--errors", choices=["strict", "replace"], default="strict")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..training.checkpoint import CHECKPOINT_DIR
    from ..training.evaluate import evaluate
    from ..training.plots import plot_reliability

    for name in ("seq_len", "batch_size", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"{FLAGS['eval'][name]} {value}; pass a positive number")
    device = str(resolve_device(args.device))
    model, tokenizer, config, ckpt, art = _load_model(args, device)
    if args.corpus:
        data = Corpus.from_args(args.corpus, errors=args.errors)
    else:
        data_dir = (ckpt.parent if ckpt.name == CHECKPOINT_DIR else ckpt) / "data"
        if not (data_dir / "val.json").is_file():
            raise ConfigError(f"{ckpt}: no validation shard next to it ({data_dir}); pass --corpus FILE to evaluate on")
        data = load_shards(data_dir, tokenizer=tokenizer)["val"]
    r = evaluate(model, tokenizer, data, seq_len=args.seq_len or config.seq_len, batch_size=args.batch_size,
                 max_tokens=args.max_tokens, device=device)
    if art is not None:  # the compressed tables are buffers, not parameters: count their stored bytes
        bias = art.output_bias.numel() * 4 if art.output_bias is not None else 0
        r.embedding_bytes = art.input.nbytes + (art.output.nbytes if art.output is not None else 0) + bias
    if args.plot:
        plot_reliability(r, Path(args.plot))
    if args.json:
        print_json(r.to_dict())
        return 0
    print(f"tokens          {r.n_tokens:,} predicted, {r.n_bytes:,} bytes")
    print(f"loss            {r.loss:.4f} nats/token (perplexity {r.perplexity:.2f})")
    print(f"bits per byte   {r.bits_per_byte:.4f}")
    print(f"ECE (top-1)     {r.ece:.4f} (accuracy {r.accuracy:.3f})")
    print(f"tokens/s        {r.tokens_per_s:,.0f}")
    p = r.params
    print(f"parameters      embedding {p['embedding']:,}, head {p['head']:,}, rest {p['rest']:,}, total {p['total']:,}")
    print(f"embedding bytes {r.embedding_bytes:,}" + (f" (compressed: {art.meta.get('method')})" if art is not None else ""))
    for b in r.band_loss:
        loss = "-" if b["loss"] is None else f"{b['loss']:.3f}"
        print(f"  band count {b['name']:>10}: {b['n_types']:6} types, {b['n_tokens']:8} tokens, loss {loss}")
    return 0


def _load_model(args: argparse.Namespace, device: str):
    """``(model, tokenizer, train config, checkpoint folder, artifact or None)``: a checkpoint, or one served with
    the compressed embedding and head of an artifact."""
    from ..compress.reader import is_compressed_artifact, load_compressed_model
    from ..training.checkpoint import load_checkpoint, resolve_checkpoint

    if is_compressed_artifact(args.checkpoint):
        if args.model is None:
            meta = read_json(Path(args.checkpoint) / "compression.json")
            source = meta.get("source") if isinstance(meta, dict) else None
            where = f"records {source!r}" if isinstance(source, str) and source else "records no source"
            raise ConfigError(
                f"{args.checkpoint} is a compressed artifact: it holds only the embedding and head; pass --model "
                f"CHECKPOINT, the checkpoint it was compressed from (compression.json {where})")
        ckpt = resolve_checkpoint(args.model)
        model, tokenizer, config, art = load_compressed_model(args.checkpoint, ckpt, device=device)
        return model, tokenizer, config, ckpt, art
    if args.model is not None:
        raise ConfigError(f"--model {args.model} is for a compressed artifact, but {args.checkpoint} is not one (no "
                          "compression.json); evaluate the checkpoint alone, or pass the artifact folder first")
    ckpt = resolve_checkpoint(args.checkpoint)
    model, tokenizer, config = load_checkpoint(ckpt, device=device)
    return model, tokenizer, config, ckpt, None
