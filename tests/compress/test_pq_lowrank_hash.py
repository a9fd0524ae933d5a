"""Product quantization (seeded, vs faiss), low rank (SVD), post-hoc hashing."""

import importlib.util

import pytest
import torch

from tokembed.compress import hash_buckets, low_rank, product_quantize
from tokembed.compress.kmeans import kmeans
from tokembed.compress.pq import pq_for_ratio
from tokembed.errors import ConfigError

W = torch.randn(600, 32, generator=torch.Generator().manual_seed(0))


def test_pq_codes_reproducible_with_a_seed():
    a = product_quantize(W, M=8, nbits=5, seed=3, iters=5)
    b = product_quantize(W, M=8, nbits=5, seed=3, iters=5)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.codebooks, b.codebooks)
    assert a.codes.dtype == torch.uint8 and a.codes.shape == (600, 8)
    # every row is encoded to its nearest centroid in each subspace
    X = W.view(600, 8, 4)
    d = ((X.unsqueeze(2) - a.codebooks.unsqueeze(0)) ** 2).sum(-1)  # (V, M, K)
    assert torch.equal(d.argmin(-1).to(torch.uint8), a.codes)


def test_kmeans_lloyd_never_increases_the_objective():
    X = W.view(1, 600, 32)
    errs = []
    for it in (0, 1, 3, 10):
        C, a = kmeans(X, 16, iters=it, seed=0)
        errs.append(float(((X[0] - C[0, a[0]]) ** 2).sum()))
    assert errs == sorted(errs, reverse=True)


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss not installed")
def test_pq_at_least_as_good_as_faiss():
    import faiss

    x = W.numpy()
    fp = faiss.ProductQuantizer(32, 8, 6)
    fp.train(x)
    ferr = ((fp.decode(fp.compute_codes(x)) - x) ** 2).sum()
    ours = ((product_quantize(W, M=8, nbits=6, seed=0).decode() - W) ** 2).sum()
    assert float(ours) <= float(ferr) * 1.01


def test_pq_bad_options():
    with pytest.raises(ConfigError, match=r"M=5 .*D=32"):
        product_quantize(W, M=5)
    with pytest.raises(ConfigError, match=r"nbits=10 .*V=600"):
        product_quantize(W, M=8, nbits=10)
    assert pq_for_ratio(384, 16) == 96  # 384·4 / 96 = 16


def test_low_rank_recovers_an_exact_low_rank_matrix_and_picks_ranks():
    g = torch.Generator().manual_seed(1)
    E = torch.randn(100, 5, generator=g) @ torch.randn(5, 24, generator=g)
    lr = low_rank(E, energy=0.999999)
    assert lr.rank == 5 and torch.allclose(lr.decode(), E, atol=1e-4)
    assert low_rank(E, rank=3).rank == 3
    assert low_rank(E, target_bytes=4 * (100 + 24) * 2).rank == 2
    emb = lr.module()
    ids = torch.tensor([[0, 99, 7]])
    assert torch.allclose(emb(ids)[0], (lr.A @ lr.B)[ids[0]], atol=1e-6)


def test_low_rank_bad_rank():
    with pytest.raises(ConfigError, match=r"rank=30 .*min\(V, D\) = 24"):
        low_rank(torch.randn(100, 24), rank=30)
    with pytest.raises(ConfigError, match="exactly one"):
        low_rank(torch.randn(10, 4), rank=2, energy=0.5)


def test_hash_buckets_map_similar_rows_together():
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(4, 16, generator=g) * 10
    E = centres.repeat_interleave(25, 0) + 0.01 * torch.randn(100, 16, generator=g)
    hb = hash_buckets(E, buckets=4, seed=0)
    assert hb.bucket.shape == (100,) and len(set(hb.bucket.tolist())) == 4
    assert all(len(set(hb.bucket[i * 25:(i + 1) * 25].tolist())) == 1 for i in range(4))
    assert float((hb.decode() - E).abs().max()) < 0.1
    with pytest.raises(ConfigError, match="buckets=0"):
        hash_buckets(E, buckets=0)


def test_kmeans_random_init_is_seeded_too():
    X = W[:200].reshape(1, 200, 32)
    a = kmeans(X, 8, iters=3, seed=5, init="random")
    b = kmeans(X, 8, iters=3, seed=5, init="random")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_table_report_known_values():
    from tokembed.compress.apply import table_report

    E = torch.eye(12)
    rep = table_report(E, E, k=3)
    assert rep["rel_error"] == 0.0 and rep["nn_overlap@10".replace("10", "3")] == 1.0
    noisy = E * 0.5  # same directions, half the norm: rel. error 0.5, neighbours unchanged
    counts = torch.tensor([5, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 12])
    rep = table_report(E, noisy, counts=counts, k=3)
    assert abs(rep["rel_error"] - 0.5) < 1e-12 and abs(rep["weighted_rel_error"] - 0.5) < 1e-12
    assert [b["name"] for b in rep["bands"]] == ["0", "1-9", "10-99"]
