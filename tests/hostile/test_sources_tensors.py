"""Bare safetensors matrices with hostile headers: many tensors, shapes the bytes cannot hold.

Before the fix the loader reopened the file once per tensor to read its shape (the header of N
tensors parsed N times: quadratic; 40k tensors took over 120 s).
"""

import json
import struct

import numpy as np
import pytest
import safetensors
from _hostile import TOKENS, assert_one_line_error

from tokembed.sources import load_embeddings
from tokembed.errors import EmbeddingSourceError


def _many(path, n, *, with_matrix=True):
    """``n`` one-element tensors t0..t{n-1}, plus the (V, 8) matrix "E" when ``with_matrix``."""
    from safetensors.numpy import save_file

    tensors = {f"t{i}": np.zeros(1, np.float32) for i in range(n)}
    if with_matrix:
        tensors["E"] = np.arange(len(TOKENS) * 8, dtype=np.float32).reshape(len(TOKENS), 8)
    save_file(tensors, str(path))
    return path


@pytest.fixture
def vocab(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_text("\n".join(TOKENS) + "\n")
    return p


def test_many_tensors_open_the_file_once(tmp_path, vocab, monkeypatch):
    path = _many(tmp_path / "many.safetensors", 20_000)
    opened = []
    real = safetensors.safe_open
    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    src = load_embeddings(path, vocab=vocab)
    assert src.names["input"] == "E" and src.input[1, 0] == 8.0
    assert len(opened) == 1, f"{len(opened)} opens for one matrix"


def test_many_tensors_without_a_single_matrix_asks_for_tensor(tmp_path, vocab, cli):
    path = _many(tmp_path / "many.safetensors", 5_000, with_matrix=False)
    rc, _, err = cli("neighbors", path, "--vocab", vocab, "king")
    assert_one_line_error(rc, err, "holds 5000 tensors", "tensor=NAME", "(tensor: --tensor)")
    rc, _, err = cli("neighbors", path, "--vocab", vocab, "--tensor", "t7", "king")
    assert_one_line_error(rc, err, "'t7' has shape (1,)", "(V, D)")


def _raw_safetensors(path, header: dict, data: bytes = b""):
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


@pytest.mark.parametrize(
    ("header", "data"),
    [({"E": {"dtype": "F32", "shape": [10**9, 300], "data_offsets": [0, 1_200_000_000_000]}}, b"\0" * 64),
     ({"E": {"dtype": "F32", "shape": [10**9, 300], "data_offsets": [0, 64]}}, b"\0" * 64)],
)  # fmt: skip
def test_header_claiming_a_huge_matrix_is_refused_before_allocating(tmp_path, vocab, header, data):
    path = _raw_safetensors(tmp_path / "huge.safetensors", header, data)
    with pytest.raises(EmbeddingSourceError, match="huge.safetensors"):
        load_embeddings(path, vocab=vocab)


def test_matrix_rows_checked_against_the_vocab_before_reading(tmp_path, vocab, monkeypatch):
    from safetensors.numpy import save_file

    save_file({"E": np.zeros((len(TOKENS) + 1, 4), np.float32)}, str(tmp_path / "m.safetensors"))
    import tokembed.sources as sources

    monkeypatch.setattr(sources, "_read_tensor", lambda *a, **k: pytest.fail("read before the row check"))
    with pytest.raises(EmbeddingSourceError, match="13 rows"):
        load_embeddings(tmp_path / "m.safetensors", vocab=vocab)


def test_header_length_beyond_the_file_is_a_typed_error(tmp_path, vocab):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(EmbeddingSourceError, match="not a valid safetensors file"):
        load_embeddings(path, vocab=vocab)


def test_npy_header_claiming_more_than_the_file_holds(tmp_path, vocab):
    from numpy.lib import format as npformat

    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 300)})
        f.write(b"\0" * 64)
    with pytest.raises(EmbeddingSourceError, match="header does not match the file"):
        load_embeddings(path, vocab=vocab)
