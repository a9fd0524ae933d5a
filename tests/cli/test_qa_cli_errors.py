"""User errors found by walking through the docs as a new user: each must be one line on
stderr and exit code 2 (no traceback), naming the value and the fix."""

import pytest

from tokembed.cli import main


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize(
    ("kind", "option", "bad"),
    [("bytebpe", ["--option", "nosuch=1"], "nosuch"), ("wordpiece", ["--option", "nosuch=1"], "nosuch"),
     ("bytebpe", ["--lowercase"], "lowercase")],
)  # fmt: skip
def test_train_unknown_option_is_one_line(tmp_path, capsys, small_corpus, kind, option, bad):
    rc, _, err = _run(capsys, "tokenizer", "train", "--kind", kind, "--vocab-size", "300", *option,
                      "-o", str(tmp_path / "t"), str(small_corpus))  # fmt: skip
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert f"unknown option(s) ['{bad}']" in err and "min_frequency" in err and not (tmp_path / "t").exists()


@pytest.mark.parametrize("kind", ["unigram", "bytebpe", "wordpiece", "char"])
@pytest.mark.parametrize("value", ["5", '["<pad>"]', '{"pad": 3}', '{"pad": ""}'])
def test_train_malformed_special_tokens_is_one_line(tmp_path, capsys, small_corpus, kind, value):
    rc, _, err = _run(capsys, "tokenizer", "train", "--kind", kind, "--vocab-size", "400", "--option",
                      f"special_tokens={value}", "-o", str(tmp_path / "t"), str(small_corpus))  # fmt: skip
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "special_tokens=" in err and "role" in err


@pytest.mark.parametrize(
    ("config", "overrides", "expect"),
    [('[model]\nd_model = "big"\n', [], "model.d_model='big' must be an integer"),
     ("max_steps = 5\n[model]\nd_model = 64\n", ["max_steps=abc"], "max_steps='abc' must be an integer"),
     ("max_steps = 5\n[model]\nn_heads = 0\n", [], "n_heads=0 must be >= 1"),
     ("max_steps = 5\nlr = \"fast\"\n[model]\nd_model = 64\n", [], "lr='fast' must be a number"),
     ("max_steps = 5\n[model]\nd_ff = 2.5\n", [], "model.d_ff=2.5 must be an integer")],
)  # fmt: skip
def test_train_config_wrong_type_is_one_line(tmp_path, capsys, small_corpus, config, overrides, expect):
    (tmp_path / "c.toml").write_text(config)
    rc, _, err = _run(capsys, "train", "--config", str(tmp_path / "c.toml"), "-o", str(tmp_path / "run"), *overrides,
                      str(small_corpus))  # fmt: skip
    assert rc == 2 and len(err.strip().splitlines()) == 1 and expect in err, err


