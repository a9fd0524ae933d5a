"""Fixtures for the hostile-input tests: every hostile file is built inside the test that uses it.

The helpers in ``_hostile.py`` (importable as ``from _hostile import ...``) build small model
folders and run the CLI in-process; the fixtures here wrap them. A hostile input must end in a
typed :class:`~tokembed.errors.TokembedError` (CLI: one line on stderr, exit 2), never a
traceback, a crash, an unbounded allocation or a silently wrong answer.
"""

import pytest
from _hostile import run_cli, tiny_hf_folder


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> (rc, stdout, stderr)``: the tokembed CLI run in this process."""
    return lambda *argv: run_cli(capsys, *argv)


@pytest.fixture
def hf_folder(tmp_path):
    """A tiny BERT-like Hugging Face folder (config.json, model.safetensors, vocab.txt) in ``tmp_path/model``."""
    return tiny_hf_folder(tmp_path / "model")
