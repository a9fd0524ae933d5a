"""One pipeline, prepare -> train -> evaluate, shared by ``tokembed train`` and the study.

Unlike :mod:`tokembed.training.loop` (the optimizer loop on shards already made), this module
goes from text to an evaluated model:

1. :func:`prepare_tokenizer`: a tokenizer kind trained on the corpus, or a local tokenizer folder/file;
2. :func:`~tokembed.training.shards.build_shards`: the corpus tokenized into train/val shards;
3. :func:`train_and_evaluate`: :func:`~tokembed.training.loop.train`, then
   :func:`~tokembed.training.evaluate.evaluate` of the model just trained (in memory, on the
   device it trained on) on the validation shard.

The study caches tokenizers and shards in its own folder but calls the same two steps, so a run
of the study and ``tokembed train`` with the same config compute the same thing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..tokenizers import KINDS, load_tokenizer, train_tokenizer
from . import distributed as _dist
from .config import TrainConfig
from .evaluate import EvalResult, evaluate
from .loop import TrainResult, train
from . import vocab_parallel as _vp

__all__ = ["RunResult", "prepare_tokenizer", "train_and_evaluate"]


@dataclass
class RunResult:
    """A trained and evaluated run: the training result (with the model) and the validation scores."""

    train: TrainResult
    eval: EvalResult | None  # None when the validation shard holds fewer than 2 tokens
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)  # "train"/"eval" -> (wall s, CPU s)


def prepare_tokenizer(tokenizer: str, corpus, *, vocab_size: int | None = None):
    """``tokenizer`` is a kind to train on ``corpus`` at ``vocab_size`` (byte, bytebpe, ...) or a local
    tokenizer folder or file (tokembed folder, tokenizer.json, vocab.txt, .model).

    >>> prepare_tokenizer("byte", None).vocab_size
    259
    """
    if Path(tokenizer).exists():
        return load_tokenizer(tokenizer)
    if tokenizer in KINDS:
        return train_tokenizer(tokenizer, corpus, vocab_size)
    raise ConfigError(
        f"tokenizer={tokenizer!r} is neither a kind to train ({', '.join(sorted(KINDS))}) nor a local "
        "tokenizer folder or file; tokembed works offline, so a hub id must be downloaded elsewhere and "
        "passed as a local folder",
        param="tokenizer",
    )


def train_and_evaluate(
    config: TrainConfig,
    *,
    tokenizer,
    shards,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    eval_tokens: int | None = None,
    plots: bool = True,
) -> RunResult:
    """Train on ``shards["train"]`` into ``out_dir``, then evaluate the trained model on ``shards["val"]``
    (its first whole documents within ``eval_tokens`` tokens; all of it when None) with the run's
    ``seq_len`` and ``batch_size``. ``plots=False`` skips the run's ``bands.png``. ``RunResult.timings``
    holds the wall and CPU seconds of the two steps."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(config, tokenizer=tokenizer, shards=shards, out_dir=out_dir, resume=resume, progress=progress,
                   plots=plots)
    timings = {"train": (time.perf_counter() - t0, time.process_time() - c0)}
    val = shards.get("val")
    sharded = _vp.is_sharded(result.model)  # vocab-parallel: every rank evaluates (the head gathers the logits)
    if val is None or len(val) < 2 or not (_dist.context().is_main or sharded):  # data-parallel: rank 0 evaluates
        return RunResult(train=result, eval=None, timings=timings)
    device = next(result.model.parameters()).device  # evaluate where it trained
    t0, c0 = time.perf_counter(), time.process_time()
    ev = (_vp.evaluate if sharded else evaluate)(result.model, tokenizer, val, seq_len=config.seq_len,
                                                 batch_size=config.batch_size,
                  max_tokens=eval_tokens, device=device)
    timings["eval"] = (time.perf_counter() - t0, time.process_time() - c0)
    return RunResult(train=result, eval=ev, timings=timings)
