"""`neighbors`, `inspect` and `eval` read compressed artifacts directly (int8, int4, PQ), with expected answers.

A byte-level BPE tokenizer trained here, a tiny model trained here for a few AdamW steps (tied and
untied head), `tokembed compress` on it; then each command on the artifact must give what it gives on
the dense dequantized table: the same neighbours, the same inspect geometry, the same eval loss.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tokembed
from tokembed.cli import main
from tokembed.compress import load_compressed
from tokembed.compress.reader import CompressedSource, RowDecoder, load_compressed_model
from tokembed.corpus import Corpus
from tokembed.diagnostics.neighbors import neighbors_of, topk_cosine, topk_cosine_decoded
from tokembed.sources import load_embeddings
from tokembed.tokenizers import train_tokenizer

QUERIES = ["Ġthe", "Ġand", "Ġof", "Ġa"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tokenizer, two trained checkpoints (tied, untied) and their int8 / int4 / PQ artifacts."""
    from tokembed.model import ModelConfig, build_model
    from tokembed.training.checkpoint import save_checkpoint
    from tokembed.training.config import TrainConfig

    root = tmp_path_factory.mktemp("readers")
    text = tokembed.default_corpus_path().read_text(encoding="utf-8", errors="replace")[:60_000]
    (root / "train.txt").write_text(text, encoding="utf-8")
    (root / "eval.txt").write_text(text[-8_000:], encoding="utf-8")
    tok = train_tokenizer("bytebpe", Corpus([str(root / "train.txt")]), 400, progress=False)
    ids = torch.tensor(tok.encode(text[:20_000])[: 64 * 33]).view(-1, 64)
    ckpts = {}
    for head in ("tied", "untied"):
        mc = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=64, head=head)
        model = build_model(mc, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(12):  # trained here: a few steps on the text
            batch = ids[step % len(ids) : step % len(ids) + 4]
            opt.zero_grad()
            model.loss(batch[:, :-1], batch[:, 1:]).backward()
            opt.step()
        ckpts[head] = save_checkpoint(root / head / "checkpoint", model=model, tokenizer=tok,
                                      config=TrainConfig(model=mc, max_steps=12, seq_len=32))
    arts = {}
    for name, head, flags in (("int8", "tied", ["--method", "int8"]),
                              ("int4", "untied", ["--method", "int4", "--group-size", "16"]),
                              ("pq", "tied", ["--method", "pq", "--M", "8", "--nbits", "4"])):
        out = root / f"art-{name}"
        assert main(["compress", str(ckpts[head]), *flags, "-o", str(out), "--json"]) == 0
        arts[name] = out
    return {"root": root, "tok": tok, "ckpt": ckpts, "art": arts, "head": {"int8": "tied", "int4": "untied", "pq": "tied"}}


def _dense_copy(world, name: str, matrix: str = "input"):
    """The artifact's table decoded once (the reference path: the codec's own ``decode``) as a .npy + vocab."""
    art = load_compressed(world["art"][name])
    table = art.input if matrix == "input" or art.tied else art.output
    path = world["root"] / f"dense-{name}-{matrix}.npy"
    np.save(path, table.decode().numpy())
    return path, world["art"][name] / "tokenizer"


def _json_out(capsys, argv) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["int8", "int4", "pq"])
def test_neighbors_cli_equals_the_dense_dequantized_table(world, name, capsys):
    matrices = ["input", "output"]
    for matrix in matrices:
        got = _json_out(capsys, ["neighbors", str(world["art"][name]), *QUERIES, "-k", "8", "--matrix", matrix, "--json"])
        npy, vocab = _dense_copy(world, name, matrix)
        want = _json_out(capsys, ["neighbors", str(npy), "--vocab", str(vocab), *QUERIES, "-k", "8", "--json"])
        for q in QUERIES:
            assert [n["id"] for n in got[q]] == [n["id"] for n in want[q]], (name, matrix, q)
            assert np.allclose([n["cosine"] for n in got[q]], [n["cosine"] for n in want[q]], atol=1e-6)
            assert len(got[q]) == 8 and got[q][0]["token"] != q


