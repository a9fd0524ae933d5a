"""Seeded k-means (k-means++ init + Lloyd), batched over independent subspaces.

Shared by product quantization (``pq.py``: M subspaces clustered at once) and post-hoc
hashing (``hashing.py``: one "subspace" = whole rows). Batching the M problems into one
``baddbmm`` per chunk of points is what makes PQ training fast in plain torch.

Objective: minimise ``Σ_n ||x_n - c_{a(n)}||²``. Init: k-means++ (Arthur & Vassilvitskii
2007): each next centre drawn with probability ∝ squared distance to the nearest chosen
centre. Lloyd steps: assign to the nearest centre, move each centre to its points' mean;
an emptied centre is moved onto the point that is currently worst served.

Shapes: M problems, N points, d dims, K centres.

>>> import torch
>>> X = torch.tensor([[[0.0], [0.1], [10.0], [10.1]]])  # (M=1, N=4, d=1)
>>> C, a = kmeans(X, 2, seed=0)
>>> sorted(round(c, 2) for c in C[0, :, 0].tolist()), a[0].tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
([0.05, 10.05], True)
"""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

__all__ = ["kmeans", "assign"]

#: floats per (M, chunk, K) distance block: 4 Mi floats = 16 MiB, about the size of a last-level cache
_BLOCK = 1 << 22
#: k-means++ seeds from at most this many points per centre (a seeded subsample, as faiss
#: subsamples its training set), which keeps the K sequential seeding steps cheap
_PP_POINTS_PER_CENTRE = 32
#: a bar appears only once k-means has run this long (issue 12: progress on every step longer than ~2 s)
PROGRESS_DELAY_S = 2.0


def _sqdist(x: torch.Tensor, C: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """(M, n, d), (M, K, d), (M, 1, K) -> (M, n, K) squared distances ||x||² - 2 x·c + ||c||²."""
    x2 = (x * x).sum(-1, keepdim=True)  # (M, n, 1)
    return torch.baddbmm(c2 + x2, x, C.transpose(1, 2), alpha=-2.0).clamp_min_(0)


def assign(X: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of every point: (M, N, d), (M, K, d) -> codes (M, N) long, squared distances (M, N)."""
    M, N, _ = X.shape
    c2 = (C * C).sum(-1).unsqueeze(1)  # (M, 1, K)
    codes = torch.empty(M, N, dtype=torch.long)
    dist = torch.empty(M, N)
    chunk = max(64, _BLOCK // (M * C.shape[1]))
    for n0 in range(0, N, chunk):
        d2 = _sqdist(X[:, n0 : n0 + chunk], C, c2)  # (M, n, K)
        torch.min(d2, -1, out=(dist[:, n0 : n0 + chunk], codes[:, n0 : n0 + chunk]))
    return codes, dist


def _kmeanspp(X: torch.Tensor, K: int, g: torch.Generator, bar: tqdm) -> torch.Tensor:
    M, N, d = X.shape
    ar = torch.arange(M)
    first = torch.randint(0, N, (M,), generator=g)
    C = torch.empty(M, K, d)
    C[:, 0] = X[ar, first]
    best = ((X - C[:, :1]) ** 2).sum(-1)  # (M, N) distance to nearest chosen centre
    for k in range(1, K):
        cs = (best.clamp_min(0) + 1e-30).cumsum(1)  # (M, N); +1e-30: all-duplicate data falls back to uniform
        u = torch.rand(M, 1, generator=g) * cs[:, -1:]
        nxt = torch.searchsorted(cs, u).squeeze(1).clamp_max_(N - 1)  # (M,) drawn ∝ D²
        C[:, k] = X[ar, nxt]
        torch.minimum(best, ((X - C[:, k : k + 1]) ** 2).sum(-1), out=best)
        bar.update(1)
    return C


def kmeans(X: torch.Tensor, K: int, *, iters: int = 25, seed: int = 0, init: str = "k-means++",
           progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster each of M point sets into K centres: X (M, N, d) -> centres (M, K, d), codes (M, N).

    Deterministic for a given seed (and torch thread count). ``K <= N`` is required.
    ``progress``: a bar on stderr (seeding steps, then Lloyd iterations) once the work has run
    :data:`PROGRESS_DELAY_S` seconds; ``None`` shows it only when stderr is a terminal.
    """
    X = X.float().contiguous()
    M, N, d = X.shape
    if not 1 <= K <= N:
        raise ValueError(f"k-means needs 1 <= K <= N, got K={K}, N={N}")
    g = torch.Generator().manual_seed(seed)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    with tqdm(total=(0 if init == "random" else K - 1) + iters, desc=f"k-means (K={K}, M={M})", unit="step",
              delay=PROGRESS_DELAY_S, disable=not show, leave=False, file=sys.stderr) as bar:
        return _cluster(X, K, iters=iters, init=init, g=g, bar=bar)


def _cluster(X: torch.Tensor, K: int, *, iters: int, init: str, g: torch.Generator, bar: tqdm) -> tuple[torch.Tensor, torch.Tensor]:
    M, N, d = X.shape
    if init == "random":  # K distinct points per problem (as faiss does)
        C = torch.stack([X[m, torch.randperm(N, generator=g)[:K]] for m in range(M)])
    else:
        n_pp = min(N, _PP_POINTS_PER_CENTRE * K)
        sub = X if n_pp == N else X[:, torch.randperm(N, generator=g)[:n_pp]]
        C = _kmeanspp(sub, K, g, bar)
    off = (torch.arange(M) * K).unsqueeze(1)  # (M, 1): codes of problem m live at rows m·K.. of a flat table
    for _ in range(iters):
        codes, dist = assign(X, C)  # (M, N)
        flat = (codes + off).view(-1)  # (M·N,)
        sums = torch.zeros(M * K, d).index_add_(0, flat, X.view(M * N, d)).view(M, K, d)
        counts = torch.zeros(M * K).index_add_(0, flat, torch.ones(M * N)).view(M, K)
        new = sums / counts.clamp_min(1).unsqueeze(-1)
        empty = counts == 0  # (M, K)
        if bool(empty.any()):
            for m in empty.any(1).nonzero().flatten().tolist():
                ks = empty[m].nonzero().flatten()
                worst = dist[m].topk(len(ks)).indices  # the worst-served points become new centres
                new[m, ks] = X[m, worst]
        bar.update(1)
        if torch.equal(new, C):
            break
        C = new
    codes, _ = assign(X, C)
    return C, codes
