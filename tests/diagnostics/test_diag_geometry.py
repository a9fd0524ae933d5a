"""Geometry: spectrum, IsoScore, effective rank, near-duplicates (exact and LSH), warnings on collapsed input."""

import numpy as np
import pytest

from tokembed.diagnostics.geometry import (
    THRESHOLDS,
    duplicate_clusters,
    geometry_summary,
    isoscore_from_variances,
    isoscore_reference,
    near_duplicate_pairs,
    near_duplicate_pairs_reference,
    spectrum,
)
from tokembed.metrics import effective_rank


def test_spectrum_matches_numpy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 12)).astype(np.float32) * np.arange(1, 13) + 5
    s = spectrum(X, block=37)
    np.testing.assert_allclose(s.mean, X.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        s.variances, np.sort(np.linalg.eigvalsh(np.cov(X.T.astype(np.float64))))[::-1], rtol=1e-4
    )
    np.testing.assert_allclose(s.singular_values, np.linalg.svd(X.astype(np.float64), compute_uv=False), rtol=1e-4)


def test_effective_rank_from_spectrum_equals_metrics():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 10)).astype(np.float32)
    g = geometry_summary(X)
    assert g["effective_rank"] == pytest.approx(effective_rank(X), rel=1e-5)


def test_isoscore_known_answers_and_reference():
    # Rudman et al. 2022: 1 for equal variance in every direction, 0 for a single direction
    assert isoscore_from_variances(np.ones(5)) == pytest.approx(1.0)
    assert isoscore_from_variances(np.array([1.0, 0, 0, 0])) == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6))
    assert isoscore_from_variances(spectrum(X).variances) == pytest.approx(isoscore_reference(X), rel=1e-5)
    assert isoscore_reference(rng.standard_normal((5000, 4))) > 0.95


def _planted(V=3000, D=24, pairs=15, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((V, D)).astype(np.float32) + 0.5
    a = rng.choice(V // 2, pairs, replace=False)
    b = a + V // 2
    X[b] = X[a] * 1.3 + 0.001 * rng.standard_normal((pairs, D)).astype(np.float32)
    return X, {tuple(sorted(p)) for p in zip(a.tolist(), b.tolist())}


def test_near_duplicates_exact_equals_reference_and_lsh_recall():
    X, planted = _planted()
    ref = near_duplicate_pairs_reference(X, 0.99)
    exact = {tuple(p) for p in near_duplicate_pairs(X, threshold=0.99, method="exact").tolist()}
    assert exact == ref and planted <= ref
    lsh = {tuple(p) for p in near_duplicate_pairs(X, threshold=0.99, method="lsh").tolist()}
    assert lsh <= ref  # verified pairs only: no false positives
    assert len(lsh & planted) >= len(planted) - 1  # miss probability ~0.5% per pair at cos 0.9999


def test_duplicate_clusters_union_find():
    assert duplicate_clusters(np.array([[3, 4], [0, 1], [1, 2]]), 6) == [[0, 1, 2], [3, 4]]
    assert duplicate_clusters(np.zeros((0, 2), dtype=np.int64), 3) == []


def test_collapsed_matrix_raises_every_warning_and_nan_rows_are_reported():
    rng = np.random.default_rng(3)
    base = rng.standard_normal(32).astype(np.float32)
    X = (5 * base + 0.2 * rng.standard_normal((400, 2)) @ rng.standard_normal((2, 32))).astype(np.float32)
    X[10] = np.nan
    X[11] = 0
    g = geometry_summary(X, tokens=[f"t{i}" for i in range(400)])
    text = " ".join(g["warnings"])
    assert g["anisotropy"] > THRESHOLDS["anisotropy_max"] and "anisotropy" in text
    assert "effective rank" in text and "first principal component" in text and "IsoScore" in text
    assert g["nonfinite_rows"] == 1 and g["nonfinite_ids"] == [10] and "'t10'" in text
    assert g["zero_rows"] == 1 and "all zeros" in text
    assert g["near_duplicate_pairs"] > 0


def test_isotropic_matrix_raises_no_warning():
    X = np.random.default_rng(4).standard_normal((2000, 16)).astype(np.float32)
    g = geometry_summary(X)
    assert g["warnings"] == [] and abs(g["anisotropy"]) < 0.05 and g["isoscore"] > 0.9