def test_neighbors_decode_blocks_never_the_whole_table(world):
    src = load_embeddings(world["art"]["int4"])
    assert isinstance(src, CompressedSource) and src.kind == "compressed" and src.shape == (world["tok"].vocab_size, 32)
    res = neighbors_of(src, QUERIES, k=5, matrix="output")
    assert src._decoded == {}  # neither table was decoded whole: queries and blocks only
    dense = load_compressed(world["art"]["int4"]).output.decode().numpy()
    ids = [src.vocab[q] for q in QUERIES]
    want, _ = topk_cosine(dense, dense[ids], k=5, exclude=[[i] for i in ids])
    assert [[n.id for n in res[q]] for q in QUERIES] == want.tolist()
    # blocks of 7 rows (many partial blocks) give the same answer as the whole table at once
    dec = src.decoder("output")
    small, _ = topk_cosine_decoded(dec, dec.rows(ids), k=5, exclude=[[i] for i in ids], block_rows=7)
    assert small.tolist() == want.tolist()
    assert sum(1 for _ in dec.blocks(7)) == -(-dec.shape[0] // 7)


def test_row_decoder_matches_the_codec_decode(world):
    for name in ("int8", "int4", "pq"):
        art = load_compressed(world["art"][name])
        dec = RowDecoder(art.input)
        full = art.input.decode().numpy()
        assert np.array_equal(dec.decode_all(), full)
        assert np.array_equal(dec.rows([3, 0, 399]), full[[3, 0, 399]])


@pytest.mark.parametrize("name", ["int8", "int4", "pq"])
def test_inspect_cli_on_an_artifact_equals_the_dense_table(world, name, tmp_path, capsys):
    common = ["--json", "--no-progress", "--projector-rows", "0", "--seed", "0"]
    got = _json_out(capsys, ["inspect", str(world["art"][name]), "-o", str(tmp_path / "a"), *common])
    npy, vocab = _dense_copy(world, name)
    want = _json_out(capsys, ["inspect", str(npy), "--vocab", str(vocab), "-o", str(tmp_path / "d"), *common])
    assert got["source"]["kind"] == "compressed" and got["source"]["compression"]["method"] == name
    assert got["source"]["has_output_head"] is True and got["source"]["tied"] is (world["head"][name] == "tied")
    if world["head"][name] == "untied":  # the head table is measured too: as the dense decoded head matrix
        npy_out, _ = _dense_copy(world, name, "output")
        head = _json_out(capsys, ["inspect", str(npy_out), "--vocab", str(vocab), "-o", str(tmp_path / "h"), *common])
        assert got["geometry_head"]["anisotropy"] == pytest.approx(head["geometry"]["anisotropy"], rel=1e-5, abs=1e-6)
    for key in ("anisotropy", "effective_rank", "isoscore"):
        assert got["geometry"][key] == pytest.approx(want["geometry"][key], rel=1e-5, abs=1e-6), key
    assert (tmp_path / "a" / "report.html").is_file()


@pytest.mark.parametrize("name", ["int8", "int4", "pq"])
def test_eval_cli_loss_equals_the_dequantized_model(world, name, capsys):
    from tokembed.training.checkpoint import load_checkpoint
    from tokembed.training.evaluate import evaluate

    ckpt = world["ckpt"][world["head"][name]]
    eval_txt = str(world["root"] / "eval.txt")
    got = _json_out(capsys, ["eval", str(world["art"][name]), "--model", str(ckpt), "--corpus", eval_txt,
                             "--max-tokens", "1500", "--seq-len", "32", "--json"])
    art = load_compressed(world["art"][name])
    model, tok, _ = load_checkpoint(ckpt)  # the dense model with the decoded tables copied in
    with torch.no_grad():
        model.embedding.weight.copy_(art.input.decode())
        if art.output is not None:
            model.head.proj.weight.copy_(art.output.decode())
    want = evaluate(model.eval(), tok, Corpus([eval_txt]), seq_len=32, max_tokens=1500)
    plain = evaluate(load_checkpoint(ckpt)[0].eval(), tok, Corpus([eval_txt]), seq_len=32, max_tokens=1500)
    assert got["n_tokens"] == want.n_tokens
    assert got["loss"] == pytest.approx(want.loss, abs=1e-5)
    assert got["loss"] != plain.loss  # the compressed tables really served the model
    assert got["embedding_bytes"] == art.input.nbytes + (art.output.nbytes if art.output is not None else 0) + (
        art.output_bias.numel() * 4 if art.output_bias is not None else 0)
    model2, *_ = load_compressed_model(world["art"][name], ckpt)
    assert type(model2.embedding).__name__ != "TokenEmbedding"


def test_eval_of_an_artifact_needs_its_checkpoint(world, capsys, tmp_path):
    capsys.readouterr()
    assert main(["eval", str(world["art"]["int8"]), "--corpus", str(world["root"] / "eval.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--model CHECKPOINT" in err and len(err.splitlines()) == 1
    assert main(["eval", str(world["ckpt"]["tied"]), "--model", str(world["ckpt"]["tied"])]) == 2
    # the tied model's artifact on the untied checkpoint (same vocabulary and shape): its head would be replaced
    capsys.readouterr()
    assert main(["eval", str(world["art"]["int8"]), "--model", str(world["ckpt"]["untied"]), "--corpus",
                 str(world["root"] / "eval.txt")]) == 2
    assert "UntiedHead" in capsys.readouterr().err
    # the untied model's artifact on the tied checkpoint: its own head table serves the tied model (works)
    assert main(["eval", str(world["art"]["int4"]), "--model", str(world["ckpt"]["tied"]), "--corpus",
                 str(world["root"] / "eval.txt"), "--max-tokens", "300"]) == 0
    # another vocabulary is refused by its fingerprint
    from tokembed.model import ModelConfig, build_model
    from tokembed.tokenizers import ByteTokenizer
    from tokembed.training.checkpoint import save_checkpoint
    from tokembed.training.config import TrainConfig

    other = ByteTokenizer()
    mc = ModelConfig(vocab_size=other.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    ck = save_checkpoint(tmp_path / "other", model=build_model(mc, seed=0), tokenizer=other,
                         config=TrainConfig(model=mc, max_steps=1, seq_len=32))
    capsys.readouterr()
    assert main(["eval", str(world["art"]["int8"]), "--model", str(ck), "--corpus", str(world["root"] / "eval.txt")]) == 2
    assert "fingerprint" in capsys.readouterr().err


def _copy_art(world, name, tmp_path):
    import shutil

    dst = tmp_path / f"bad-{name}"
    shutil.copytree(world["art"][name], dst)
    return dst


@pytest.mark.parametrize("edit", ["shape", "kind", "codes"])
def test_hostile_artifacts_give_typed_errors_in_every_reader(world, tmp_path, capsys, edit):
    from safetensors.torch import load_file, save_file

    bad = _copy_art(world, "pq", tmp_path)
    meta = json.loads((bad / "compression.json").read_text())
    if edit == "shape":
        meta["shape"] = [10**12, 32]
    elif edit == "kind":
        meta["input"]["kind"] = "pickle"
    (bad / "compression.json").write_text(json.dumps(meta))
    if edit == "codes":  # PQ codes past the codebook: would index out of bounds
        ts = load_file(str(bad / "compressed.safetensors"))
        key = next(k for k in ts if k.startswith("input.codes"))
        ts[key] = torch.full_like(ts[key], 255)
        save_file(ts, str(bad / "compressed.safetensors"), metadata={"format": "tokembed-compressed"})
    for argv in (["neighbors", str(bad), "Ġthe"], ["inspect", str(bad), "-o", str(tmp_path / "o"), "--no-progress"],
                 ["eval", str(bad), "--model", str(world["ckpt"]["tied"]), "--corpus", str(world["root"] / "eval.txt")]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error:" in err and ("corrupt" in err or "edited" in err or "not" in err)
    assert not (tmp_path / "o").exists()


def test_artifact_without_tokenizer_needs_vocab(world, tmp_path, capsys):
    import shutil

    bad = _copy_art(world, "int8", tmp_path)
    shutil.rmtree(bad / "tokenizer")
    capsys.readouterr()
    assert main(["neighbors", str(bad), "Ġthe"]) == 2
    assert "--vocab" in capsys.readouterr().err
    got = _json_out(capsys, ["neighbors", str(bad), "--vocab", str(world["art"]["int8"] / "tokenizer"), "Ġthe", "--json"])
    assert len(got["Ġthe"]) == 10
    capsys.readouterr()
    from tokembed.tokenizers import ByteTokenizer

    ByteTokenizer().save(tmp_path / "bytetok")
    assert main(["neighbors", str(bad), "--vocab", str(tmp_path / "bytetok"), "Ġthe"]) == 2  # another vocabulary


def test_hf_folder_with_padding_rows(world, tmp_path, capsys):
    """An artifact of a Hugging Face folder whose table has more rows than its tokenizer: rows named <row_i>."""
    transformers = pytest.importorskip("transformers")
    tok = world["tok"]
    cfg = transformers.GPT2Config(vocab_size=tok.vocab_size + 13, n_embd=32, n_layer=1, n_head=2, n_positions=64)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text(tok.engine.to_str(), encoding="utf-8")
    assert main(["compress", str(tmp_path / "m"), "--method", "int8", "-o", str(tmp_path / "a"), "--json"]) == 0
    got = _json_out(capsys, ["neighbors", str(tmp_path / "a"), "Ġthe", f"<row_{tok.vocab_size + 2}>", "-k", "5", "--json"])
    src = load_embeddings(tmp_path / "a")
    assert src.shape == (tok.vocab_size + 13, 32) and src.vocab.token(tok.vocab_size) == f"<row_{tok.vocab_size}>"
    dense = load_compressed(tmp_path / "a").input.decode().numpy()
    q = [src.vocab["Ġthe"]]
    want, _ = topk_cosine(dense, dense[q], k=5, exclude=[q])
    assert [n["id"] for n in got["Ġthe"]] == want[0].tolist()


def test_a_tokenizer_link_out_of_the_artifact_is_refused(world, tmp_path, capsys):
    import shutil

    bad = _copy_art(world, "int8", tmp_path)
    shutil.move(str(bad / "tokenizer"), str(tmp_path / "elsewhere"))
    (bad / "tokenizer").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    capsys.readouterr()
    assert main(["neighbors", str(bad), "Ġthe"]) == 2
    assert "outside the artifact folder" in capsys.readouterr().err


@pytest.mark.parametrize("method,extra", [("fp16", {}), ("lowrank", {"rank": 4}), ("prune", {}), ("trim", {}),
                                          ("hash", {"buckets": 16, "iters": 3}), ("plan", {"M": 4, "nbits": 4})])
def test_every_other_codec_reads_through_the_decoder(tmp_path, method, extra):
    from tokembed.compress import save_compressed
    from tokembed.compress.apply import CompressOptions, compress_matrix
    from tokembed.tokenizers import ByteTokenizer

    tok = ByteTokenizer()
    W = torch.randn(tok.vocab_size, 16, generator=torch.Generator().manual_seed(0))
    counts = torch.floor(100 / torch.arange(1, tok.vocab_size + 1).double())
    ct = compress_matrix(W, CompressOptions(method=method, **extra), counts=counts)
    save_compressed(tmp_path / "a", input=ct, tokenizer=tok, method=method)
    src = load_embeddings(tmp_path / "a")
    ids = [src.vocab["<0x61>"], src.vocab["<0x20>"]]
    res = neighbors_of(src, ["<0x61>", "<0x20>"], k=4)
    assert src._decoded == {}
    dense = ct.decode().numpy()
    want, _ = topk_cosine(dense, dense[ids], k=4, exclude=[[i] for i in ids])
    assert [[n.id for n in res[t]] for t in ("<0x61>", "<0x20>")] == want.tolist()
    assert np.allclose(src.input, dense, atol=1e-5)
    assert np.array_equal(src.input, dense) or method == "lowrank"  # A[i] B vs (A B)[i]: another summation order
