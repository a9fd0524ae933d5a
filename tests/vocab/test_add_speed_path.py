"""The fast row math of ``vocab add``: the mean-cov sketch, the vectorised compose init and the direct copy.

Each test holds a fast path to the reference formula it replaces; the mean-cov test fails when the
Cholesky path ran instead (it is made to raise), so it cannot pass without the fast path.
"""

from __future__ import annotations

import pytest
import torch

from tokembed.vocab import map as vmap_mod
from tokembed.vocab.map import MEAN_COV_EPSILON, NewToken, VocabMap


def _add_map(V: int, n: int) -> VocabMap:
    return VocabMap(old_size=V, new_size=V + n, old_to_new=list(range(V)),
                    new_tokens=[NewToken(V + k, f"new{k}") for k in range(n)])


def _table(V: int, D: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, D, generator=g) * 0.3 + torch.linspace(-1, 1, D)  # a shared mean direction


def test_mean_cov_sketch_equals_the_formula(monkeypatch):
    """rows = mean + sqrt(ε/V) (X - mean)ᵀ w, with w drawn chunk by chunk from the seed; no Cholesky."""
    V, D, n, seed = 1000, 16, 5, 3
    monkeypatch.setattr(vmap_mod, "CHUNK_ROWS", 256)  # several chunks: the sums run across them

    def no_cholesky(*a, **k):
        raise AssertionError("the Cholesky path ran; n <= D must take the sketch")

    monkeypatch.setattr(vmap_mod, "_mean_cov_samples", no_cholesky)
    X = _table(V, D)
    rows = _add_map(V, n).apply_rows(X, init="mean-cov", seed=seed)
    assert torch.equal(rows[:V], X)
    g = torch.Generator().manual_seed(seed)
    w = torch.cat([torch.randn((len(c), n), generator=g) for c in X.split(256)]).double()  # (V, n)
    Xd = X.double()
    mean = Xd.mean(0)
    want = mean + (MEAN_COV_EPSILON / V) ** 0.5 * ((Xd - mean).T @ w).T  # (n, D)
    assert torch.allclose(rows[V:].double(), want.float().double(), rtol=0, atol=1e-6)
    # the sampled part itself (float64 rows: float32 rows round it away next to the mean), scaled back up
    rows64 = _add_map(V, n).apply_rows(Xd, init="mean-cov", seed=seed)
    dev = (rows64[V:] - mean) / (MEAN_COV_EPSILON / V) ** 0.5
    ref = ((Xd - mean).T @ w).T  # (n, D), entries ~ N(0, V·Var)
    assert (dev - ref).abs().max() < 5e-4 * ref.abs().max()  # float32 sums of one pass: 0.05% of the spread


def test_mean_cov_sketch_has_the_covariance():
    """In law: samples ~ N(mean, ε·Cov) (empirical covariance of 1,200 draws from one generator)."""
    V, D, n = 400, 8, 8
    X = _table(V, D, seed=1).double()
    g = torch.Generator().manual_seed(12345)
    stats = [VocabMap._init_stats(X, "mean-cov", n_new=n, g=g) for _ in range(150)]
    assert {s["path"] for s in stats} == {"mean-cov sketch"}
    draws = torch.cat([s["samples"] for s in stats])  # (1200, D) float64
    mean = X.mean(0)
    cov = (X - mean).T @ (X - mean) / V
    emp = torch.cov(((draws - mean) / MEAN_COV_EPSILON**0.5).T, correction=0)
    assert torch.allclose(draws.mean(0), mean, atol=1e-6)
    assert (emp - cov).norm() / cov.norm() < 0.15  # sampling error at 1,200 draws: ~0.07


def test_more_new_rows_than_dims_take_cholesky_and_small_tables_the_mean(monkeypatch):
    called = []
    real = vmap_mod._mean_cov_samples
    monkeypatch.setattr(vmap_mod, "_mean_cov_samples", lambda *a: called.append(1) or real(*a))
    X = _table(300, 4)
    rows = _add_map(300, 10).apply_rows(X, init="mean-cov")
    assert called and rows[300:].std(0).min() > 0
    small = _table(3, 8)  # V <= D: Cov is singular, the mean row (as transformers)
    got = _add_map(3, 2).apply_rows(small, init="mean-cov")[3:]
    assert torch.allclose(got, small.double().mean(0).float().expand(2, -1))


@pytest.mark.parametrize("per_gather", [1, 3, 1024])  # slices of new ids (memory bound) give the same rows
def test_compose_vectorised_equals_the_per_token_mean(monkeypatch, per_gather):
    monkeypatch.setattr(vmap_mod, "COMPOSE_IDS", per_gather)
    X = _table(50, 6)
    pieces = [[1, 2, 3], [], [7], [4, 4, 9, 0]]
    m = VocabMap(old_size=50, new_size=54, old_to_new=list(range(50)),
                 new_tokens=[NewToken(50 + k, f"n{k}", p) for k, p in enumerate(pieces)])
    rows = m.apply_rows(X, init="compose")
    for k, p in enumerate(pieces):
        want = X[torch.tensor(p)].double().mean(0) if p else X.double().mean(0)
        assert torch.allclose(rows[50 + k].double(), want.float().double(), atol=1e-7), k
    bias = m.apply_rows(torch.arange(50.0), init="compose")  # a 1-D table (an output bias) too
    assert bias[50].item() == pytest.approx(2.0) and bias[53].item() == pytest.approx(4.25)


@pytest.mark.parametrize("keep", ["all", "drops", "permuted"])
def test_direct_copy_equals_the_gather_with_padding(monkeypatch, keep):
    monkeypatch.setattr(vmap_mod, "CHUNK_ROWS", 7)  # blocks that split runs, new rows and padding
    V = 30
    X = _table(V, 3)
    if keep == "all":
        m = VocabMap(old_size=V, new_size=V + 2, old_to_new=list(range(V)), pad_to_multiple_of=8,
                     new_tokens=[NewToken(V, "a"), NewToken(V + 1, "b")])
    elif keep == "drops":
        m = VocabMap.from_keep(old_size=V, keep=[i for i in range(V) if i % 4], pad_to_multiple_of=8)
    else:
        m = VocabMap(old_size=V, new_size=V, old_to_new=list(reversed(range(V))))
    got = m.apply_rows(X, init="mean")
    src = m.source
    want = torch.zeros(m.rows(V), 3)
    for j, i in enumerate(src.tolist()):
        want[j] = X[i] if i >= 0 else X.double().mean(0).float()
    kept = torch.zeros(len(want), dtype=torch.bool)
    kept[: len(src)] = src >= 0
    assert torch.equal(got[kept], want[kept])  # kept rows: bit-identical copies
    assert torch.equal(got[len(src):], torch.zeros_like(got[len(src):]))  # padding rows: zero
    assert torch.allclose(got[~kept], want[~kept], atol=1e-6)  # new rows: the mean (float32 sums)
    assert len(got) == {"all": 32, "drops": 24, "permuted": V}[keep]  # drops: 22 kept, padded to 24
    streamed = torch.cat([b for _, b in m.row_blocks(X, init="mean")])
    assert torch.equal(streamed, got)
