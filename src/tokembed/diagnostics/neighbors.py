"""Nearest neighbours by cosine similarity: exact (blocked matmul) and approximate (faiss).

The exact path normalises the rows once, then multiplies the queries with the table in
blocks of rows so memory stays at ``block × Q`` floats whatever V is, keeping a running
top-k per query (``np.argpartition`` on each block, merged with the best so far). Rows
that are zero or not finite never appear as neighbours. :func:`topk_cosine_reference` is
the slow, readable definition the tests hold it to. Unlike :func:`approximate_topk`
(faiss HNSW, optional), its answers are exact.

Shapes: V table rows, Q queries, D width, k neighbours.

>>> import numpy as np
>>> E = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
>>> ids, sims = topk_cosine(E, E[[0]], k=2, exclude=[[0]])
>>> ids.tolist(), [round(float(s), 3) for s in sims[0]]
([[1, 2]], [0.994, 0.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, TokenNotFoundError
from ..tokenizers.byte import byte_token
from ..tokenizers.reference import bytes_to_unicode

__all__ = [
    "normalize_rows",
    "topk_cosine",
    "topk_cosine_reference",
    "topk_cosine_decoded",
    "approximate_topk",
    "Neighbor",
    "neighbors_of",
    "spelling_hints",
    "FAISS_MIN_ROWS",
    "FAISS_MIN_QUERIES",
]

#: ``method="auto"`` uses faiss (if installed) from this many rows AND :data:`FAISS_MIN_QUERIES` queries on;
#: below that, building an HNSW index costs more than the exact blocked matmul saves.
FAISS_MIN_ROWS = 200_000
FAISS_MIN_QUERIES = 1000
_BLOCK_BYTES = 64 * 2**20  # score block budget: 64 MiB of float32


def normalize_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows (V, D) float32, valid mask (V,)): zero and non-finite rows become 0 and invalid."""
    X = np.asarray(X, dtype=np.float32)
    U = np.empty_like(X)
    valid = np.zeros(X.shape[0], dtype=bool)
    for lo in range(0, X.shape[0], 8192):  # blocks: no full-size temporaries besides U
        B = X[lo : lo + 8192]
        n = np.linalg.norm(B, axis=1)
        ok = np.isfinite(n) & (n > 0)
        U[lo : lo + 8192] = B / np.where(ok, n, 1)[:, None]
        U[lo : lo + 8192][~ok] = 0
        valid[lo : lo + 8192] = ok
    return U, valid


