"""Collapse and geometry of an embedding matrix: spectrum, isotropy, near-duplicate rows, bad rows.

Everything is computed from one streamed pass over the rows (mean, then the D × D
covariance in blocks), so memory is ``O(D²)`` beyond the matrix itself. Each measure has
a stated threshold that turns into a warning in the report (:data:`THRESHOLDS`). Unlike
:mod:`tokembed.contextual`, this looks at the static table only.

Formulas: ``anisotropy`` = mean cos(e_i, e_j) over random pairs i≠j (metrics.anisotropy);
``effective rank`` = exp(H(σ/Σσ)) over the singular values σ of E (Roy & Vetterli 2007);
``IsoScore`` (Rudman et al. 2022, Algorithm 1) from the PCA variance vector λ (length n = D):
``λ̂ = √n λ/|λ|``, ``δ = |λ̂ − 1| / √(2(n − √n))``, ``φ = (n − δ²(n − √n))² / n²``,
``ι = (nφ − 1)/(n − 1)`` — 1 when every direction carries equal variance, 0 when one does.

Shapes: V rows, D width.

>>> import numpy as np
>>> round(isoscore_from_variances(np.ones(8)), 6), abs(round(isoscore_from_variances(np.eye(8)[0]), 6))
(1.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import anisotropy, effective_rank_from_singular_values
from .neighbors import normalize_rows

__all__ = [
    "THRESHOLDS",
    "Spectrum",
    "spectrum",
    "row_norms",
    "isoscore_from_variances",
    "isoscore_reference",
    "near_duplicate_pairs",
    "near_duplicate_pairs_reference",
    "duplicate_clusters",
    "geometry_summary",
]

#: warning thresholds, each with its reading (the report quotes these)
THRESHOLDS = {
    # mean cosine of random pairs; isotropic random vectors give ~0. Ethayarajh (2019) calls
    # representations with values this high "anisotropic": they occupy a narrow cone.
    "anisotropy_max": 0.5,
    # effective rank / D below this: the rows use fewer than half of the dimensions (collapse).
    "effective_rank_ratio_min": 0.5,
    # variance share of the first principal component above this: one dominant direction
    # (Mu & Viswanath 2018, "All-but-the-Top", remove such directions).
    "top1_variance_share_max": 0.2,
    # IsoScore below this: variance lives in a small fraction of the dimensions
    # (IsoScore ≈ fraction of dimensions used uniformly, Rudman et al. 2022).
    "isoscore_min": 0.05,
    # two distinct tokens whose rows have cosine ≥ this are near-duplicates; any cluster warns.
    "duplicate_cosine": 0.99,
    # share of rows that are zero or not finite above this warns (any non-finite row warns too).
    "zero_rows_share_max": 0.0,
}
_BLOCK = 8192
#: rows sampled for the anisotropy estimate (it averages 10,000 random pairs anyway)
ANISOTROPY_SAMPLE = 50_000
#: above this many rows, near-duplicate search uses random-hyperplane LSH instead of all pairs
EXACT_DUPLICATE_MAX_ROWS = 16384


@dataclass
class Spectrum:
    """Mean, principal directions and variances of the valid rows, plus the singular values of E."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (D, D) columns = principal directions, by decreasing variance
    variances: np.ndarray  # (D,) covariance eigenvalues λ, decreasing
    singular_values: np.ndarray  # (D,) of the uncentred matrix, decreasing
    n_rows: int

    def project(self, X: np.ndarray, n: int = 2) -> np.ndarray:
        """PCA coordinates (rows, n) = (X − μ) P[:, :n]."""
        return (np.asarray(X, dtype=np.float32) - self.mean.astype(np.float32)) @ self.components[:, :n].astype(
            np.float32
        )


