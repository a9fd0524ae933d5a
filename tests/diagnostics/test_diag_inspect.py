"""End to end: `inspect` writes a self-contained report, summary.json, plots and the projector export;
bad rows are reported, never fatal; tokembed checkpoints add contextual geometry and verification."""

import json
import re

import numpy as np
import pytest
from conftest import VOCAB, WORDS

from tokembed.cli import main
from tokembed.corpus import Corpus
from tokembed.diagnostics.inspect import InspectConfig, inspect
from tokembed.sources import load_embeddings


@pytest.fixture
def corpus_file(tmp_path):
    p = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS[:8], 6)) + " 42." for _ in range(200)]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_inspect_hf_folder_with_corpus_and_labels(hf_models, corpus_file, tmp_path):
    folder, _ = hf_models["llama_sharded"]
    labels = tmp_path / "pos.csv"
    labels.write_text(
        "token,label\n" + "".join(f"{w},{'N' if i % 2 else 'V'}\n" for i, w in enumerate(VOCAB[10:50])),
        encoding="utf-8",
    )
    out = tmp_path / "rep"
    cfg = InspectConfig(
        corpus=Corpus([str(corpus_file)]),
        labels=str(labels),
        progress=False,
        projector_rows=20,
        tsne=True,
        label_tokens=["fox", "dog"],
    )
    s = inspect(load_embeddings(folder), out, cfg)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Under-trained tokens" in html
    assert not re.search(r'src="(?!data:)', html)  # every image inline: self-contained
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == s
    assert s["source"]["family"] == "llama" and s["source"]["tied"] is False and "geometry_head" in s
    fq = s["frequency"]
    assert fq["corpus"]["lines"] == 200 and fq["never_seen"] > 0 and "[unused0]" in fq["never_seen_examples"]
    ut = s["undertrained"]
    assert ut["main_indicator"] == "head_cosine_to_unused" and ut["reference_size"] >= 5
    assert "[unused0]" in ut["reference_examples"]
    assert any(p["probe"] == "user:pos.csv" for p in s["probes"])
    for name in (
        "pca_classes",
        "pca_frequency",
        "tsne_classes",
        "norms",
        "spectrum",
        "norm_vs_frequency",
        "coherence_vs_frequency",
        "undertrained",
    ):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000, name
    vec = (out / "projector" / "vectors.tsv").read_text().splitlines()
    meta = (out / "projector" / "metadata.tsv").read_text().splitlines()
    assert len(vec) == 20 and len(meta) == 21 and meta[0] == "token\tclass\tcount\tband"
    assert len(vec[0].split("\t")) == 16
    assert "tensor_shape: 20" in (out / "projector" / "projector_config.pbtxt").read_text()
    assert [e["token"] for e in s["neighbours"]] == ["fox", "dog"]


def test_nan_and_inf_rows_are_reported_not_fatal(matrix_folder, tmp_path, capsys):
    d, E = matrix_folder
    E[20] = np.nan  # 'k'
    E[21, 2] = np.inf  # 'l'
    E[22] *= 1e-4  # 'm': tiny norm, the top candidate
    np.save(d / "E.npy", E)
    rc = main(
        ["inspect", str(d / "E.npy"), "--vocab", str(d / "vocab.txt"), "-o", str(tmp_path / "o"), "--no-progress"]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "WARNING: 2 rows hold NaN/Inf (e.g. 'k', 'l')" in out
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["geometry"]["nonfinite_ids"] == [20, 21]
    cands = [c["token"] for c in s["undertrained"]["candidates"]]
    assert cands[0] == "m" and "k" not in cands and "l" not in cands


def test_inspect_cli_json(matrix_folder, tmp_path, capsys):
    d, _ = matrix_folder
    assert (
        main(
            [
                "inspect",
                str(d / "E.npy"),
                "--vocab",
                str(d / "vocab.txt"),
                "-o",
                str(tmp_path / "o"),
                "--json",
                "--projector-rows",
                "0",
            ]
        )
        == 0
    )
    s = json.loads(capsys.readouterr().out)
    assert s["source"]["kind"] == "matrix" and s["headline"] and "projector_rows" not in s["projection"]


def test_inspect_user_error_is_one_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["inspect", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tokembed.training.checkpoint import save_checkpoint
    from tokembed.model import ModelConfig, build_model
    from tokembed.tokenizers import ByteTokenizer
    from tokembed.training.config import TrainConfig

    tok = ByteTokenizer()
    mc = ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_layers=2, n_heads=2, max_seq_len=64, head="tied")
    model = build_model(mc, seed=0)
    d = tmp_path_factory.mktemp("ckpt") / "checkpoint"
    save_checkpoint(d, model=model, tokenizer=tok, config=TrainConfig(model=mc, max_steps=1, seq_len=32))
    return d, model


def test_checkpoint_source_contextual_geometry_and_verification(checkpoint, corpus_file, tmp_path):
    d, model = checkpoint
    src = load_embeddings(d.parent)  # the run folder that holds checkpoint/
    assert (
        src.kind == "checkpoint"
        and src.tied
        and src.output is src.input
        and src.vocab.tokens[:2] == ["<0x00>", "<0x01>"]
    )
    np.testing.assert_array_equal(src.input, model.embedding.weight_matrix().detach().numpy())
    # every ASCII byte but NUL and newline occurs: those two (zero count) form the reference set of unused tokens
    text = corpus_file.read_text() + "".join(chr(c) for c in range(1, 128) if c != 10) + "\n"
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    s = inspect(
        src,
        tmp_path / "o",
        InspectConfig(corpus=Corpus([str(tmp_path / "c.txt")]), progress=False, verify=True, projector_rows=0),
    )
    assert s["undertrained"]["reference_size"] == 2 and s["undertrained"]["main_indicator"] == "head_cosine_to_unused"
    layers = s["contextual"]["layers"]
    assert [r["layer"] for r in layers] == [0, 1, 2] and all(-1 <= r["anisotropy"] <= 1 for r in layers)
    assert layers[0]["types"] > 5
    assert s["undertrained"]["verification"] and all(0 <= v["max_prob"] <= 1 for v in s["undertrained"]["verification"])
    assert "Contextual geometry" in (tmp_path / "o" / "report.html").read_text()
