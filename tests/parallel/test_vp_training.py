"""Vocab-parallel training from the config (tokembed.training.vocab_parallel): `tokembed train --nproc 2
parallel.vocab=true` under torchrun with gloo equals one process with the same global batch; rank 0 writes one
ordinary checkpoint (the gathered table, head, bias and AdamW moments) that a single process loads and resumes;
a resume on the same world size is bit-exact. The in-process tests check the swap and the typed errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tokembed.artifacts import load_tensors, read_json
from tokembed.errors import ConfigError
from tokembed.model import build_model
from tokembed.parallel import VocabParallelEmbedding, VocabParallelHead
from tokembed.tokenizers import load_tokenizer
from tokembed.training import vocab_parallel as vp
from tokembed.training.checkpoint import load_checkpoint, model_tensors, optimizer_to_tensors
from tokembed.training.config import TrainConfig, is_override
from tokembed.training.loop import param_groups, train
from tokembed.training.shards import load_shards

from _train_cli import train_cli, write_corpus
from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

OPTS = ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "model.max_seq_len=32", "seq_len=16",
        "lr=1e-2", "log_every=1", "device=cpu", "warmup_steps=0", "min_lr_ratio=1.0", "label_smoothing=0.1",
        "model.embedding_scale=true"]


def _config(items) -> TrainConfig:
    return TrainConfig.from_file(None, [*OPTS, *items])


# ---------------------------------------------------------------- in process (no process group)


def test_parallel_vocab_is_a_config_key_and_an_override():
    c = _config(["max_steps=2", "parallel.vocab=true"])
    assert c.parallel.vocab and c.to_dict()["parallel"] == {"vocab": True, "fsdp": False, "sharded_checkpoint": None}
    assert TrainConfig.from_dict(c.to_dict()).parallel.vocab
    assert is_override("parallel.vocab=true") and not is_override("parallel.nope=1")
    assert not _config(["max_steps=2"]).parallel.vocab
    with pytest.raises(ConfigError, match="unknown parallel option"):
        TrainConfig.from_dict({**c.to_dict(), "parallel": {"vocab": True, "nope": 1}})


@pytest.mark.parametrize("key, value", [("model.embedding", "hashed"), ("model.embedding", "factorized"),
                                        ("model.embedding", "adaptive"), ("model.head", "adaptive")])
def test_designs_without_a_row_sharded_table_are_refused_naming_the_key_and_the_fix(key, value):
    extra = ["model.rank=4"] if value == "factorized" else []
    _config(["max_steps=2", f"{key}={value}", *extra])  # fine without parallel.vocab
    with pytest.raises(ConfigError, match=rf"parallel.vocab = true .*{key} = '{value}'.*set {key}") as e:
        _config(["max_steps=2", f"{key}={value}", "parallel.vocab=true", *extra])
    assert e.value.param == "parallel.vocab"


@pytest.mark.parametrize("head", ["untied", "tied", "tied_bias"])
def test_the_swap_keeps_the_weights_the_optimizer_order_and_the_checkpoint_layout(head):
    """In one process the VP layers hold every row (+ padding): the swapped model is the same function, its AdamW
    groups list the same parameters in the same order, and full_state/shard_state give the single-process layout."""
    cfg = _config(["max_steps=2", f"model.head={head}", "model.vocab_size=100", "parallel.vocab=true"])
    ref, model = build_model(cfg.model, seed=0), vp.shard_model(build_model(cfg.model, seed=0))
    assert isinstance(model.embedding, VocabParallelEmbedding) and isinstance(model.head, VocabParallelHead)
    assert (model.head.tied is not None) == (head != "untied")
    ids, targets = torch.randint(0, 100, (2, 8)), torch.randint(0, 100, (2, 8))
    a, b = ref.loss(ids, targets, label_smoothing=0.1), model.loss(ids, targets, label_smoothing=0.1)
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    names = {id(p): n for n, p in ref.named_parameters()}
    ref_order = [names[id(p)] for g in param_groups(ref, cfg) for p in g["params"]]
    opts = [torch.optim.AdamW(param_groups(m, cfg)) for m in (ref, model)]
    for m, o in zip((ref, model), opts):  # the same gradient of the same weights: both steps are equal bit for bit
        for p in m.parameters():
            p.grad = p.detach() * 0.5  # (padding rows: zero)
        o.step()
    ref_opt, _ = optimizer_to_tensors(opts[0])
    weights, optim = vp.full_state(model, opts[1], optimizer_to_tensors(opts[1])[0])
    want = model_tensors(ref)
    assert sorted(weights) == sorted(want) and len(ref_order) == len(list(model.parameters()))
    assert sorted(optim) == sorted(ref_opt)
    for k in want:
        assert torch.equal(weights[k], want[k]), k
    for k in ref_opt:
        assert torch.equal(optim[k], ref_opt[k]), k
    # and back: a full checkpoint cut into the rows of this (one-rank) group, padding rows zero
    w2, o2 = vp.shard_state(model, opts[1], weights, optim, where="test")
    emb_rows = model.embedding.weight.shape[0]
    assert w2["embedding.weight"].shape[0] == emb_rows == 128 and not w2["embedding.weight"][100:].any()
    model.load_state_dict(w2, strict=False)
    assert vp.full_parameter_counts(model) == (ref.num_parameters(), ref.embedding_bytes())


# ---------------------------------------------------------------- 2 gloo ranks under torchrun


CASES = {# dropout: every rank draws the same masks (same RNG stream, same full batch) as the one process
         "tied": ["model.head=tied", "batch_size=4", "model.dropout=0.1", "embedding_dropout=0.1"],
         # batch_size=3 on 2 ranks: data-parallel would refuse it; vocab-parallel reads the full batch on every rank;
         # eval_every: the in-training evaluation runs on both ranks (its logits gathered) and lands in history.json
         "untied": ["model.head=untied", "batch_size=3", "eval_every=10"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """20 steps of `tokembed train --nproc 2 parallel.vocab=true` per case (shared by the tests below)."""
    root = tmp_path_factory.mktemp("vptrain")
    corpus = write_corpus(root)
    for name, items in CASES.items():
        train_cli("--nproc", "2", "-o", name, str(corpus), "max_steps=20", "parallel.vocab=true", *OPTS, *items, cwd=root)
    return root


D = 16  # model.d_model


def _assert_close_but_key_bias(got: torch.Tensor, want: torch.Tensor, key: str) -> None:
    """Equal within float noise, except the attention's key bias (``qkv.bias[D:2D]``) in the weights: softmax is
    invariant to it, so its gradient is float noise (~1e-10) that AdamW turns into ±lr steps; it differs by ~1e-5
    between any two orders of float sums (one process against two, or two thread counts)."""
    if key.endswith("attn.qkv.bias"):
        got, want = torch.cat([got[:D], got[2 * D:]]), torch.cat([want[:D], want[2 * D:]])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=lambda m: f"{key}: {m}")


def _single(run: Path, out: Path, items, *, max_steps=20, resume=False):
    tok = load_tokenizer(run / "data" / "tokenizer")
    return train(_config([f"max_steps={max_steps}", *items]), tokenizer=tok, shards=load_shards(run / "data", tokenizer=tok),
                 out_dir=out, progress=False, resume=resume)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_two_vocab_parallel_ranks_train_like_one_process_and_save_its_checkpoint(runs, tmp_path, name):
    run = runs / name
    state = read_json(run / "checkpoint" / "train_state.json")
    assert state["world_size"] == 2 and state["vocab_parallel"] == {"ranks": 2, "padded_vocab": 384}  # 259 -> 384
    one = _single(run, tmp_path / "one", CASES[name])
    two = json.loads((run / "history.json").read_text())
    assert [h["step"] for h in two] == list(range(1, 21))
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([h.get(key, 0.0) for h in two], [h.get(key, 0.0) for h in one.history], rtol=1e-5,
                                   atol=1e-6, err_msg=key)
    assert ("val_loss" in two[9]) == ("eval_every=10" in CASES[name])
    # the checkpoint is the one a single process writes: same keys and shapes, weights and moments within float noise
    for fname in ("model.safetensors", "train_state.safetensors"):
        w1, w2 = load_tensors(tmp_path / "one" / "checkpoint" / fname), load_tensors(run / "checkpoint" / fname)
        assert {k: tuple(v.shape) for k, v in w2.items() if not k.startswith("rng.cpu.rank")} == \
               {k: tuple(v.shape) for k, v in w1.items()}, fname
        for k in w1:
            if not k.startswith("rng"):
                _assert_close_but_key_bias(w2[k], w1[k], k)
    model, _, config = load_checkpoint(run)  # a single process loads it like any other
    assert config.parallel.vocab and model.embedding.weight.shape == (259, 16)
    # the evaluation ran on both ranks and reports what one process reports (and what `tokembed eval` computes)
    ev2, ev1 = read_json(run / "eval.json"), _eval(one, run, CASES[name])
    for key in ("loss", "bits_per_byte", "ece", "accuracy"):
        assert ev2[key] == pytest.approx(ev1[key], rel=1e-5, abs=1e-6), key
    assert ev2["params"] == ev1["params"] and ev2["embedding_bytes"] == ev1["embedding_bytes"]
    assert ev2["n_tokens"] == ev1["n_tokens"]


def _eval(one, run: Path, items) -> dict:
    """The single-process model's evaluation on the run's validation shard (what pipeline/`tokembed eval` compute)."""
    from tokembed.training.evaluate import evaluate

    tok = load_tokenizer(run / "data" / "tokenizer")
    cfg = _config(["max_steps=20", *items])
    return evaluate(one.model, tok, load_shards(run / "data", tokenizer=tok)["val"], seq_len=cfg.seq_len,
                    batch_size=cfg.batch_size).to_dict()


@pytest.mark.slow
def test_resume_is_bit_exact_on_two_ranks_and_a_single_process_resumes_the_same_checkpoint(runs, tmp_path):
    items = CASES["tied"]
    train_cli("--nproc", "2", "-o", "split", str(runs / "c.txt"), "max_steps=10", "parallel.vocab=true", *OPTS, *items,
         cwd=tmp_path)
    shutil.copytree(tmp_path / "split", tmp_path / "other")
    train_cli("--nproc", "2", "--resume", "-o", "split", "max_steps=20", cwd=tmp_path)
    straight = runs / "tied"
    for fname in ("model.safetensors", "train_state.safetensors"):
        a, b = load_tensors(straight / "checkpoint" / fname), load_tensors(tmp_path / "split" / "checkpoint" / fname)
        assert set(a) == set(b)
        assert all(torch.equal(a[k], b[k]) for k in a), fname  # same world size: bit for bit, moments included
    h_a = [h["loss"] for h in json.loads((straight / "history.json").read_text())]
    h_b = [h["loss"] for h in json.loads((tmp_path / "split" / "history.json").read_text())]
    assert h_a == h_b
    # one process resumes the 2-rank checkpoint: the data position is exact, the weights agree up to float noise
    _single(tmp_path / "other", tmp_path / "other", items, resume=True)
    a, c = load_tensors(straight / "checkpoint" / "model.safetensors"), load_tensors(tmp_path / "other" / "checkpoint" / "model.safetensors")
    for k in a:
        _assert_close_but_key_bias(c[k], a[k], k)


def test_gather_cut_clip_and_replica_check_on_two_gloo_ranks(tmp_path):
    """The checkpoint gather is exact (rank 0 gets the single-process tensors, padding stripped), cutting it back
    gives rank 0's shards and moments bit for bit, the clip norm is the single-process norm, and a replica that
    differs on one rank is caught on every rank."""
    from _vp_launch import launch

    launch(Path(__file__).parent / "_vp_train_worker.py", 2, [str(tmp_path)], tmp_path, timeout=60.0)
    ranks = [read_json(tmp_path / f"rank{r}.json") for r in range(2)]
    for head in ("tied_bias", "untied"):
        assert all(r[head]["gathered_exact"] for r in ranks), head
        rows = ranks[0][head]["optim_rows"]  # gathered moments: V = 100 rows, never the padded 128
        assert ranks[0][head]["roundtrip_exact"] and 100 in rows and 128 not in rows, head
        for r in ranks:
            one, two = r[head]["norms"]
            assert two == pytest.approx(one, rel=1e-6), head
            assert r[head]["detected"], head