def test_train_config_types_accept_valid_values():
    from tokembed.training.config import TrainConfig

    c = TrainConfig.from_dict({"max_steps": 3, "lr": 1, "betas": [0.9, 0.99], "eval_tokens": None,
                               "model": {"d_model": 32, "n_heads": 2, "cutoffs": [4, 8], "head_bias": False}})  # fmt: skip
    assert c.lr == 1 and c.betas == (0.9, 0.99) and c.model.cutoffs == [4, 8] and c.model.head_bias is False


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small_corpus_module):
    out = tmp_path_factory.mktemp("qa_run") / "run"
    (out.parent / "c.toml").write_text("max_steps = 2\nseq_len = 16\nbatch_size = 2\n[model]\nd_model = 16\nn_layers = 1\n"
                                       "n_heads = 2\nmax_seq_len = 16\n")  # fmt: skip
    assert main(["train", "--config", str(out.parent / "c.toml"), "-o", str(out), "--quiet", "--workers", "1",
                 str(small_corpus_module)]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def small_corpus_module(tmp_path_factory):
    p = tmp_path_factory.mktemp("qa_corpus") / "c.txt"
    p.write_text("".join(f"The quick brown fox {i} jumps over the lazy dog.\n\n" for i in range(60)))
    return p


@pytest.mark.parametrize(
    ("argv", "expect"),
    [(["--batch-size", "0"], "--batch-size 0; pass a positive number"),
     (["--max-tokens", "-5"], "--max-tokens -5; pass a positive number"),
     (["--seq-len", "0"], "--seq-len 0; pass a positive number"),
     (["--device", "nonsense"], "device='nonsense' is not a device"),
     (["--device", "cuda:99"], "device")],
)  # fmt: skip
def test_eval_bad_arguments_are_one_line(tiny_run, capsys, argv, expect):
    import torch

    if argv[-1].startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA present: cuda:99 may be a different error")
    rc, _, err = _run(capsys, "eval", str(tiny_run), *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and expect in err, err


def test_embed_bad_device_is_one_line(tiny_run, capsys):
    rc, _, err = _run(capsys, "embed", str(tiny_run), "the fox", "--device", "nonsense")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "device='nonsense'" in err, err


def test_vectors_error_without_terminal_has_no_progress_bar(tmp_path, capsys):
    bad = tmp_path / "bad.vec"
    bad.write_bytes(b"2 2\nthe 1 0\nc\xffat 0 1\n")
    rc, _, err = _run(capsys, "vectors", "info", str(bad))
    assert rc == 2 and err.startswith("tokembed vectors: error:") and len(err.strip().splitlines()) == 1, repr(err)
    glove = tmp_path / "w2v.vec"
    glove.write_text("2 3\nthe 1 0 1\ncat 0 1 1\n")
    rc, _, err = _run(capsys, "vectors", "info", str(glove), "--format", "glove")
    assert rc == 2 and "format='word2vec'" in err and "(format: --format)" in err and "\r" not in err, repr(err)


@pytest.mark.parametrize("where", ["file", "below_file"])
def test_study_output_that_is_a_file_is_one_line(tmp_path, capsys, where):
    f = tmp_path / "taken"
    f.write_text("x")
    out = f if where == "file" else f / "study"
    rc, _, err = _run(capsys, "study", "--quick", "-o", str(out))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(out) in err and "-o" in err, err


def test_output_below_a_file_is_one_line(tmp_path, capsys, small_corpus, tiny_run):
    f = tmp_path / "taken"
    f.write_text("x")
    (tmp_path / "c.toml").write_text("max_steps = 1\nseq_len = 8\nbatch_size = 1\n[model]\nd_model = 8\nn_layers = 1\n"
                                     "n_heads = 2\nmax_seq_len = 8\n")  # fmt: skip
    vec = tmp_path / "v.vec"
    vec.write_text("1 2\nthe 1 0\n")
    cases = [
        ["tokenizer", "train", "--kind", "byte", "-o", str(f / "tok")],
        ["train", "--config", str(tmp_path / "c.toml"), "-o", str(f), "--quiet", "--workers", "1", str(small_corpus)],
        ["train", "--config", str(tmp_path / "c.toml"), "-o", str(f / "run"), "--quiet", "--workers", "1", str(small_corpus)],
        ["eval", str(tiny_run), "--max-tokens", "50", "--plot", str(f / "rel.png")],
        ["vectors", "convert", str(vec), str(f / "v.txt"), "--to", "glove"],
    ]
    for argv in cases:
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "pass an output path" in err, (argv, err)


@pytest.mark.parametrize("item", ["nosuchkey=1", "d_model=64", "model.nosuch=3"])
def test_train_unknown_override_is_named(tmp_path, capsys, item):
    rc, _, err = _run(capsys, "train", "-o", str(tmp_path / "r"), "max_steps=1", item)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f"{item!r} is neither a training option" in err, err


def test_train_lang_path_corpus_still_works(tmp_path, capsys, small_corpus):
    argv = ["train", "-o", str(tmp_path / "r"), "--quiet", "--workers", "1", "max_steps=1", "seq_len=8", "batch_size=1",
            "model.d_model=8", "model.n_heads=2", "model.n_layers=1", "model.max_seq_len=8", f"en={small_corpus}"]  # fmt: skip
    rc, _, err = _run(capsys, *argv)
    assert rc == 0 and (tmp_path / "r" / "checkpoint" / "model.safetensors").is_file(), err


@pytest.mark.parametrize(
    ("option", "expect"),
    [("nosuch=1", "unknown option(s) ['nosuch']; valid options are"), ("lowercase=maybe", "lowercase='maybe' must be true or false")],
)  # fmt: skip
def test_tokenizer_load_option_errors_are_one_line(tmp_path, capsys, option, expect):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n##s\n")
    rc, _, err = _run(capsys, "tokenizer", "info", str(vocab), "--load-option", option)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and expect in err, err
    rc, out, _ = _run(capsys, "tokenizer", "encode", str(vocab), "The", "--load-option", "lowercase=false")
    assert rc == 0 and "[UNK]" in out  # a valid option still works (cased: 'The' is not 'the')


def test_train_negative_min_frequency_is_one_line(tmp_path, capsys, small_corpus):
    rc, _, err = _run(capsys, "tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "300", "--option",
                      "min_frequency=-3", "-o", str(tmp_path / "t"), str(small_corpus))  # fmt: skip
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "min_frequency=-3 must be >= 0" in err, err


@pytest.mark.parametrize("kind", ["bytebpe", "wordpiece"])
def test_train_one_character_special_token_is_refused(tmp_path, capsys, small_corpus, kind):
    """wordpiece used to give the text 'a' the id of <pad>; bytebpe failed with an engine message."""
    rc, _, err = _run(capsys, "tokenizer", "train", "--kind", kind, "--vocab-size", "400", "--option",
                      'special_tokens={"pad": "a", "unk": "[UNK]"}', "-o", str(tmp_path / "t"), str(small_corpus))  # fmt: skip
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "special token pad='a' must be a string of 2+" in err, err


@pytest.mark.parametrize("name", ["bert-base-uncased", "bytebp", "./typo"])
def test_train_tokenizer_that_is_no_kind_and_no_path(tmp_path, capsys, name):
    rc, _, err = _run(capsys, "train", "-o", str(tmp_path / "r"), "max_steps=1", "--tokenizer", name)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "neither a kind to train" in err and "bytebpe" in err, err


def test_train_tokenizer_file_is_loaded(tmp_path, capsys, small_corpus):
    """A tokenizer *file* (vocab.txt) works like a folder (it used to be taken for a kind name)."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n" + "".join(f"{w}\n" for w in "the quick brown fox jumps over lazy dog .".split()))
    argv = ["train", "-o", str(tmp_path / "r"), "--quiet", "--workers", "1", "--tokenizer", str(vocab), "max_steps=1",
            "seq_len=8", "batch_size=1", "model.d_model=8", "model.n_heads=2", "model.n_layers=1", "model.max_seq_len=8",
            str(small_corpus)]  # fmt: skip
    rc, _, err = _run(capsys, *argv)
    assert rc == 0 and (tmp_path / "r" / "checkpoint" / "model.safetensors").is_file(), err
