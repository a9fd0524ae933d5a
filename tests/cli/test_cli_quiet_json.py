"""The output convention of the reporting commands, for ``neighbors`` and ``vectors``:
the result on stdout (``--json``: one JSON document), nothing on stderr with ``--quiet``."""

import json

import numpy as np
import pytest

from tokembed.cli import main
from tokembed.embeddings.pretrained import write_vectors

WORDS = ["the", "king", "queen", "man", "woman"]


@pytest.fixture
def vec(tmp_path):
    return write_vectors(tmp_path / "v.vec", WORDS, np.random.default_rng(0).standard_normal((5, 4)))


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_neighbors_json_and_quiet(vec, capsys):
    rc, out, err = _run(capsys, "neighbors", vec, "king", "-k", "2", "--json", "--quiet")
    assert rc == 0 and err == ""
    res = json.loads(out)
    assert list(res) == ["king"] and [n["rank"] for n in res["king"]] == [1, 2]
    assert {"id", "token", "cosine"} <= set(res["king"][0])


@pytest.mark.parametrize("action", ["info", "convert"])
def test_vectors_json_and_quiet(vec, tmp_path, capsys, action):
    extra = [tmp_path / "out.bin", "--to", "word2vec-binary"] if action == "convert" else []
    rc, out, err = _run(capsys, "vectors", action, vec, *extra, "--json", "--quiet")
    assert rc == 0 and err == ""
    assert json.loads(out)["vectors"] == 5
