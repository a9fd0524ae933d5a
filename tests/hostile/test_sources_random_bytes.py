"""Random and cut-short bytes under every source suffix ``neighbors`` accepts: one line, exit 2.

Before the fix a ``.gz`` file that was not gzip gave a ``BadGzipFile`` traceback, a gzip file cut
short an ``EOFError``, and an empty ``.npy`` an ``EOFError``.
"""

import gzip
import random

import pytest
from _hostile import assert_one_line_error

SUFFIXES = [".vec", ".txt", ".bin", ".gz", ".npy", ".safetensors"]


def _blobs(seed: int):
    rng = random.Random(seed)
    for n in (0, 1, 7, 100, 3000):
        data = bytes(rng.getrandbits(8) for _ in range(n))
        yield data
        yield b"3 2\n" + data  # a plausible word2vec header over garbage
    yield b"\x93NUMPY\x01\x00" + b"{'descr'"  # a .npy header cut short
    yield gzip.compress(b"2 3\nthe 1 2 3\ncat 4 5 6\n" * 50)[:40]  # gzip cut short


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_random_bytes_as_a_source_are_one_line(tmp_path, cli, suffix):
    (tmp_path / "vocab.txt").write_text("a\nb\nc\n")
    for i, blob in enumerate(_blobs(SUFFIXES.index(suffix))):
        path = tmp_path / f"blob{i}{suffix}"
        path.write_bytes(blob)
        rc, _, err = cli("neighbors", path, "a", "--vocab", tmp_path / "vocab.txt")
        assert_one_line_error(rc, err, path.name)
