"""Data-parallel training (tokembed.training.distributed): `tokembed train --nproc 2` under torchrun with gloo
equals one process with the same global batch; checkpoints by rank 0; resume on the same and on another world size."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tokembed.artifacts import load_tensors, read_json
from tokembed.errors import ConfigError
from tokembed.tokenizers import load_tokenizer
from tokembed.training import distributed
from tokembed.training.config import TrainConfig
from tokembed.training.loop import train
from tokembed.training.shards import TokenStream, load_shards

from _train_cli import train_cli, write_corpus
from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

OPTS = ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "model.max_seq_len=32", "seq_len=16",
        "batch_size=4", "warmup_steps=3", "lr=1e-2", "log_every=1", "device=cpu"]


def _config(**kw) -> TrainConfig:
    return TrainConfig.from_file(None, OPTS + [f"{k}={v}" for k, v in kw.items()])


def test_rank_rows_split_the_global_batch_and_name_a_bad_batch_size():
    parts = [distributed.rank_rows(6, distributed.DistContext(rank=r, world_size=3)) for r in range(3)]
    assert [list(range(6))[p] for p in parts] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ConfigError, match="batch_size=6 is not a multiple of the world size 4"):
        distributed.rank_rows(6, distributed.DistContext(rank=0, world_size=4))


def test_token_stream_rows_are_the_ranks_share_of_the_global_batch():
    tokens = np.arange(1000, dtype=np.uint16)
    full = TokenStream(tokens, batch_size=4, seq_len=8)
    halves = [TokenStream(tokens, batch_size=4, seq_len=8, rows=distributed.rank_rows(4, distributed.DistContext(r, 2)))
              for r in range(2)]
    for _ in range(3):
        x, y = full.next()
        parts = [h.next() for h in halves]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    assert all(h.state() == full.state() for h in halves)  # the cursor is the global batch's


def test_one_process_is_a_world_of_one_and_gather_json_keeps_nan():
    ctx = distributed.context()
    assert (ctx.rank, ctx.world_size, ctx.active) == (0, 1, False)
    assert not torch.distributed.is_initialized()
    out = distributed.gather_json({"a": [1, float("nan")]}, ctx)
    assert out[0]["a"][0] == 1 and np.isnan(out[0]["a"][1])


def test_launch_refuses_a_bad_nproc():
    with pytest.raises(ConfigError, match="nproc=0"):
        distributed.launch(0, ["train"])


FLAT = ["warmup_steps=0", "min_lr_ratio=1.0"]  # a constant LR: the schedule does not depend on max_steps (resume)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """20 steps of 2 gloo processes through `tokembed train --nproc 2` (shared by the tests below)."""
    root = tmp_path_factory.mktemp("ddp")
    train_cli("--nproc", "2", "-o", "straight", str(write_corpus(root)), "max_steps=20", *OPTS, *FLAT, cwd=root)
    return root


@pytest.mark.slow
def test_two_gloo_processes_train_like_one_with_the_same_global_batch(straight, tmp_path):
    run = straight / "straight"
    assert read_json(run / "checkpoint" / "train_state.json")["world_size"] == 2  # it really ran on 2 ranks
    assert not list(run.glob(".checkpoint*"))  # written once, atomically: no leftovers of a second writer
    tok = load_tokenizer(run / "data" / "tokenizer")
    one = train(_config(max_steps=20, warmup_steps=0, min_lr_ratio=1.0), tokenizer=tok,
                shards=load_shards(run / "data", tokenizer=tok), out_dir=tmp_path / "r1", progress=False)
    two = json.loads((run / "history.json").read_text())
    assert [h["step"] for h in two] == list(range(1, 21))
    np.testing.assert_allclose([h["loss"] for h in two], [h["loss"] for h in one.history], rtol=1e-5, atol=1e-6)
    w1, w2 = load_tensors(tmp_path / "r1" / "checkpoint" / "model.safetensors"), load_tensors(run / "checkpoint" / "model.safetensors")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    assert (run / "eval.json").is_file()  # rank 0 evaluated and reported


@pytest.mark.slow
def test_resume_is_bit_exact_on_the_same_world_size_and_data_exact_on_another(straight, tmp_path):
    train_cli("--nproc", "2", "-o", "split", str(straight / "c.txt"), "max_steps=10", *OPTS, *FLAT, cwd=tmp_path)
    shutil.copytree(tmp_path / "split", tmp_path / "other")
    train_cli("--nproc", "2", "--resume", "-o", "split", "max_steps=20", cwd=tmp_path)
    a = load_tensors(straight / "straight" / "checkpoint" / "model.safetensors")
    b = load_tensors(tmp_path / "split" / "checkpoint" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same world size: bit for bit
    # another world size (1 process, in this one): the data position is exact, so the weights agree up to float noise
    tok = load_tokenizer(tmp_path / "other" / "data" / "tokenizer")
    train(_config(max_steps=20, warmup_steps=0, min_lr_ratio=1.0), tokenizer=tok,
          shards=load_shards(tmp_path / "other" / "data", tokenizer=tok), out_dir=tmp_path / "other", resume=True,
          progress=False)
    c = load_tensors(tmp_path / "other" / "checkpoint" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(c[k], a[k], rtol=1e-4, atol=1e-5)
    state = read_json(tmp_path / "other" / "checkpoint" / "train_state.json")
    assert state["stream"] == read_json(straight / "straight" / "checkpoint" / "train_state.json")["stream"]
