import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tokembed.artifacts import load_tensors, read_json
from tokembed.cli import main
from tokembed.training.shards import build_shards
from tokembed.errors import ConfigError, FingerprintMismatchError, NonFiniteError
from tokembed.model import ModelConfig
from tokembed.tokenizers import ByteTokenizer
from tokembed.metrics import frequency_bands
from tokembed.training.checkpoint import load_checkpoint
from tokembed.training.config import TrainConfig
from tokembed.training.loop import param_groups, train

from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


SRC = str(Path(__file__).resolve().parents[1] / "src")


def corpus_docs(n=120):
    return [f"Document {i}: the quick brown fox {i * 7} jumps over the lazy dog.\nLine {i % 5}.\n" for i in range(n)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return build_shards(ByteTokenizer(), corpus_docs(), tmp_path_factory.mktemp("shards"), val_fraction=0.1, workers=1)


def tiny(**kw):
    model = ModelConfig(vocab_size=0, d_model=16, n_layers=1, n_heads=2, max_seq_len=32)
    base = dict(model=model, seq_len=16, batch_size=4, max_steps=12, warmup_steps=3, lr=1e-2)
    return TrainConfig(**{**base, **kw})


def weights(run):
    return load_tensors(Path(run) / "checkpoint" / "model.safetensors")


def test_config_from_toml_yaml_and_overrides(tmp_path):
    (tmp_path / "a.toml").write_text('seq_len = 32\nmax_steps = 5\n[model]\nd_model = 64\npositional = "alibi"\n')
    c = TrainConfig.from_file(tmp_path / "a.toml", ["model.n_layers=3", "lr=1e-3", "head_lr=2e-3"])
    assert (c.seq_len, c.max_steps, c.model.d_model, c.model.positional, c.model.n_layers, c.lr, c.head_lr) == (
        32, 5, 64, "alibi", 3, 1e-3, 2e-3)
    (tmp_path / "b.yaml").write_text("max_bytes: 1000\nmodel:\n  head: tied\n")
    c = TrainConfig.from_file(tmp_path / "b.yaml")
    assert c.max_bytes == 1000 and c.model.head == "tied"
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_file(tmp_path / "b.yaml", ["learning_rate=1"])
    with pytest.raises(ConfigError, match="no budget"):
        TrainConfig.from_file(None)
    with pytest.raises(ConfigError, match="invalid TOML"):
        (tmp_path / "bad.toml").write_text("seq_len = = 3")
        TrainConfig.from_file(tmp_path / "bad.toml")


def test_param_groups_cover_every_parameter_once_with_own_lr_and_decay():
    from tokembed.model import build_model

    cfg = tiny(embedding_lr=1e-3, embedding_weight_decay=0.01, head_lr=5e-3, head_weight_decay=0.2)
    cfg.model.vocab_size = 259
    for head in ("untied", "tied"):
        cfg.model.head = head
        m = build_model(cfg.model)
        groups = {g["name"]: g for g in param_groups(m, cfg)}
        ids = [id(p) for g in groups.values() for p in g["params"]]
        assert len(ids) == len(set(ids)) == len(list(m.parameters()))
        assert groups["embedding"]["params"] == [m.embedding.weight]
        assert (groups["embedding"]["lr"], groups["embedding"]["weight_decay"]) == (1e-3, 0.01)
        if head == "untied":
            assert groups["head"]["params"] == [m.head.proj.weight] and groups["head"]["lr"] == 5e-3
            assert groups["head"]["weight_decay"] == 0.2 and groups["head.no_decay"]["weight_decay"] == 0.0
        else:
            assert "head" not in groups  # the tied table is trained once, in the embedding group
        assert all(p.ndim < 2 for p in groups["other.no_decay"]["params"])
        assert groups["other"]["weight_decay"] == cfg.weight_decay


def test_frequency_bands_are_decades():
    band_of, bands = frequency_bands(np.array([0, 0, 1, 9, 10, 99, 100, 12345]))
    assert band_of.tolist() == [0, 0, 1, 1, 2, 2, 3, 4]
    assert [(b["lo"], b["hi"], b["n_types"], b["count"]) for b in bands] == [
        (0, 0, 2, 0), (1, 9, 2, 10), (10, 99, 2, 109), (100, 999, 1, 100), (10000, 99999, 1, 12345)]


def test_training_lowers_loss_and_writes_the_run(tmp_path, shards):
    r = train(tiny(max_steps=30, log_every=5, eval_every=15), tokenizer=ByteTokenizer(), shards=shards,
              out_dir=tmp_path, progress=False)
    assert [h["step"] for h in r.history] == [5, 10, 15, 20, 25, 30]
    assert r.history[-1]["loss"] < r.history[0]["loss"] < math.log(259) + 0.5
    assert "val_bpb" in r.history[2] and r.history[2]["val_bpb"] > 0
    assert r.tokens == 30 * 4 * 16
    for f in ("history.json", "band_stats.json", "bands.png", "run_config.json", "checkpoint/model.safetensors",
              "checkpoint/config.json", "checkpoint/tokenizer/tokembed.json", "checkpoint/train_state.json"):
        assert (tmp_path / f).is_file(), f
    bs = read_json(tmp_path / "band_stats.json")
    assert len(bs["steps"]) == 6 and len(bs["mean_norm"]) == len(bs["bands"]) == len(bs["mean_grad_norm"])
    assert bs["bands"][0]["name"] == "0" and bs["mean_grad_norm"][0] == 0.0  # unseen ids get no gradient (untied head)
    model, tok, cfg = load_checkpoint(tmp_path)
    assert cfg.model.vocab_size == 259 and tok.fingerprint == ByteTokenizer().fingerprint
    assert int(model.token_counts.sum()) == len(shards["train"])


def test_max_bytes_budget_sets_the_step_count(tmp_path, shards):
    bpt = shards["train"].bytes_per_token
    r = train(tiny(max_steps=None, max_bytes=1000), tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp_path,
              progress=False)
    assert r.steps == math.ceil(1000 / (4 * 16 * bpt))
    assert r.bytes >= 1000 > r.bytes - 4 * 16 * bpt


class Crash(Exception):
    pass


def test_resume_in_process_is_exact(tmp_path, shards):
    tok = ByteTokenizer()
    cfg = dict(checkpoint_every=6, embedding_dropout=0.1)
    train(tiny(**cfg), tokenizer=tok, shards=shards, out_dir=tmp_path / "a", progress=False)

    def crash(step, model):
        if step == 8:  # after the step-6 checkpoint: steps 7 and 8 are lost, as in a real crash
            raise Crash

    with pytest.raises(Crash):
        train(tiny(**cfg), tokenizer=tok, shards=shards, out_dir=tmp_path / "b", progress=False, callbacks=[crash])
    assert read_json(tmp_path / "b/checkpoint/train_state.json")["step"] == 6
    r = train(tiny(**cfg), tokenizer=tok, shards=shards, out_dir=tmp_path / "b", resume=True, progress=False)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = load_tensors(tmp_path / "a/checkpoint/train_state.safetensors")
    sb = load_tensors(tmp_path / "b/checkpoint/train_state.safetensors")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["loss"] for h in r.history] == [h["loss"] for h in read_json(tmp_path / "a/history.json")]
    with pytest.raises(ConfigError, match="config changed"):
        train(tiny(lr=0.5), tokenizer=tok, shards=shards, out_dir=tmp_path / "b", resume=True, progress=False)


