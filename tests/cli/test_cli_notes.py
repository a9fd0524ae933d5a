"""CLI: the flag a vector-file error names exists, and a vocab the corpus cannot fill is reported."""

import json

from tokembed.cli import main


def test_vectors_encoding_errors_flag(tmp_path, capsys):
    p = tmp_path / "bad.vec"
    p.write_bytes(b"caf\xe9 0.1 0.2\nabc 0.3 0.4\n")
    assert main(["vectors", "info", str(p), "--format", "glove"]) == 2
    err = capsys.readouterr().err
    assert "encoding_errors='replace'" in err and "(encoding_errors: --encoding-errors)" in err
    assert main(["vectors", "info", str(p), "--format", "glove", "--encoding-errors", "replace"]) == 0
    assert json.loads(capsys.readouterr().out)["vectors"] == 2


def test_train_notes_a_vocab_the_corpus_cannot_fill(tmp_path, capsys, small_corpus):
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "50000", "-o", str(out), str(small_corpus)]) == 0
    err = capsys.readouterr().err
    assert "asked for 50000 tokens, the corpus supports" in err


def test_train_vocab_size_error_names_the_config_key(tmp_path, capsys, small_corpus):
    cfg = tmp_path / "c.toml"
    cfg.write_text('tokenizer = "bytebpe"\nvocab_size = 100\nmax_steps = 1\n[model]\nd_model = 16\nn_heads = 2\nn_layers = 1\n')
    assert main(["train", "--config", str(cfg), "-o", str(tmp_path / "run"), str(small_corpus), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pass vocab_size >= 259 (vocab_size: config key or override vocab_size=N)" in err and "--vocab-size" not in err


def test_tokenizer_vocab_size_error_names_the_flag(tmp_path, capsys, small_corpus):
    assert main(["tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "100", "-o", str(tmp_path / "t"), str(small_corpus)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass vocab_size >= 259 (vocab_size: --vocab-size)" in err


def test_study_skip_of_a_misspelt_kind_suggests_the_right_one(tmp_path, capsys):
    from tokembed.corpus import Corpus
    from tokembed.study import StudyConfig, run_study

    cfg = StudyConfig.from_name("tiny", tokenizers=["byte", "bytepe"], designs=["tied"])
    res = run_study(cfg, Corpus(), tmp_path / "s")
    assert any("did you mean 'bytebpe'" in s["reason"] for s in res.skipped)


def test_a_decode_error_names_the_parameter_and_the_cli_its_flag(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff broken\n")
    assert main(["tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "300", "-o", str(tmp_path / "t"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass errors='replace' (errors: --errors)" in err
