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