def test_non_finite_embedding_row_stops_and_keeps_last_good_checkpoint(tmp_path, shards):
    def poison(step, model):
        if step == 8:
            with torch.no_grad():
                model.embedding.weight[[3, 77]] = float("nan")

    with pytest.raises(NonFiniteError, match=r"TokenEmbedding.weight has non-finite rows \[3, 77\] .* after step 8"):
        train(tiny(checkpoint_every=4), tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp_path, progress=False,
              callbacks=[poison])
    state = read_json(tmp_path / "checkpoint/train_state.json")
    assert state["step"] == 4  # the checkpoint due at step 8 was not written
    assert all(torch.isfinite(t).all() for t in weights(tmp_path).values() if t.is_floating_point())


def test_non_finite_loss_names_the_step(tmp_path, shards):
    def poison(step, model):
        if step == 2:
            with torch.no_grad():
                model.blocks[0].mlp.fc.weight.fill_(float("inf"))

    with pytest.raises(NonFiniteError, match="loss is nan at step 3"):
        train(tiny(), tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp_path, progress=False, callbacks=[poison])


def test_checkpoint_with_other_tokenizer_is_refused(tmp_path, shards):
    train(tiny(max_steps=2), tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp_path, progress=False)
    other = ByteTokenizer(special_tokens={"pad": "[PAD]", "eos": "[EOS]"})
    with pytest.raises(FingerprintMismatchError, match="remap"):
        load_checkpoint(tmp_path, tokenizer=other)
    with pytest.raises(FingerprintMismatchError):
        train(tiny(), tokenizer=other, shards=shards, out_dir=tmp_path / "x", progress=False)


