import gzip
import io
import sys

import pytest

from tokembed.corpus import Corpus, default_corpus_path, iter_file_lines, language_weights
from tokembed.errors import ConfigError, CorpusError, DecodeError, EmptyCorpusError


def test_default_corpus_is_english_prose_and_stable():
    p = default_corpus_path()
    size = p.stat().st_size
    assert 1_000_000 < size < 4_000_000  # "about 2 MB" of stdlib docstrings + pydoc topics
    text = p.read_text(encoding="utf-8")
    assert "Return" in text and " the " in text
    assert default_corpus_path() == p  # cached
    docs = list(Corpus().documents())
    assert len(docs) > 1000 and docs == list(Corpus().documents())  # stable order


def test_files_folders_globs_gz(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("alpha\n\nbeta\n")
    (tmp_path / "d" / "sub" / "b.txt").write_text("gamma\n")
    (tmp_path / "d" / ".hidden").write_text("secret\n")
    with gzip.open(tmp_path / "c.txt.gz", "wt") as f:
        f.write("delta\nepsilon\n")
    assert list(Corpus([str(tmp_path / "d")]).texts()) == ["alpha", "beta", "gamma"]
    assert list(Corpus([str(tmp_path / "*.gz")]).texts()) == ["delta", "epsilon"]
    assert list(Corpus([str(tmp_path / "d" / "a.txt")]).documents()) == ["alpha\n", "beta\n"]


def test_stdin(monkeypatch, tmp_path):
    import tokembed.corpus as c

    monkeypatch.setattr(c, "_STDIN_SPOOL", None)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("from stdin\nline two\n".encode())))
    corpus = Corpus(["-"])
    assert list(corpus.texts()) == ["from stdin", "line two"]
    assert list(corpus.texts()) == ["from stdin", "line two"]  # readable twice


def test_invalid_utf8_names_file_and_offset(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"good line\nbad \xff here\n")
    with pytest.raises(DecodeError, match=r"bad.txt:2: invalid UTF-8 at byte offset 14"):
        list(Corpus([str(p)]).lines())
    assert list(Corpus([str(p)], errors="replace").texts()) == ["good line", "bad \ufffd here"]


def test_nul_bytes(tmp_path):
    p = tmp_path / "nul.txt"
    p.write_bytes(b"ab\x00cd\n")
    with pytest.raises(CorpusError, match="NUL byte at byte offset 2"):
        list(iter_file_lines(p))
    assert list(iter_file_lines(p, errors="replace")) == ["abcd\n"]


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(EmptyCorpusError, match="holds no text"):
        list(Corpus([str(tmp_path / "empty.txt")]).texts())
    with pytest.raises(CorpusError, match="no such file"):
        Corpus([str(tmp_path / "nope.txt")])
    with pytest.raises(CorpusError, match="glob matches no file"):
        Corpus([str(tmp_path / "*.nothing")])
    with pytest.raises(ConfigError):
        Corpus([], errors="ignore")


def test_language_sampling_is_alpha_smoothed(tmp_path):
    big, small = tmp_path / "en.txt", tmp_path / "fi.txt"
    big.write_text("english words here\n" * 900)
    small.write_text("suomen sanoja\n" * 50)
    c = Corpus([f"en={big}", f"fi={small}"])
    assert c.languages == ["en", "fi"]
    texts = list(c.training_texts(alpha=0.3, seed=1))
    fi = sum(len(t) + 1 for t in texts if t.startswith("suomen"))
    en = sum(len(t) + 1 for t in texts if t.startswith("english"))
    w = language_weights(c.byte_sizes(), 0.3)
    assert abs(fi / (fi + en) - w["fi"]) < 0.05  # small language upsampled to its smoothed share
    assert w["fi"] > c.byte_sizes()["fi"] / sum(c.byte_sizes().values())
    assert texts == list(c.training_texts(alpha=0.3, seed=1))  # seeded


def test_mixed_tagging_rejected(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x\n")
    with pytest.raises(ConfigError, match="tag every argument"):
        Corpus([f"en={p}", str(p)])


def test_folder_skips_pycache(tmp_path):
    """A source folder (e.g. a Python package) holds __pycache__/*.pyc: bytecode, never text."""
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\xa7\r\r\n\x00\x00binary")
    c = Corpus([str(tmp_path / "pkg")])
    assert [f.name for f in c.files] == ["mod.py"] and list(c.texts()) == ["def f():", "    return 1"]