def topk_cosine(
    table: np.ndarray,
    queries: np.ndarray,
    *,
    k: int = 10,
    exclude: Sequence[Sequence[int]] | None = None,
    normalized: bool = False,
    valid: np.ndarray | None = None,
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k of each query among the table rows.

    Args:
        table: (V, D) rows to search (unit rows when ``normalized``).
        queries: (Q, D) query vectors.
        exclude: per query, row ids never returned (e.g. the query token itself).
        valid: (V,) mask of searchable rows (computed when not normalized).
        block_rows: rows of the table scored at once (default: a 64 MiB score block).

    Returns:
        (ids (Q, k) int64, similarities (Q, k) float32), best first; ``-1``/``-inf`` pad when
        fewer than k rows are searchable.
    """
    if k < 1:
        raise ConfigError(f"k={k}; pass k >= 1")
    if normalized:
        U = np.asarray(table, dtype=np.float32)
        if valid is None:
            valid = np.linalg.norm(U, axis=1) > 0
    else:
        U, valid = normalize_rows(table)
    Qn, qvalid = normalize_rows(queries)
    V, Q = U.shape[0], Qn.shape[0]
    block = block_rows or max(256, _BLOCK_BYTES // (4 * max(Q, 1)))
    invalid_rows = np.flatnonzero(~valid)

    def blocks():
        for lo in range(0, V, block):
            hi = min(V, lo + block)
            yield lo, U[lo:hi], invalid_rows[(invalid_rows >= lo) & (invalid_rows < hi)] - lo

    return _merge_topk(blocks(), V, Qn, qvalid, k=k, exclude=exclude)


def topk_cosine_decoded(
    decoder, queries: np.ndarray, *, k: int = 10, exclude: Sequence[Sequence[int]] | None = None,
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`topk_cosine` over a table that is decoded one block of rows at a time.

    ``decoder`` has ``shape`` (V, D), ``blocks(block_rows)`` yielding ``(first row, (b, D) rows)`` and
    ``default_block_rows()`` (a compressed table: :class:`tokembed.compress.reader.RowDecoder`). Each block is
    normalised and scored on its own, so memory stays at one decoded block plus the score block whatever V is.
    """
    Qn, qvalid = normalize_rows(queries)
    V, Q = decoder.shape[0], Qn.shape[0]
    block = block_rows or min(max(256, _BLOCK_BYTES // (4 * max(Q, 1))), decoder.default_block_rows())

    def blocks():
        for lo, rows in decoder.blocks(block):
            Ub, ok = normalize_rows(rows)
            yield lo, Ub, np.flatnonzero(~ok)

    return _merge_topk(blocks(), V, Qn, qvalid, k=k, exclude=exclude)


def _merge_topk(blocks, V: int, Qn: np.ndarray, qvalid: np.ndarray, *, k: int, exclude) -> tuple[np.ndarray, np.ndarray]:
    """Running top-k of unit queries ``Qn`` (Q, D) over ``(lo, unit rows (b, D), invalid local rows)`` blocks."""
    if k < 1:
        raise ConfigError(f"k={k}; pass k >= 1")
    Q = Qn.shape[0]
    kk = min(k, V)
    best_s = np.full((Q, kk), -np.inf, dtype=np.float32)
    best_i = np.full((Q, kk), -1, dtype=np.int64)
    for lo, Ub, bad in blocks:
        hi = lo + Ub.shape[0]
        S = Qn @ Ub.T  # (Q, b) cosine, rows unit length
        if bad.size:
            S[:, bad] = -np.inf
        if exclude is not None:
            for q, ex in enumerate(exclude):
                for j in ex:
                    if lo <= j < hi:
                        S[q, j - lo] = -np.inf
        b = hi - lo
        if b > kk:
            part = np.argpartition(-S, kk - 1, axis=1)[:, :kk]  # (Q, kk) unordered block top-k
        else:
            part = np.broadcast_to(np.arange(b), (Q, b))
        cand_s = np.concatenate([best_s, np.take_along_axis(S, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + lo], axis=1)
        # order by (-sim, id) so ties resolve to the lower id, as the reference does
        order = np.lexsort((cand_i, -cand_s), axis=1)[:, :kk]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    best_i[~np.isfinite(best_s)] = -1
    best_i[~qvalid] = -1
    best_s[~qvalid] = -np.inf
    return best_i, best_s


def topk_cosine_reference(table, queries, *, k: int = 10, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """The definition, one query at a time: cos(q, e_j) = q·e_j / (|q||e_j|), sorted by (-cos, j)."""
    table = np.asarray(table, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    ids, sims = [], []
    for q_i, q in enumerate(queries):
        scored = []
        qn = np.linalg.norm(q)
        for j, e in enumerate(table):
            en = np.linalg.norm(e)
            if exclude is not None and j in exclude[q_i]:
                continue
            if not np.isfinite(e).all() or en == 0 or not np.isfinite(qn) or qn == 0:
                continue
            scored.append((-(q @ e) / (qn * en), j))
        scored.sort()
        top = scored[:k]
        ids.append([j for _, j in top] + [-1] * (k - len(top)))
        sims.append([-s for s, _ in top] + [-np.inf] * (k - len(top)))
    return np.array(ids, dtype=np.int64), np.array(sims, dtype=np.float32)


def approximate_topk(
    table: np.ndarray, queries: np.ndarray, *, k: int = 10, m: int = 32, ef: int = 128, threads: int | None = None
):
    """Approximate cosine top-k with a faiss HNSW index (inner product on unit rows).

    Needs the optional ``faiss-cpu``; the query row itself is not removed (ask for k+1).
    ``threads`` sets faiss' OpenMP threads (default: faiss' own choice).
    """
    from ..errors import require

    faiss = require("faiss", extra="faiss", feature="approximate nearest neighbours")
    U, valid = normalize_rows(table)
    Qn, _ = normalize_rows(queries)
    rows = np.flatnonzero(valid)
    index = faiss.IndexHNSWFlat(U.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = ef
    if threads:
        faiss.omp_set_num_threads(int(threads))
    index.add(np.ascontiguousarray(U[rows]))
    sims, local = index.search(np.ascontiguousarray(Qn), k)
    ids = np.where(local >= 0, rows[np.clip(local, 0, None)], -1)
    return ids.astype(np.int64), sims.astype(np.float32)


def spelling_hints(vocab, token: str, *, n: int = 3) -> list[str]:
    """Vocabulary spellings of ``token`` for a not-found message, most likely first.

    Same-text spellings come first — case-folded (``King`` in an uncased vocab is ``king``),
    byte-level (GPT-2's ``Ġ`` for a space, sentencepiece's ``<0x65>`` for a byte), with a subword
    marker (``##``, ``Ġ``, ``▁``) — then difflib's close spellings of other text.

    >>> from tokembed.vocab import Vocab
    >>> v = Vocab(["ing", "king", "<0x65>", "Ġthe", "▁dog"])
    >>> spelling_hints(v, "King"), spelling_hints(v, "e"), spelling_hints(v, " the"), spelling_hints(v, "Dog")
    (['king', 'ing'], ['<0x65>'], ['Ġthe'], ['▁dog'])
    """
    def gpt2(text: str) -> str:  # " the" -> "Ġthe" (lowercase first: "Ġ".lower() is "ġ")
        return "".join(bytes_to_unicode()[b] for b in text.encode("utf-8"))

    data = token.encode("utf-8")
    forms = [token.lower(), token.casefold(), gpt2(token), gpt2(token.lower())]
    if len(data) == 1:  # a one-byte character as its byte token (sentencepiece byte fallback, byte vocabs)
        forms.append(byte_token(data[0]))
    for body in dict.fromkeys((token, token.lower())):
        forms += [f"##{body}", f"Ġ{body}", f"▁{body}", f"{body}</w>"]
    out = [f for f in dict.fromkeys(forms) if f != token and f in vocab]
    out += [c for c in vocab.suggest(token, n=n) if c not in out]
    return out[:n]


@dataclass
class Neighbor:
    """One neighbour of a query token."""

    rank: int
    id: int
    token: str
    cosine: float


def neighbors_of(
    source, tokens: Sequence[str], *, k: int = 10, matrix: str = "input", method: str = "exact"
) -> dict[str, list[Neighbor]]:
    """Top-k cosine neighbours of each token string in ``source`` (an :class:`EmbeddingSource`).

    A token that is not in the vocabulary raises :class:`TokenNotFoundError` naming close spellings.
    ``matrix`` is ``"input"`` or ``"output"`` (the LM head rows). ``method``: ``"exact"`` (blocked
    matmul), ``"faiss"`` (HNSW, approximate) or ``"auto"`` (faiss when installed and both V ≥
    :data:`FAISS_MIN_ROWS` and the query count ≥ :data:`FAISS_MIN_QUERIES`). A compressed source
    (``source.decodes_rows``) is searched exactly by :func:`topk_cosine_decoded`: the query rows and one
    block of table rows are decoded at a time.
    """
    if method not in ("exact", "faiss", "auto"):
        raise ConfigError(f"method={method!r}; pass 'exact', 'faiss' or 'auto'")
    if matrix not in ("input", "output"):
        raise ConfigError(f"matrix={matrix!r}; pass 'input' or 'output'", param="matrix")
    # a compressed source decodes rows through its codec: the queries, then one block of rows at a time
    decoder = source.decoder(matrix) if getattr(source, "decodes_rows", False) else None
    X = None if decoder is not None else (source.input if matrix == "input" else source.output)
    if X is None and decoder is None:
        raise ConfigError(f"{source.path}: has no output head; pass matrix='input'", param="matrix")
    ids = []
    for t in tokens:
        i = source.vocab.get(t)
        if i is None:
            close = spelling_hints(source.vocab, t)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; check the spelling"
            raise TokenNotFoundError(
                f"token {t!r} is not in the vocabulary of {source.path} ({len(source.vocab)} tokens){hint}"
            )
        ids.append(i)
    if method == "auto":
        import importlib.util

        rows = (decoder or X).shape[0]
        big = rows >= FAISS_MIN_ROWS and len(ids) >= FAISS_MIN_QUERIES
        method = "faiss" if big and importlib.util.find_spec("faiss") is not None else "exact"
    if method == "faiss" and decoder is not None:
        X = decoder.decode_all()  # the HNSW index needs every row
    if method == "exact" and decoder is not None:
        nid, nsim = topk_cosine_decoded(decoder, decoder.rows(ids), k=k, exclude=[[i] for i in ids])
    elif method == "faiss":
        nid, nsim = approximate_topk(X, X[ids], k=k + 1)
        keep = nid != np.asarray(ids)[:, None]  # drop the query itself
        nid = np.array([r[m][:k] for r, m in zip(nid, keep)])
        nsim = np.array([r[m][:k] for r, m in zip(nsim, keep)])
    else:
        nid, nsim = topk_cosine(X, X[ids], k=k, exclude=[[i] for i in ids])
    out = {}
    for t, row_i, row_s in zip(tokens, nid, nsim):
        out[t] = [
            Neighbor(rank=r + 1, id=int(j), token=source.vocab.token(int(j)), cosine=float(s))
            for r, (j, s) in enumerate(zip(row_i, row_s))
            if j >= 0
        ]
    return out