def spectrum(X: np.ndarray, valid: np.ndarray | None = None, *, block: int = _BLOCK) -> Spectrum:
    """Streamed covariance and Gram eigen-decomposition (float64 accumulation over row blocks)."""
    X = np.asarray(X)
    if valid is None:
        valid = np.isfinite(X).all(axis=1)
    idx = np.flatnonzero(valid)
    n, D = idx.size, X.shape[1]
    s = np.zeros(D, dtype=np.float64)
    for lo in range(0, n, block):
        s += X[idx[lo : lo + block]].sum(axis=0, dtype=np.float64)
    mu = s / max(n, 1)
    C = np.zeros((D, D), dtype=np.float64)
    mu32 = mu.astype(np.float32)
    for lo in range(0, n, block):
        B = X[idx[lo : lo + block]].astype(np.float32) - mu32  # (b, D) centred block
        C += (B.T @ B).astype(np.float64)
    G = C + n * np.outer(mu, mu)  # uncentred Gram E^T E
    cov = C / max(n - 1, 1)
    lam, P = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    lam, P = np.clip(lam[order], 0, None), P[:, order]
    g = np.sort(np.clip(np.linalg.eigvalsh(G), 0, None))[::-1]
    return Spectrum(mean=mu, components=P, variances=lam, singular_values=np.sqrt(g), n_rows=n)


def row_norms(X: np.ndarray) -> np.ndarray:
    """(V,) float64 L2 norm of each row, NaN where the row holds NaN/Inf (computed in blocks)."""
    out = np.empty(X.shape[0], dtype=np.float64)
    for lo in range(0, X.shape[0], _BLOCK):
        n = np.linalg.norm(np.asarray(X[lo : lo + _BLOCK], dtype=np.float32), axis=1)
        out[lo : lo + _BLOCK] = np.where(np.isfinite(n), n, np.nan)
    return out


def isoscore_from_variances(lam: np.ndarray) -> float:
    """IsoScore from the variance vector in the PCA basis (see module docstring)."""
    lam = np.asarray(lam, dtype=np.float64)
    n = lam.size
    if n < 2 or not np.any(lam > 0):
        return float("nan")
    lam_hat = np.sqrt(n) * lam / np.linalg.norm(lam)
    delta = np.linalg.norm(lam_hat - 1) / np.sqrt(2 * (n - np.sqrt(n)))
    phi = (n - delta**2 * (n - np.sqrt(n))) ** 2 / n**2
    return float((n * phi - 1) / (n - 1))


def isoscore_reference(X: np.ndarray) -> float:
    """IsoScore step by step on the points (the slow path): reorient with PCA, take the variance vector."""
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    Xp = Xc @ Vt.T  # PCA reorientation
    return isoscore_from_variances(Xp.var(axis=0, ddof=1))


