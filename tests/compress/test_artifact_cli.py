"""Compressed artifacts load back (every kind), refuse another fingerprint, and the CLI end to end."""

import json

import pytest
import torch

from tokembed.training.checkpoint import load_checkpoint, save_checkpoint
from tokembed.cli import main
from tokembed.compress import load_compressed, save_compressed
from tokembed.compress.apply import CompressOptions, apply_to_model, compress_matrix
from tokembed.errors import ConfigError, FingerprintMismatchError
from tokembed.model import ModelConfig, build_model
from tokembed.tokenizers import ByteTokenizer
from tokembed.training.config import TrainConfig
from tokembed.vocab import Vocab

W = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
COUNTS = torch.floor(100 / torch.arange(1, 301).double())


@pytest.mark.parametrize("method,extra", [("fp16", {}), ("bf16", {}), ("int8", {}), ("int4", {"group_size": 8}),
                                          ("pq", {"M": 4, "nbits": 4, "iters": 3}), ("lowrank", {"rank": 4}),
                                          ("prune", {}), ("trim", {}), ("hash", {"buckets": 16, "iters": 3}),
                                          ("plan", {"M": 4, "nbits": 4})])
def test_every_kind_saves_and_loads_back(tmp_path, method, extra):
    opts = CompressOptions(method=method, **extra)
    ct = compress_matrix(W, opts, counts=COUNTS)
    vocab = Vocab([f"t{i}" for i in range(300)])
    save_compressed(tmp_path / "c", input=ct, fingerprint=vocab.fingerprint, method=method)
    art = load_compressed(tmp_path / "c")
    assert art.meta["tokenizer_fingerprint"] == vocab.fingerprint
    assert torch.equal(art.input.decode(), ct.decode())
    emb = art.embedding()
    ids = torch.tensor([[0, 5, 299]])
    got = emb(ids)[0].detach()
    if method == "lowrank":  # A[i] B vs (A B)[i]: same maths, another summation order
        assert torch.allclose(got, ct.decode()[ids[0]], atol=1e-6)
    else:
        assert torch.equal(got, ct.decode()[ids[0]])
    assert ct.nbytes < W.numel() * 4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    tok = ByteTokenizer()
    out = {}
    for head in ("tied", "untied"):
        mc = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=64, head=head)
        d = tmp_path_factory.mktemp(head) / "checkpoint"
        save_checkpoint(d, model=build_model(mc, seed=0), tokenizer=tok, config=TrainConfig(model=mc, max_steps=1, seq_len=32))
        out[head] = d
    return out


def test_cli_int8_tied_checkpoint_with_eval(checkpoints, tmp_path, small_corpus, capsys):
    out = tmp_path / "c8"
    rc = main(["compress", str(checkpoints["tied"]), "--method", "int8", "-o", str(out), "--eval-corpus",
               str(small_corpus), "--max-eval-tokens", "2000", "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["tied"] is True and "output" not in rep  # tied stays tied: one table
    assert 3.5 < rep["ratio"] < 4.0
    assert rep["input"]["nn_overlap@10"] > 0.9
    assert abs(rep["bits_per_byte"]["change"]) < 0.01
    art = load_compressed(out)
    assert art.tied and art.output is None
    model, tok, _ = load_checkpoint(checkpoints["tied"])
    apply_to_model(art, model)
    assert model.head.table is model.embedding  # QuantizedHead tied to the QuantizedEmbedding
    with torch.no_grad():
        assert model(torch.tensor([tok.encode("hello")])).logits.shape == (1, 5, tok.vocab_size)


def test_cli_untied_and_untie(checkpoints, tmp_path, capsys):
    rc = main(["compress", str(checkpoints["untied"]), "--method", "int4", "--group-size", "16", "-o",
               str(tmp_path / "u"), "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["tied"] is False and "output" in rep
    art = load_compressed(tmp_path / "u")
    assert art.output is not None and art.output_bias is not None
    rc = main(["compress", str(checkpoints["tied"]), "--method", "int8", "--untie", "-o", str(tmp_path / "t"), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep["tied"] is False and "output" in rep


def test_artifact_refuses_a_tokenizer_with_another_fingerprint(checkpoints, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compress", str(checkpoints["tied"]), "--method", "fp16", "-o", str(out), "--json"]) == 0
    capsys.readouterr()
    assert load_compressed(out, tokenizer=ByteTokenizer()).tokenizer.fingerprint == ByteTokenizer().fingerprint

    class Other:
        fingerprint = "f" * 64
        vocab_size = 259

    with pytest.raises(FingerprintMismatchError, match="fingerprint"):
        load_compressed(out, tokenizer=Other())


def test_cli_trim_needs_counts_and_bad_options_exit_2(checkpoints, tmp_path, capsys, small_corpus):
    rc = main(["compress", str(checkpoints["untied"]), "--method", "trim", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 0 or "counts" in err  # an untrained checkpoint has no training counts
    rc = main(["compress", str(checkpoints["untied"]), "--method", "trim", "--corpus", str(small_corpus),
               "-o", str(tmp_path / "tr"), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and any("fallback" in n for n in rep["notes"])
    rc = main(["compress", str(checkpoints["untied"]), "--method", "lowrank", "--rank", "99", "-o", str(tmp_path / "y")])
    assert rc == 2 and "rank=99" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="method='zip'"):
        CompressOptions(method="zip")
