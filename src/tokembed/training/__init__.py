"""Training a language model: config, token shards, the loop, checkpoints and evaluation (one module each).

- :mod:`~tokembed.training.config`: :class:`TrainConfig` (what a run needs besides tokenizer and data);
- :mod:`~tokembed.training.shards`: a corpus tokenized once into memory-mapped splits, and the
  :class:`TokenStream` order the loop reads them in;
- :mod:`~tokembed.training.loop`: :func:`train` (AdamW groups, schedule, monitors, exact resume);
- :mod:`~tokembed.training.checkpoint`: the checkpoint folder (save, load, resume state);
- :mod:`~tokembed.training.evaluate`: loss, bits per byte, calibration and per-band loss;
- :mod:`~tokembed.training.pipeline`: prepare -> train -> evaluate, shared by ``tokembed train`` and the study.

Nothing is imported here, so tokenizing workers that import :mod:`~tokembed.training.shards`
do not pay for torch.
"""
