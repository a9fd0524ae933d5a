"""Builders shared by the hostile-input tests (no pytest fixtures here; see conftest.py).

>>> import tempfile, pathlib
>>> f = tiny_hf_folder(pathlib.Path(tempfile.mkdtemp()) / "m")
>>> sorted(p.name for p in f.iterdir())
['config.json', 'model.safetensors', 'vocab.txt']
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["TOKENS", "run_cli", "tiny_hf_folder", "assert_one_line_error"]

#: the vocabulary of :func:`tiny_hf_folder` (BERT specials, then lowercase words)
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "king", "queen", "ing", "man", "woman", "dog"]
EMBEDDING = "bert.embeddings.word_embeddings.weight"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``tokembed ARGV`` in this process: (exit code, stdout, stderr)."""
    from tokembed.cli import main

    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def tiny_hf_folder(folder: Path, *, tokens=TOKENS, dim: int = 8, seed: int = 0, shard: str = "model.safetensors") -> Path:
    """A BERT-like model folder: config.json, ``shard`` holding the (V, D) word embedding, vocab.txt."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    E = np.random.default_rng(seed).standard_normal((len(tokens), dim)).astype(np.float32)  # (V, D)
    save_file({EMBEDDING: E}, str(folder / shard))
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "vocab_size": len(tokens), "hidden_size": dim})
    )
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return folder


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    """The CLI's user-error contract: exit 2, one line on stderr, no traceback, naming each needle."""
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)
