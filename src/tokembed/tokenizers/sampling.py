"""Seeded subword sampling in Python: BPE-dropout and Unigram lattice sampling, the same ids in any process.

Unlike :mod:`~tokembed.tokenizers.reference` and :mod:`~tokembed.tokenizers.spm_reference`
(readable references of the *ordinary* encoders, checked against the engines), this module is
the production path of *sampled* encoding (``encode(text, dropout=p, seed=s)`` /
``encode(text, alpha=a, nbest=n, seed=s)``). sentencepiece's own sampling draws from a
process-wide C++ generator whose results for one seed differ from process to process
(measured: the same ``set_random_generator_seed(0)`` gives different ids in each new
process), so the draws here come from ``random.Random(seed)``, which is the same everywhere.

- :func:`bpe_dropout` (Provilkov et al. 2020, "BPE-Dropout"): merge the best pair (lowest
  rank, leftmost on ties) first, as ordinary BPE; each merge about to be applied is skipped
  with probability ``p`` (sentencepiece's ``bpe_model.cc`` formulation: a skipped pair comes
  back only when a neighbour changes). ``p = 0`` is the ordinary encode. Used by ``bytebpe``
  (ranks = merged ids) and sentencepiece ``bpe`` (ranks = minus piece scores).
- :func:`sample_lattice` (Kudo 2018, "Subword Regularization", §3.2): forward-filtering
  backward-sampling over the Unigram lattice; a segmentation is drawn with probability
  proportional to ``exp(alpha * score)``. :func:`sample_nbest` draws from the n best.

>>> import random
>>> merges = {("a", "b"): (0, "ab"), ("ab", "c"): (1, "abc")}
>>> bpe_dropout(list("abcab"), lambda a, b: merges.get((a, b)), 0.0, random.Random(0))
['abc', 'ab']
>>> bpe_dropout(list("abcab"), lambda a, b: merges.get((a, b)), 0.5, random.Random(3))
['a', 'b', 'c', 'ab']
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Hashable, Sequence

from ._spm_proto import BYTE, NORMAL, UNK_PENALTY, USER_DEFINED, PieceTable

__all__ = ["bpe_dropout", "sample_lattice", "sample_nbest", "Edge", "spm_bpe_dropout", "spm_unigram_sample", "spm_score"]

#: One lattice edge ending at a position: (start, score, known piece?).
Edge = tuple[int, float, bool]


def bpe_dropout(
    symbols: Sequence[Hashable],
    pair_rank: Callable[[Hashable, Hashable], tuple[float, Hashable] | None],
    dropout: float,
    rng: random.Random,
) -> list:
    """Merge ``symbols`` with BPE, skipping each merge about to be applied with probability ``dropout``.

    ``pair_rank(left, right)`` gives ``(rank, merged symbol)`` for a learned pair (lower rank
    merges first), or None. Runs in O(n log n) with a heap and a linked list.
    """
    n = len(symbols)
    sym = list(symbols)
    nxt = [*range(1, n), -1]
    prv = list(range(-1, n - 1))
    heap: list[tuple] = []

    def push(i: int) -> None:
        j = nxt[i] if i >= 0 else -1
        if j < 0:
            return
        r = pair_rank(sym[i], sym[j])
        if r is not None:
            heapq.heappush(heap, (r[0], i, j, sym[i], sym[j], r[1]))

    for i in range(n - 1):
        push(i)
    while heap:
        _, i, j, a, b, merged = heapq.heappop(heap)
        if nxt[i] != j or sym[i] != a or sym[j] != b:  # stale: a neighbour merged since
            continue
        if dropout > 0 and rng.random() < dropout:
            continue
        sym[i] = merged
        nxt[i] = nxt[j]
        if nxt[j] >= 0:
            prv[nxt[j]] = i
        nxt[j] = -2  # dead
        push(prv[i])
        push(i)
    out, i = [], 0 if n else -1
    while i >= 0:
        out.append(sym[i])
        i = nxt[i]
    return out


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _draw(weights: list[float], rng: random.Random) -> int:
    """Index k with probability weights[k] / sum(weights)."""
    u = rng.random() * sum(weights)
    acc = 0.0
    for k, w in enumerate(weights):
        acc += w
        if u < acc:
            return k
    return len(weights) - 1


def sample_lattice(edges_ending: Sequence[Sequence[Edge]], alpha: float, rng: random.Random) -> list[tuple[int, int, bool]]:
    """One segmentation of a lattice over positions 0..n, drawn with probability ∝ exp(alpha · score).

    ``edges_ending[j]``: the edges ``(start, score, known)`` that end at position ``j``
    (``edges_ending[0]`` is empty). Returns ``(start, end, known)`` spans in order.
    Forward: ``F[j] = logsumexp_i(F[i] + alpha·score(i, j))``; backward from ``n``: pick the
    edge into ``j`` with probability ``exp(F[i] + alpha·score - F[j])``.

    >>> edges = [[], [(0, -1.0, True)], [(1, -1.0, True), (0, -1.5, True)]]  # "a", "b", "ab"
    >>> sample_lattice(edges, 0.0, random.Random(1)), sample_lattice(edges, 0.0, random.Random(0))
    ([(0, 1, True), (1, 2, True)], [(0, 2, True)])
    """
    n = len(edges_ending) - 1
    fwd = [0.0] + [-math.inf] * n
    for j in range(1, n + 1):
        cands = [fwd[i] + alpha * s for i, s, _ in edges_ending[j] if fwd[i] > -math.inf]
        if cands:
            fwd[j] = _logsumexp(cands)
    spans = []
    j = n
    while j > 0:
        edges = [e for e in edges_ending[j] if fwd[e[0]] > -math.inf]
        k = _draw([math.exp(fwd[i] + alpha * s - fwd[j]) for i, s, _ in edges], rng)
        i, _, known = edges[k]
        spans.append((i, j, known))
        j = i
    return spans[::-1]


def sample_nbest(candidates: Sequence[Sequence[int]], scores: Sequence[float], alpha: float, rng: random.Random) -> list[int]:
    """One of the n best segmentations, drawn with probability ∝ exp(alpha · score) (sentencepiece's ``nbest_size > 1``)."""
    top = max(scores)
    return list(candidates[_draw([math.exp(alpha * (s - top)) for s in scores], rng)])


# -- sentencepiece models (tokembed's settings: identity normalisation, no dummy prefix) --------------
def _spm_text(text: str) -> str:
    return text.replace(" ", "\u2581")  # sentencepiece writes a space as "▁"


def spm_bpe_dropout(table: PieceTable, text: str, dropout: float, rng: random.Random) -> list[int]:
    """sentencepiece BPE with dropout: characters merged into the highest-scoring piece first (leftmost on ties)."""
    score = table.score

    def rank(a: str, b: str) -> tuple[float, str] | None:
        s = score.get(a + b)
        return None if s is None else (-float(s), a + b)

    pieces = bpe_dropout(list(_spm_text(text)), rank, dropout, rng)
    return table.ids([(p, p in table.id) for p in pieces])


def spm_unigram_sample(table: PieceTable, text: str, alpha: float, rng: random.Random) -> list[int]:
    """A Unigram segmentation drawn from the whole lattice (sentencepiece's ``nbest_size=-1``)."""
    s = _spm_text(text)
    n = len(s)
    edges: list[list[Edge]] = [[] for _ in range(n + 1)]
    unk = float(table.min_score - UNK_PENALTY)
    score, prefixes = table.float_score, table.prefixes
    for i in range(n):
        single = False
        for j in range(i + 1, min(n, i + table.max_len) + 1):
            sub = s[i:j]
            if sub not in prefixes:  # no longer piece starts with it
                break
            sc = score.get(sub)
            if sc is not None:
                single |= j == i + 1
                edges[j].append((i, sc, True))
        if not single:  # an unknown character: one node of length 1
            edges[i + 1].append((i, unk, False))
    return table.ids([(s[i:j], known) for i, j, known in sample_lattice(edges, alpha, rng)])


def spm_score(table: PieceTable, ids: Sequence[int]) -> float:
    """Log-probability score of a Unigram segmentation given as ids (unknown characters scored as in the lattice)."""
    total, run = 0.0, bytearray()
    unk = float(table.min_score - UNK_PENALTY)
    for i in [*ids, None]:
        piece = None if i is None else table.pieces[i]
        if piece is not None and piece[2] == BYTE:
            run.append(int(piece[0][3:5], 16))
            continue
        if run:
            total += unk * len(run.decode("utf-8", "replace"))
            run = bytearray()
        if piece is not None:
            total += float(piece[1]) if piece[2] in (NORMAL, USER_DEFINED) else unk
    return total