def write_run_inputs(tmp_path, max_steps, checkpoint_every):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(corpus_docs(60)) + "\n", encoding="utf-8")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        f"seq_len = 16\nbatch_size = 4\nmax_steps = {max_steps}\ncheckpoint_every = {checkpoint_every}\n"
        "warmup_steps = 3\nlr = 0.01\nembedding_dropout = 0.1\n"
        "[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\nmax_seq_len = 32\ndropout = 0.1\n"
    )
    return corpus, cfg


def test_cli_train_then_eval(tmp_path, capsys):
    corpus, cfg = write_run_inputs(tmp_path, 6, 0)
    rc = main(["train", "--config", str(cfg), "model.positional=alibi", "-o", str(tmp_path / "run"), str(corpus),
               "--quiet", "--workers", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 6 and out["val_bits_per_byte"] > 0
    assert read_json(tmp_path / "run/run_config.json")["model"]["positional"] == "alibi"
    assert (tmp_path / "run/config_source.toml").is_file() and (tmp_path / "run/reliability.png").is_file()
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["bits_per_byte"] == pytest.approx(out["val_bits_per_byte"])
    # resume without --config reads the run's own config; a longer budget extends the run
    assert main(["train", "--resume", "-o", str(tmp_path / "run"), "max_steps=8", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 8
    assert main(["train", "--resume", "-o", str(tmp_path / "run"), "lr=0.5", "--quiet"]) == 2
    assert "config changed (lr" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_subprocess_resumes_bit_identically(tmp_path):
    corpus, cfg = write_run_inputs(tmp_path, 150, 5)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}

    def cmd(run, *extra):
        return [sys.executable, "-m", "tokembed", "train", "--config", str(cfg), "-o", str(run), str(corpus),
                "--quiet", "--workers", "1", *extra]

    subprocess.run(cmd(tmp_path / "straight"), env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "checkpoint" / "train_state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # really killed mid-run
    step_at_kill = read_json(state)["step"] if state.exists() else None
    assert step_at_kill is not None and step_at_kill < 150
    subprocess.run(cmd(killed, "--resume"), env=env, check=True, capture_output=True)
    a, b = weights(tmp_path / "straight"), weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "straight/checkpoint/model.safetensors").read_bytes() == (killed / "checkpoint/model.safetensors").read_bytes()
    assert read_json(killed / "checkpoint/train_state.json")["step"] == 150


@pytest.mark.parametrize("design", [dict(embedding="factorized", rank=4, head="tied"),
                                    dict(embedding="hashed", head="tied_bias", extra={"num_buckets": 32}),
                                    dict(embedding="adaptive", head="adaptive_tied", cutoffs=[8, 32])])
def test_every_design_trains_and_reloads(tmp_path, shards, design):
    cfg = tiny(max_steps=3)
    for k, v in design.items():
        setattr(cfg.model, k, v)
    r = train(cfg, tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp_path, progress=False)
    assert all(math.isfinite(h["loss"]) for h in r.history)
    model, _, _ = load_checkpoint(tmp_path)
    saved = weights(tmp_path)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    if design["embedding"] == "adaptive":  # frequency order rebuilt from the saved training counts
        assert model.embedding.order[0].item() == int(np.argmax(np.bincount(shards["train"].tokens, minlength=259)))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_autocast_trains_and_checkpoints_on_cpu_loadable_weights(tmp_path, shards):
    r = train(tiny(max_steps=4, device="cuda"), tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp_path, progress=False)
    assert all(math.isfinite(h["loss"]) for h in r.history)
    model, _, _ = load_checkpoint(tmp_path, device="cpu")
    assert next(model.parameters()).device.type == "cpu"


@given(st.integers(0, 500), st.integers(1, 500), st.integers(0, 50), st.floats(0.0, 1.0))
def test_lr_multiplier_stays_between_min_and_peak(step, total, warmup, min_ratio):
    from tokembed.training.loop import lr_multiplier

    step = step % total  # steps 0 .. total-1
    m = lr_multiplier(step, total_steps=total, warmup_steps=warmup, min_lr_ratio=min_ratio)
    assert 0.0 <= m <= 1.0 + 1e-12
    if step < warmup:
        assert m == (step + 1) / warmup
    else:
        assert m >= min_ratio - 1e-12
    if total > warmup and step == total - 1:
        assert m == pytest.approx(min_ratio if total - 1 > warmup else 1.0)
