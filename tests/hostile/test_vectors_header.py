"""Word-vector files whose ``COUNT DIM`` header lies: checked against the file size before allocating.

Before the fix ``1000000000 300`` preallocated a (10^9, 300) float32 buffer (1.09 TiB) and died
with a numpy MemoryError (or was killed).
"""

import gzip
import struct

import numpy as np
import pytest
from _hostile import assert_one_line_error

from tokembed.embeddings.pretrained import read_vectors
from tokembed.errors import VectorFileError


def _text(path, header):
    path.write_text(header + "\nthe 0.1 0.2 0.3\ncat 0.4 0.5 0.6\n")
    return path


def _binary(path, header):
    body = b"".join(w + b" " + struct.pack("<3f", 1, 2, 3) + b"\n" for w in (b"the", b"cat"))
    path.write_bytes(header.encode() + b"\n" + body)
    return path


@pytest.mark.parametrize("write", [_text, _binary], ids=["text", "binary"])
@pytest.mark.parametrize("header", ["1000000000 300", "2 1000000000", "100 3"])
def test_header_larger_than_the_file_is_refused_before_allocating(tmp_path, cli, write, header):
    path = write(tmp_path / "v.bin", header)
    with pytest.raises(VectorFileError, match=r"v\.bin:1: header .* announces") as e:
        read_vectors(path, progress=False, format="word2vec-binary" if write is _binary else "word2vec")
    assert "fix the header" in str(e.value)
    rc, _, err = cli("vectors", "info", path, "--format", "word2vec-binary" if write is _binary else "word2vec")
    assert_one_line_error(rc, err, "v.bin:1", "announces")


@pytest.mark.parametrize("write", [_text, _binary], ids=["text", "binary"])
def test_honest_header_still_reads(tmp_path, write):
    v = read_vectors(write(tmp_path / "v.bin", "2 3"), progress=False)
    assert v.tokens == ["the", "cat"] and v.matrix.shape == (2, 3)


def test_limit_only_needs_the_rows_it_reads(tmp_path):
    v = read_vectors(_text(tmp_path / "v.vec", "1000000 3"), progress=False, limit=2)
    assert v.tokens == ["the", "cat"]


def test_gzip_header_preallocation_is_capped(tmp_path, monkeypatch):
    """A .gz file's size says nothing of its content: the buffer starts small and the lie is caught at the end."""
    path = tmp_path / "v.vec.gz"
    path.write_bytes(gzip.compress(b"1000000000 300\n" + b"the " + b"0 " * 299 + b"0\n"))
    sizes = []
    real = np.empty
    monkeypatch.setattr(np, "empty", lambda shape, *a, **k: sizes.append(shape) or real(shape, *a, **k))
    with pytest.raises(VectorFileError, match="announces 1000000000 vectors but the file holds 1"):
        read_vectors(path, progress=False)
    assert max(int(np.prod(s)) for s in sizes) * 4 <= 64 * 2**20


def test_glove_line_with_a_huge_dimension_starts_with_a_small_buffer(tmp_path, monkeypatch):
    """GloVe has no header: D comes from the first line; 1024 rows of D = 200,000 would be 819 MB up front."""
    path = tmp_path / "wide.txt"
    path.write_text("the " + " ".join(["0.5"] * 200_000) + "\n")
    sizes = []
    real = np.empty
    monkeypatch.setattr(np, "empty", lambda shape, *a, **k: sizes.append(shape) or real(shape, *a, **k))
    v = read_vectors(path, progress=False, format="glove")
    assert v.matrix.shape == (1, 200_000)
    assert max(int(np.prod(s)) for s in sizes) * 4 <= 64 * 2**20