def near_duplicate_pairs_reference(X: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Every pair i < j of valid rows with cosine ≥ threshold, by the all-pairs definition."""
    U, valid = normalize_rows(X)
    S = U.astype(np.float64) @ U.T.astype(np.float64)
    i, j = np.nonzero(np.triu(S >= threshold, 1) & valid[:, None] & valid[None, :])
    return set(zip(i.tolist(), j.tolist()))


def _exact_pairs(U: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
    """(P, 2) pairs among ``rows`` with cosine ≥ threshold by blocked all-pairs (rows are unit)."""
    out = []
    Ur = U[rows]
    for lo in range(0, rows.size, 2048):
        S = Ur[lo : lo + 2048] @ Ur.T  # (b, n)
        a, b = np.nonzero(S >= threshold)
        keep = b > a + lo
        out.append(np.stack([rows[a[keep] + lo], rows[b[keep]]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def near_duplicate_pairs(
    X: np.ndarray,
    *,
    threshold: float = THRESHOLDS["duplicate_cosine"],
    method: str = "auto",
    bits: int = 20,
    tables: int = 10,
    seed: int = 0,
    unit: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """(P, 2) sorted pairs (i < j) of rows with cosine ≥ ``threshold``.

    ``method="exact"`` scores all pairs in blocks; ``"lsh"`` buckets rows by the signs of
    ``bits`` random hyperplanes through the mean (``tables`` independent tables) and scores
    only pairs that share a bucket: a pair at angle θ is missed with probability
    ``(1 − (1 − θ/π)^bits)^tables`` (about 0.6% at cosine 0.99 and 0.07% at 0.995 with the defaults).
    ``"auto"`` is exact up to :data:`EXACT_DUPLICATE_MAX_ROWS` rows.
    """
    U, valid = unit if unit is not None else normalize_rows(X)
    rows = np.flatnonzero(valid)
    if method == "auto":
        method = "exact" if rows.size <= EXACT_DUPLICATE_MAX_ROWS else "lsh"
    if method == "exact":
        pairs = _exact_pairs(U, rows, threshold)
    else:
        rng = np.random.default_rng(seed)
        n, D = rows.size, U.shape[1]
        every = n == U.shape[0]  # no gather needed when every row is valid

        def block(lo: int) -> np.ndarray:
            return U[lo : lo + _BLOCK] if every else U[rows[lo : lo + _BLOCK]]

        mu = sum(block(lo).sum(axis=0, dtype=np.float64) for lo in range(0, n, _BLOCK)) / max(n, 1)
        R = rng.standard_normal((D, bits * tables)).astype(np.float32)  # all tables' hyperplanes at once
        offset = mu.astype(np.float32) @ R  # (u − μ)·r = u·r − μ·r: no centred copy
        weights = (1 << np.arange(bits)).astype(np.int64)
        keys = np.empty((n, tables), dtype=np.int64)  # (n, tables) bucket key per table
        for lo in range(0, n, _BLOCK):
            S = (block(lo) @ R > offset).reshape(-1, tables, bits)  # (b, tables, bits) sign pattern
            keys[lo : lo + _BLOCK] = S @ weights
        found = []
        for t in range(tables):
            order = np.argsort(keys[:, t], kind="stable")
            ks = keys[order, t]
            # all pairs within each bucket: compare the sorted list with itself shifted by d
            d = 1
            while d < ks.size:
                same = np.flatnonzero(ks[:-d] == ks[d:])
                if same.size == 0:
                    break
                if d > 256:  # a few huge buckets: score them whole
                    for key in np.unique(ks[same]):
                        members = rows[order[ks == key]]
                        found.append(_exact_pairs(U, np.sort(members), threshold))
                    break
                a, b = order[same], order[same + d]
                cos = np.einsum("pd,pd->p", U[rows[a]], U[rows[b]])
                hit = cos >= threshold
                found.append(np.sort(np.stack([rows[a[hit]], rows[b[hit]]], axis=1), axis=1))
                d += 1
        pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    if pairs.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.unique(np.sort(pairs.astype(np.int64), axis=1), axis=0)
    return pairs


def duplicate_clusters(pairs: np.ndarray, n: int) -> list[list[int]]:
    """Connected components (union-find) of the pair graph, largest first; singletons left out.

    >>> duplicate_clusters(np.array([[0, 1], [1, 2], [5, 6]]), 8)
    [[0, 1, 2], [5, 6]]
    """
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in np.asarray(pairs).tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in sorted({v for p in np.asarray(pairs).tolist() for v in p}):
        groups.setdefault(find(x), []).append(x)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def geometry_summary(
    X: np.ndarray,
    *,
    spec: Spectrum | None = None,
    unit: tuple[np.ndarray, np.ndarray] | None = None,
    tokens=None,
    seed: int = 0,
) -> dict:
    """All geometry measures of one matrix with their thresholds and the warnings they raise."""
    X = np.asarray(X)
    V, D = X.shape
    norms = row_norms(X)
    finite = np.isfinite(norms)
    zero = finite & (norms == 0)
    valid = finite & ~zero
    spec = spec or spectrum(X, valid)
    unit = unit or normalize_rows(X)
    vid = np.flatnonzero(valid)
    rng = np.random.default_rng(seed)
    # anisotropy draws random pairs; a sample of valid rows avoids copying the whole table
    sample = vid if vid.size <= ANISOTROPY_SAMPLE else np.sort(rng.choice(vid, ANISOTROPY_SAMPLE, replace=False))
    aniso = anisotropy(X[sample], seed=seed) if sample.size >= 2 else float("nan")
    erank = effective_rank_from_singular_values(spec.singular_values)
    total_var = float(spec.variances.sum())
    share = (np.cumsum(spec.variances) / total_var) if total_var > 0 else np.zeros(D)
    iso = isoscore_from_variances(spec.variances)
    pairs = near_duplicate_pairs(X, unit=unit, seed=seed)
    clusters = duplicate_clusters(pairs, V)
    name = (lambda i: tokens[i]) if tokens is not None else str
    bad = np.flatnonzero(~finite)
    warnings = _geometry_warnings(V, D, bad=bad, zero=zero, aniso=aniso, erank=erank, share=share, iso=iso,
                                  clusters=clusters, name=name)
    return {
        "rows": V,
        "dim": D,
        "nonfinite_rows": int(bad.size),
        "nonfinite_ids": bad[:100].tolist(),
        "zero_rows": int(zero.sum()),
        "norm": _norm_stats(norms[valid]),
        "anisotropy": aniso,
        "effective_rank": erank,
        "effective_rank_ratio": erank / D,
        "variance_share_top1": float(share[0]) if D else float("nan"),
        "variance_share_top10": float(share[min(9, D - 1)]) if D else float("nan"),
        "isoscore": iso,
        "mean_vector_norm": float(np.linalg.norm(spec.mean)),
        "near_duplicate_pairs": int(len(pairs)),
        "near_duplicate_method": "exact" if valid.sum() <= EXACT_DUPLICATE_MAX_ROWS else "lsh",
        "near_duplicate_clusters": [[name(i) for i in c[:20]] for c in clusters[:20]],
        "n_duplicate_clusters": len(clusters),
        "thresholds": dict(THRESHOLDS),
        "warnings": warnings,
        "_norms": norms,
        "_spectrum": spec,
    }


def _norm_stats(fin_norms: np.ndarray) -> dict[str, float]:
    """Mean, std, min and max of the finite non-zero row norms (NaN each when there are none)."""
    return {
        "mean": float(fin_norms.mean()) if fin_norms.size else float("nan"),
        "std": float(fin_norms.std()) if fin_norms.size else float("nan"),
        "min": float(fin_norms.min()) if fin_norms.size else float("nan"),
        "max": float(fin_norms.max()) if fin_norms.size else float("nan"),
    }


def _geometry_warnings(V: int, D: int, *, bad, zero, aniso: float, erank: float, share, iso: float, clusters,
                       name) -> list[str]:
    """The warnings of :func:`geometry_summary`: each measure past its :data:`THRESHOLDS` bound, in a fixed order."""
    t = THRESHOLDS
    warnings = []
    if bad.size:
        warnings.append(
            f"{bad.size} rows hold NaN/Inf (e.g. {', '.join(repr(name(int(i))) for i in bad[:5])}); they are left out of every measure"
        )
    if zero.sum() > t["zero_rows_share_max"] * V:
        warnings.append(
            f"{int(zero.sum())} rows are all zeros (e.g. {', '.join(repr(name(int(i))) for i in np.flatnonzero(zero)[:5])})"
        )
    if aniso > t["anisotropy_max"]:
        warnings.append(f"anisotropy {aniso:.3f} > {t['anisotropy_max']}: rows share a common direction (narrow cone)")
    if erank < t["effective_rank_ratio_min"] * D:
        warnings.append(
            f"effective rank {erank:.1f} < {t['effective_rank_ratio_min']}·D = {t['effective_rank_ratio_min'] * D:.0f}: dimensional collapse"
        )
    if D > 1 and share[0] > t["top1_variance_share_max"]:
        warnings.append(
            f"first principal component holds {share[0]:.1%} of the variance > {t['top1_variance_share_max']:.0%}: one dominant direction"
        )
    if iso < t["isoscore_min"]:
        warnings.append(f"IsoScore {iso:.3f} < {t['isoscore_min']}: variance concentrated in few dimensions")
    if clusters:
        warnings.append(
            f"{len(clusters)} clusters of near-duplicate rows (cosine ≥ {t['duplicate_cosine']}), {sum(map(len, clusters))} rows; "
            f"largest: {', '.join(repr(name(i)) for i in clusters[0][:6])}"
        )
    return warnings
