"""``tokembed vectors info|coverage|convert``."""

import json

import numpy as np

from tokembed.cli import main
from tokembed.embeddings import read_vectors


def _files(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nthe\n##cat\ndog\nzebra\n", encoding="utf-8")
    (tmp_path / "v.vec").write_text("3 2\nthe 1 0\ncat 0 1\nDog 1 1\n", encoding="utf-8")
    return tmp_path / "v.vec", tmp_path / "vocab.txt"


def test_info_coverage_convert(tmp_path, capsys):
    vec, vocab = _files(tmp_path)
    assert main(["vectors", "info", str(vec), "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["format"], info["vectors"], info["dim"], info["norm_min"]) == ("word2vec", 3, 2, 1.0)
    assert main(["vectors", "coverage", str(vec), "--tokenizer", str(vocab), "--no-progress"]) == 0
    cov = json.loads(capsys.readouterr().out)
    assert (cov["exact"], cov["fallback"], cov["missing"]) == (1, 2, 3)
    assert cov["fallback_kinds"] == {"marker": 1, "case": 1} and "zebra" in cov["missing_examples"]
    out = tmp_path / "v.bin"
    assert main(["vectors", "convert", str(vec), str(out), "--to", "word2vec-binary", "--no-progress"]) == 0
    capsys.readouterr()
    back = read_vectors(out, progress=False)
    assert back.format == "word2vec-binary" and back.tokens == ["the", "cat", "Dog"]
    np.testing.assert_array_equal(back.matrix, [[1, 0], [0, 1], [1, 1]])


def test_bad_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.vec"
    bad.write_text("2 2\nthe 1 0\ncat 0\n")
    assert main(["vectors", "info", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.vec:3: expected a word and 2 values, got 1" in err
