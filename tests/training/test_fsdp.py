"""FSDP training (tokembed.training.fsdp) and sharded checkpoints (tokembed.training.sharded_checkpoint):
`tokembed train --nproc 2 parallel.fsdp=true` under torchrun with gloo equals one process with the same global
batch; every rank writes its own rows; resume is bit-exact on the same world size and data-exact on another."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tokembed.artifacts import load_tensors, read_json
from tokembed.errors import ConfigError
from tokembed.tokenizers import load_tokenizer
from tokembed.training.checkpoint import load_checkpoint, verify_checkpoint
from tokembed.training.config import TrainConfig
from tokembed.training.loop import train
from tokembed.training.shard_layout import ShardedReader
from tokembed.training.sharded_checkpoint import consolidate
from tokembed.training.shards import load_shards

from _torch_threads import single_thread  # noqa: F401  (fixture)
from _train_cli import train_cli as _cli, write_corpus as _corpus
from test_distributed import FLAT, OPTS

pytestmark = pytest.mark.usefixtures("single_thread")

#: a tied head (one table for the embedding and the head, sharded once) and two micro-batches per step
#: (the reduce-scatter is skipped on the first)
FSDP = [*OPTS, *FLAT, "model.head=tied", "grad_accum=2", "parallel.fsdp=true"]


def _config(**kw) -> TrainConfig:
    return TrainConfig.from_file(None, [o for o in FSDP if not o.startswith("parallel.")] + [f"{k}={v}" for k, v in kw.items()])


def test_parallel_config_keys_and_their_errors():
    c = TrainConfig.from_file(None, ["max_steps=1", "parallel.fsdp=true"])
    assert c.parallel.fsdp and c.parallel.sharded and c.to_dict()["parallel"] == {"vocab": False, "fsdp": True, "sharded_checkpoint": None}
    assert not TrainConfig.from_file(None, ["max_steps=1", "parallel.fsdp=true", "parallel.sharded_checkpoint=false"]).parallel.sharded
    with pytest.raises(ConfigError, match="parallel.sharded_checkpoint=true needs parallel.fsdp=true"):
        TrainConfig.from_file(None, ["max_steps=1", "parallel.sharded_checkpoint=true"])
    with pytest.raises(ConfigError, match=r"unknown parallel option\(s\) \['fdsp'\]"):
        TrainConfig.from_file(None, ["max_steps=1", "parallel.fdsp=true"])
    with pytest.raises(ConfigError, match="parallel.fsdp='yes' must be"):
        TrainConfig.from_file(None, ["max_steps=1", "parallel.fsdp=yes"])
    with pytest.raises(ConfigError, match="parallel.fsdp and parallel.vocab cannot both be true"):
        TrainConfig.from_file(None, ["max_steps=1", "parallel.fsdp=true", "parallel.vocab=true"])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """20 FSDP steps of 2 gloo processes through `tokembed train --nproc 2` (shared by the tests below)."""
    root = tmp_path_factory.mktemp("fsdp")
    _cli("--nproc", "2", "-o", "straight", str(_corpus(root)), "max_steps=20", "eval_every=10", *FSDP, cwd=root)
    return root


def test_two_fsdp_ranks_train_like_one_process_and_each_writes_its_own_rows(straight, tmp_path):
    run = straight / "straight"
    ckpt = verify_checkpoint(run / "checkpoint")
    layout = read_json(ckpt / "shards.json")
    assert layout["world_size"] == 2 and not (ckpt / "model.safetensors").exists()
    # rank r's files hold only rank r's rows (torch.chunk of dim 0): V = 259 byte tokens -> 130 + 129 rows
    for r, rows in enumerate((130, 129)):
        for kind, key in (("model", "embedding.weight"), ("optim", "0.exp_avg")):
            with safe_open(str(ckpt / f"{kind}-rank{r:05d}-of-00002.safetensors"), "pt") as f:
                assert f.get_slice(key).get_shape() == [rows, 16]
    assert [s["rows"] for s in layout["tensors"]["model.embedding.weight"]["shards"]] == [130, 129]

    tok = load_tokenizer(run / "data" / "tokenizer")
    one = train(_config(max_steps=20, eval_every=10), tokenizer=tok, shards=load_shards(run / "data", tokenizer=tok),
                out_dir=tmp_path / "r1", progress=False)
    two = json.loads((run / "history.json").read_text())
    assert [h["step"] for h in two] == list(range(1, 21))
    np.testing.assert_allclose([h["loss"] for h in two], [h["loss"] for h in one.history], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([h["val_loss"] for h in two if "val_loss" in h],  # evaluated on a gathered copy
                               [h["val_loss"] for h in one.history if "val_loss" in h], rtol=1e-5)
    bands, bands1 = read_json(run / "band_stats.json"), one.band_stats  # the monitor reads gathered rows and gradients
    np.testing.assert_allclose(bands["norm"], bands1["norm"], rtol=1e-4)
    np.testing.assert_allclose(bands["grad_norm"], bands1["grad_norm"], rtol=1e-3, atol=1e-7)
    model, _, _ = load_checkpoint(run)  # reads the shards directly
    w1 = load_tensors(tmp_path / "r1" / "checkpoint" / "model.safetensors")
    sd = model.state_dict()
    for k in w1:
        torch.testing.assert_close(sd[k], w1[k], rtol=1e-4, atol=1e-5)
    assert (run / "eval.json").is_file()

    # consolidation: a normal checkpoint, equal to the reassembled shards bit for bit, moments included
    out = consolidate(run, tmp_path / "whole")
    verify_checkpoint(out)
    reader = ShardedReader(ckpt)
    whole = load_tensors(out / "model.safetensors")
    assert whole.keys() == reader.full_tensors("model.").keys()
    assert all(torch.equal(whole[k], v) for k, v in reader.full_tensors("model.").items())
    state = load_tensors(out / "train_state.safetensors")
    moments = reader.full_tensors("optim.", strip=False)
    assert moments and all(torch.equal(state[k], v) for k, v in moments.items())
    one_state = load_tensors(tmp_path / "r1" / "checkpoint" / "train_state.safetensors")
    for k, v in moments.items():  # the sharded AdamW moments are the one-process moments
        torch.testing.assert_close(v, one_state[k], rtol=1e-3, atol=1e-6)


@pytest.fixture(scope="module")
def half(straight):
    """The first 10 of the 20 steps, on 2 FSDP ranks."""
    _cli("--nproc", "2", "-o", "half", str(straight / "c.txt"), "max_steps=10", "eval_every=10", *FSDP, cwd=straight)
    return straight / "half"


def _weights_and_moments(ckpt: Path) -> dict[str, torch.Tensor]:
    if (ckpt / "shards.json").is_file():
        r = ShardedReader(ckpt)
        return {**r.full_tensors("model."), **r.full_tensors("optim.", strip=False)}
    state = load_tensors(ckpt / "train_state.safetensors")
    return {**load_tensors(ckpt / "model.safetensors"), **{k: v for k, v in state.items() if k.startswith("optim.")}}


def _assert_same_data_and_close(run: Path, ref: Path) -> None:
    """A resume on another world size: the same data position as ``ref``, weights and moments up to float noise."""
    a, c = _weights_and_moments(ref / "checkpoint"), _weights_and_moments(run / "checkpoint")
    for k in a:
        torch.testing.assert_close(c[k], a[k], rtol=1e-3, atol=1e-5)
    assert (read_json(run / "checkpoint" / "train_state.json")["stream"]
            == read_json(ref / "checkpoint" / "train_state.json")["stream"])


@pytest.mark.slow
def test_resume_on_the_same_world_size_is_bit_exact(straight, half, tmp_path):
    shutil.copytree(half, tmp_path / "split")
    _cli("--nproc", "2", "--resume", "-o", "split", "max_steps=20", cwd=tmp_path)
    a = _weights_and_moments(straight / "straight" / "checkpoint")
    b = _weights_and_moments(tmp_path / "split" / "checkpoint")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # weights and AdamW moments
    # the same resume writing one normal checkpoint (the shards gathered to rank 0) holds the same bits
    shutil.copytree(half, tmp_path / "gathered")
    _cli("--nproc", "2", "--resume", "-o", "gathered", "max_steps=20", "parallel.sharded_checkpoint=false", cwd=tmp_path)
    c = _weights_and_moments(verify_checkpoint(tmp_path / "gathered" / "checkpoint"))
    assert not (tmp_path / "gathered" / "checkpoint" / "shards.json").exists()
    assert all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_one_process_resumes_a_sharded_checkpoint_at_the_same_data(straight, half, tmp_path):
    shutil.copytree(half, tmp_path / "other")
    tok = load_tokenizer(tmp_path / "other" / "data" / "tokenizer")
    train(_config(max_steps=20, eval_every=10), tokenizer=tok, shards=load_shards(tmp_path / "other" / "data", tokenizer=tok),
          out_dir=tmp_path / "other", resume=True, progress=False)  # the rows of both ranks reassembled
    _assert_same_data_and_close(tmp_path / "other", straight / "straight")


@pytest.mark.slow
def test_fsdp_resumes_a_consolidated_checkpoint_bit_exactly(straight, half, tmp_path):
    """A normal checkpoint (here: the consolidated shards of the first 10 steps) gives each FSDP rank its rows."""
    run = tmp_path / "whole"
    shutil.copytree(half, run)
    consolidate(run, tmp_path / "ckpt")
    shutil.rmtree(run / "checkpoint")
    shutil.move(tmp_path / "ckpt", run / "checkpoint")
    _cli("--nproc", "2", "--resume", "-o", "whole", "max_steps=20", cwd=tmp_path)
    a = _weights_and_moments(straight / "straight" / "checkpoint")
    b = _weights_and_moments(run / "checkpoint")
    assert (run / "checkpoint" / "shards.json").is_file()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


UNUSED_SCRIPT = '''
import sys, torch, torch.distributed as dist
from tokembed.artifacts import save_tensors
from tokembed.model import ModelConfig, build_model
from tokembed.training import fsdp

dist.init_process_group("gloo")
rank = dist.get_rank()
model = build_model(ModelConfig(vocab_size=100, d_model=16, n_layers=1, n_heads=2, max_seq_len=16, head="adaptive",
                                cutoffs=[50]), seed=0)
loss_fn = fsdp.wrap(model, world_size=2, device=torch.device("cpu"))
x = torch.arange(16).reshape(2, 8)
y = torch.load(sys.argv[2])[rank * 2:(rank + 1) * 2]  # rank 0: tail-cluster targets only; rank 1: head targets only
loss_fn(x, y).backward()
grads = {n: fsdp.full(p.grad) for n, p in model.named_parameters() if p.grad is not None}
if rank == 0:
    save_tensors(sys.argv[1], grads)
dist.barrier()
dist.destroy_process_group()
'''


def test_a_parameter_that_one_rank_does_not_use_gets_a_zero_gradient_there(tmp_path):
    """Without the loss's 0·Σθ, FSDP's reduce-scatter of the root unit has another size on each rank and gloo aborts
    ("Received data size doesn't match expected size"); with it, the gradients equal one process's."""
    import os
    import subprocess
    import sys

    from tokembed.model import ModelConfig, build_model

    y = torch.cat([torch.full((2, 8), 70), torch.full((2, 8), 3)])  # (B=4, T): rows 0-1 in the tail cluster only
    torch.save(y, tmp_path / "y.pt")
    (tmp_path / "script.py").write_text(UNUSED_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        str(tmp_path / "script.py"), str(tmp_path / "g.safetensors"), str(tmp_path / "y.pt")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-3000:]
    model = build_model(ModelConfig(vocab_size=100, d_model=16, n_layers=1, n_heads=2, max_seq_len=16, head="adaptive",
                                    cutoffs=[50]), seed=0)
    x = torch.arange(16).reshape(2, 8)
    (model.loss(x, y[:2]) / 2 + model.loss(x, y[2:]) / 2).backward()  # the mean of the ranks' mean losses
    got = load_tensors(tmp_path / "g.safetensors")
    for n, p_ in model.named_parameters():
        if p_.grad is not None:
            torch.testing.assert_close(got[n], p_.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_four_fsdp_ranks_resume_a_two_rank_checkpoint_at_the_same_data(straight, half, tmp_path):
    """Each of 4 ranks reads its quarter of the rows from the 2 files that hold halves (another world size)."""
    shutil.copytree(half, tmp_path / "four")
    _cli("--nproc", "4", "--resume", "-o", "four", "max_steps=20", cwd=tmp_path)
    layout = read_json(tmp_path / "four" / "checkpoint" / "shards.json")
    assert layout["world_size"] == 4
    assert [s["rows"] for s in layout["tensors"]["model.embedding.weight"]["shards"]] == [65, 65, 65, 64]
    _assert_same_data_and_close(tmp_path / "four", straight / "straight")
