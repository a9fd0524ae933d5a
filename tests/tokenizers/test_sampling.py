"""Seeded subword sampling: the same seed gives the same ids in any process (issue 12), and the
samplers draw from the distributions they claim."""

import itertools
import json
import math
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _spm_data import training_lines

from tokembed.corpus import Corpus
from tokembed.tokenizers import BPETokenizer, ByteBPETokenizer, UnigramTokenizer
from tokembed.tokenizers.sampling import bpe_dropout, sample_lattice

TEXT = "internationalization of unbelievable reconstructions, naïve café 12345"

CHILD = r"""
import json, sys
from tokembed.tokenizers import load_tokenizer
from tokembed.tokenizers.regularization import sample_segmentations
folder, text = sys.argv[1], sys.argv[2]
u, b, bb = (load_tokenizer(f"{folder}/{k}") for k in ("unigram", "bpe", "bytebpe"))
out = {
    "unigram": [u.encode(text, alpha=0.3, seed=s) for s in range(4)],
    "unigram_nbest": [u.encode(text, alpha=0.5, nbest=4, seed=s) for s in range(4)],
    "bpe": [b.encode(text, dropout=0.2, seed=s) for s in range(4)],
    "bytebpe": [bb.encode(text, dropout=0.2, seed=s) for s in range(4)],
    "segmentations": sample_segmentations(u, text, 3, seed=5, alpha=0.2) + sample_segmentations(b, text, 3, seed=5, dropout=0.1),
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sampling")
    lines = training_lines()
    UnigramTokenizer.train(lines, 350).save(folder / "unigram")
    BPETokenizer.train(lines, 350).save(folder / "bpe")
    ByteBPETokenizer.train(Corpus([]), 400, progress=False).save(folder / "bytebpe")
    return folder


def _child(folder: Path) -> dict:
    src = str(Path(__file__).resolve().parents[2] / "src")
    r = subprocess.run([sys.executable, "-c", CHILD, str(folder), TEXT], capture_output=True, text=True,
                       env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_same_seed_same_ids_in_every_process(saved):
    first, second = _child(saved), _child(saved)
    assert first == second
    for key in ("unigram", "bpe", "bytebpe"):
        assert len({tuple(ids) for ids in first[key]}) > 1, key  # the seeds do sample different segmentations
    for ids in first["unigram"] + first["unigram_nbest"]:
        assert UnigramTokenizer.load(saved / "unigram").decode(ids) == TEXT


def test_lattice_sampler_matches_the_exact_distribution():
    """"abc" with pieces a, b, c, ab, bc, abc: 4 segmentations, P ∝ exp(alpha · score)."""
    score = {"a": -1.0, "b": -2.0, "c": -1.5, "ab": -2.5, "bc": -2.0, "abc": -4.0}
    s = "abc"
    edges = [[(i, score[s[i:j]], True) for i in range(j) if s[i:j] in score] for j in range(len(s) + 1)]
    alpha = 0.7
    segs = [("a", "b", "c"), ("ab", "c"), ("a", "bc"), ("abc",)]
    z = sum(math.exp(alpha * sum(score[p] for p in seg)) for seg in segs)
    rng = random.Random(0)
    n = 20_000
    counts = Counter(tuple(s[i:j] for i, j, _ in sample_lattice(edges, alpha, rng)) for _ in range(n))
    for seg in segs:
        p = math.exp(alpha * sum(score[x] for x in seg)) / z
        assert abs(counts[seg] / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3, (seg, counts[seg] / n, p)


def test_bpe_dropout_bounds():
    merges = {(a, b): (k, a + b) for k, (a, b) in enumerate(itertools.pairwise("abcdef"))}
    merges.update({("ab", "cd"): (10, "abcd")})

    def rank(a, b):
        return merges.get((a, b))

    full = bpe_dropout(list("abcdef"), rank, 0.0, random.Random(0))
    assert full == ["abcd", "ef"]
    assert all("".join(bpe_dropout(list("abcdef"), rank, 0.5, random.Random(s))) == "abcdef" for s in range(50))
    assert bpe_dropout(list("abcdef"), rank, 0.999999, random.Random(1)) == list("abcdef")
