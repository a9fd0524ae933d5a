"""HashEmbedding: parameter formula, hash determinism across processes, ids beyond V, reference agreement."""

import json
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tokembed.embeddings import HashEmbedding
from tokembed.embeddings.hashed import MERSENNE_P, hash_ids_reference, universal_hash_params
from tokembed.errors import ConfigError, TokenIdError


@pytest.mark.parametrize("V, D, nb, k", [(50_000, 64, 1000, 2), (100, 8, 7, 3), (10, 4, 1, 1)])
def test_parameter_count_formula(V, D, nb, k):
    emb = HashEmbedding(V, D, num_buckets=nb, num_hashes=k)
    assert sum(p.numel() for p in emb.parameters()) == nb * D + V * k  # n_b·D + V·k (Svenstrup et al. §3)


def test_interface_and_tied_head(check_interface):
    check_interface(HashEmbedding(40, 8, num_buckets=13, num_hashes=2))


def test_fast_path_agrees_with_reference_including_ids_beyond_v():
    emb = HashEmbedding(30, 5, num_buckets=11, num_hashes=3, seed=4)
    ids = torch.tensor([[0, 29, 30, 10**6, 2**40, 2**62]])
    torch.testing.assert_close(emb(ids), emb.forward_reference(ids))
    rows = emb.importance_rows(ids)
    assert rows[0, :2].tolist() == [0, 29] and (rows < 30).all()


@given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=1, max_size=20), st.integers(0, 5))
def test_vectorised_hash_equals_python_reference(ids, seed):
    emb = HashEmbedding(10, 2, num_buckets=97, num_hashes=2, seed=seed)
    params = universal_hash_params(2, seed)
    expected = hash_ids_reference(ids, params[1:], 97)
    assert emb.bucket_ids(torch.tensor(ids)).tolist() == expected


def test_hash_known_answer():
    # h(x) = ((a·(x mod p) + b) mod p) mod n_b with (a, b) = BLAKE2b("tokembed-hash:0:1")
    (a, b) = universal_hash_params(1, seed=0)[1]
    assert 1 <= a < MERSENNE_P and 0 <= b < MERSENNE_P
    emb = HashEmbedding(10, 2, num_buckets=1000, num_hashes=1, seed=0)
    assert emb.bucket_ids(torch.tensor([12345])).item() == ((a * 12345 + b) % MERSENNE_P) % 1000


_CHILD = """
import json, torch
from tokembed.embeddings import HashEmbedding
emb = HashEmbedding(100, 4, num_buckets=1009, num_hashes=3, seed=11)
ids = torch.tensor([[0, 1, 99, 100, 123456789, 2**50]])
print(json.dumps({"buckets": emb.bucket_ids(ids).tolist(), "rows": emb.importance_rows(ids).tolist(),
                  "vec": emb(ids).tolist()}))
"""


@pytest.mark.slow  # starts a fresh interpreter that imports torch (~5 s on a loaded machine)
def test_deterministic_across_processes():
    # a fresh interpreter with another str-hash salt computes the same buckets and vectors
    salt = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONHASHSEED": salt}
    r = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    child = json.loads(r.stdout)
    emb = HashEmbedding(100, 4, num_buckets=1009, num_hashes=3, seed=11)
    ids = torch.tensor([[0, 1, 99, 100, 123456789, 2**50]])
    assert child["buckets"] == emb.bucket_ids(ids).tolist()
    assert child["rows"] == emb.importance_rows(ids).tolist()
    assert child["vec"] == emb(ids).tolist()


def test_gradients_and_bad_ids():
    emb = HashEmbedding(20, 4, num_buckets=5, num_hashes=2)
    emb(torch.tensor([[1, 25]])).sum().backward()
    assert emb.buckets.grad.abs().sum() > 0 and emb.importance.grad[1].abs().sum() > 0
    with pytest.raises(TokenIdError, match=r"HashEmbedding: ids \[-1\] at positions \[\[0, 1\]\] are negative"):
        emb(torch.tensor([[3, -1]]))
    with pytest.raises(TokenIdError, match="dtype"):
        emb(torch.tensor([[1.5]]))
    with pytest.raises(ConfigError, match="num_buckets=0"):
        HashEmbedding(10, 2, num_buckets=0)


def test_state_dict_keeps_hash_parameters():
    a = HashEmbedding(10, 3, num_buckets=7, seed=1)
    b = HashEmbedding(10, 3, num_buckets=7, seed=2)
    b.load_state_dict(a.state_dict())
    ids = torch.tensor([[3, 500]])
    assert torch.equal(a(ids), b(ids))


@pytest.mark.cuda
def test_cuda(cuda_device):
    emb = HashEmbedding(100, 8, num_buckets=31).to(cuda_device)
    ids = torch.tensor([[1, 2, 10**7]], device=cuda_device)
    assert emb.bucket_ids(ids).cpu().tolist() == emb.cpu().bucket_ids(ids.cpu()).tolist()
