"""Session fixtures of the vocabulary-surgery tests (built once; each model is a few hundred KB)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _vocab_models import corpus_of, hf_model

from tokembed.tokenizers import train_tokenizer


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vocab")


@pytest.fixture(scope="session")
def bpe_tok(workdir):
    return train_tokenizer("bytebpe", corpus_of(workdir), 400, progress=False)


@pytest.fixture(scope="session")
def wp_tok(workdir):
    return train_tokenizer("wordpiece", corpus_of(workdir), 300, progress=False)


@pytest.fixture(scope="session")
def gpt2_dir(workdir, bpe_tok):
    return hf_model("gpt2", bpe_tok, workdir / "gpt2")


@pytest.fixture(scope="session")
def llama_dir(workdir, bpe_tok):
    """Untied head, weights in several shards."""
    return hf_model("llama", bpe_tok, workdir / "llama", tie=False, shard="20KB")


@pytest.fixture(scope="session")
def llama_padded_dir(workdir, bpe_tok):
    """A Llama-style model whose table has 16 padding rows past the tokenizer (as many real models)."""
    return hf_model("llama", bpe_tok, workdir / "llama_padded", rows=bpe_tok.vocab_size + 16, tie=False)


@pytest.fixture(scope="session")
def bert_dir(workdir, wp_tok):
    return hf_model("bert", wp_tok, workdir / "bert")
