"""Metrics, each defined once: tokenization statistics, bits per byte, calibration, geometry,
token counts and frequency bands.

Unlike perplexity per token, **bits per byte** does not depend on the tokenizer, so it is
the metric for comparing tokenizers and embedding designs on the same text:
``bpb = Σ CE_nats / ln 2 / UTF-8 bytes``.

>>> round(bits_per_byte(total_nats=693.147, n_bytes=1000), 4)
1.0
>>> fertility(n_tokens=15, n_words=10), bytes_per_token(n_bytes=60, n_tokens=15)
(1.5, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = [
    "fertility",
    "bytes_per_token",
    "unk_rate",
    "vocab_utilisation",
    "bits_per_byte",
    "perplexity",
    "expected_calibration_error",
    "reliability_bins",
    "nn_overlap",
    "effective_rank",
    "effective_rank_from_singular_values",
    "anisotropy",
    "ECE_BINS",
    "token_counts",
    "corpus_token_counts",
    "frequency_decades",
    "band_name",
    "band_names",
    "frequency_bands",
]

#: Number of equal-width confidence bins for ECE (Guo et al. 2017, "On Calibration of Modern Neural Networks" use 15).
ECE_BINS = 15


def fertility(*, n_tokens: int, n_words: int) -> float:
    """Tokens per whitespace-separated word."""
    return n_tokens / n_words if n_words else float("nan")


def bytes_per_token(*, n_bytes: int, n_tokens: int) -> float:
    """UTF-8 bytes per token (higher = more compression)."""
    return n_bytes / n_tokens if n_tokens else float("nan")


def unk_rate(*, n_unk: int, n_tokens: int) -> float:
    """Share of tokens that are the unknown token."""
    return n_unk / n_tokens if n_tokens else float("nan")


def vocab_utilisation(*, n_seen: int, vocab_size: int) -> float:
    """Share of the vocabulary that occurs at least once on a corpus."""
    return n_seen / vocab_size if vocab_size else float("nan")


def bits_per_byte(*, total_nats: float, n_bytes: int) -> float:
    """Total cross-entropy (nats, summed over predicted tokens) in bits per UTF-8 byte of the text."""
    return total_nats / math.log(2) / n_bytes if n_bytes else float("nan")


def perplexity(*, total_nats: float, n_tokens: int) -> float:
    """exp(mean CE per token); never compare across tokenizers — use :func:`bits_per_byte`."""
    return math.exp(total_nats / n_tokens) if n_tokens else float("nan")


def reliability_bins(confidence, correct, n_bins: int = ECE_BINS):
    """Per equal-width bin over [0, 1]: (count, mean confidence, accuracy) as three arrays."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    corr = np.asarray(correct, dtype=np.float64).ravel()
    idx = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)  # conf == 1.0 goes to the last bin
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_corr = np.bincount(idx, weights=corr, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return count, sum_conf / count, sum_corr / count


def expected_calibration_error(confidence, correct, n_bins: int = ECE_BINS) -> float:
    """ECE = Σ_b (n_b / N) |acc_b − conf_b| over equal-width confidence bins.

    >>> expected_calibration_error([0.9, 0.9, 0.9, 0.9], [1, 1, 1, 0])
    0.15...
    """
    count, conf, acc = reliability_bins(confidence, correct, n_bins)
    n = count.sum()
    if n == 0:
        return float("nan")
    m = count > 0
    return float(np.sum(count[m] / n * np.abs(acc[m] - conf[m])))


def _as_np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def nn_overlap(neigh_a: Sequence[Sequence[int]], neigh_b: Sequence[Sequence[int]]) -> float:
    """Mean |N_a(i) ∩ N_b(i)| / k over rows, for two (rows, k) neighbour-id tables.

    >>> nn_overlap([[1, 2], [0, 2]], [[2, 1], [0, 3]])
    0.75
    """
    a = np.asarray(neigh_a)
    b = np.asarray(neigh_b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"neighbour tables must have the same (rows, k) shape, got {a.shape} and {b.shape}")
    k = a.shape[1]
    hits = [len(set(ra.tolist()) & set(rb.tolist())) for ra, rb in zip(a, b)]
    return float(np.mean(hits) / k) if len(hits) else float("nan")


def effective_rank(matrix) -> float:
    """exp(H(p)) with p the singular values normalised to sum 1 (Roy & Vetterli 2007).

    >>> round(effective_rank(np.eye(4)), 6)
    4.0
    """
    s = np.linalg.svd(_as_np(matrix).astype(np.float64), compute_uv=False)
    return effective_rank_from_singular_values(s)


def effective_rank_from_singular_values(s) -> float:
    """:func:`effective_rank` from the singular values alone (e.g. ``sqrt`` of the Gram eigenvalues of a tall matrix).

    >>> round(effective_rank_from_singular_values([2.0, 2.0, 0.0]), 6)
    2.0
    """
    s = np.asarray(s, dtype=np.float64)
    s = s[s > 0]
    if s.size == 0:
        return 0.0
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def anisotropy(matrix, *, n_pairs: int = 10_000, seed: int = 0) -> float:
    """Mean cosine similarity of random row pairs (i != j); 0 for isotropic, near 1 for collapsed."""
    x = _as_np(matrix)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=n_pairs)
    j = rng.integers(0, n - 1, size=n_pairs)
    j = j + (j >= i)  # j != i
    norms = np.linalg.norm(x, axis=1)
    ok = (norms[i] > 0) & (norms[j] > 0)
    i, j = i[ok], j[ok]
    cos = np.einsum("nd,nd->n", x[i], x[j]) / (norms[i] * norms[j])
    return float(cos.mean()) if cos.size else float("nan")


def token_counts(tokens: np.ndarray, vocab_size: int, *, chunk: int = 1 << 24) -> np.ndarray:
    """Occurrences of every id in ``tokens`` (V,) int64, streamed in chunks (tokens may be a memmap);
    ids >= ``vocab_size`` are not counted.

    >>> token_counts(np.array([2, 0, 2, 7]), 3).tolist()
    [1, 0, 2]
    """
    counts = np.zeros(vocab_size, dtype=np.int64)
    for i in range(0, len(tokens), chunk):
        counts += np.bincount(np.asarray(tokens[i : i + chunk]), minlength=vocab_size)[:vocab_size]
    return counts


def corpus_token_counts(
    tokenizer, texts: Iterable[str], *, vocab_size: int, max_bytes: int | None = None, batch: int = 2000,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, int]]:
    """(V,) int64 counts of the ids ``tokenizer`` produces on ``texts`` (e.g. ``Corpus.texts()``: lines), and
    ``{"lines", "bytes", "tokens"}`` read. ``max_bytes`` stops before the line that would pass that many
    UTF-8 bytes. Every ``tokenizer.encode_batch`` (V = ``vocab_size``) works; ids >= V are not counted.

    >>> class Chars:  # a toy tokenizer: one id per character code
    ...     def encode_batch(self, lines): return [[ord(c) - 97 for c in s] for s in lines]
    >>> counts, read = corpus_token_counts(Chars(), ["abba", "c"], vocab_size=3)
    >>> counts.tolist(), read
    ([2, 2, 1], {'lines': 2, 'bytes': 5, 'tokens': 5})
    """
    counts = np.zeros(vocab_size, dtype=np.int64)
    read = {"lines": 0, "bytes": 0, "tokens": 0}
    buf: list[str] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="count tokens", unit="B", unit_scale=True, total=max_bytes, leave=False)

    def flush() -> None:
        for ids in tokenizer.encode_batch(buf):
            if len(ids):
                a = np.asarray(ids, dtype=np.int64)
                counts[:] += token_counts(a, vocab_size)
                read["tokens"] += a.size
        buf.clear()

    for line in texts:
        b = len(line.encode("utf-8"))
        if max_bytes is not None and read["bytes"] + b > max_bytes:
            break
        read["bytes"] += b
        read["lines"] += 1
        buf.append(line.rstrip("\n"))
        if bar is not None:
            bar.update(b)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    if bar is not None:
        bar.close()
    return counts, read


def frequency_decades(counts) -> np.ndarray:
    """(V,) int64 frequency decade of every count: 0 for unseen, k for ``10^(k-1) <= count < 10^k``.

    The one definition of a frequency band, used by training monitors, ``eval``, ``inspect``,
    the compression report and the study report.

    >>> frequency_decades(np.array([0, 1, 9, 10, 250, 12000])).tolist()
    [0, 1, 1, 2, 3, 5]
    """
    counts = np.asarray(counts, dtype=np.int64)
    return np.where(counts > 0, np.floor(np.log10(np.maximum(counts, 1))).astype(np.int64) + 1, 0)


def band_name(decade: int) -> str:
    """Name of a frequency decade: ``"0"``, ``"1-9"``, ``"10-99"``, ``"1000-9999"``, ...

    >>> [band_name(d) for d in (0, 1, 4)]
    ['0', '1-9', '1000-9999']
    """
    return "0" if decade == 0 else f"{10 ** (decade - 1)}-{10**decade - 1}"


def band_names(counts) -> list[str]:
    """The band name of every count.

    >>> band_names(np.array([0, 3, 10, 250, 12000]))
    ['0', '1-9', '10-99', '100-999', '10000-99999']
    """
    return [band_name(int(d)) for d in frequency_decades(counts)]


def frequency_bands(counts) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Band of every id by its count in decades (:func:`frequency_decades`): 0 (unseen), 1–9, 10–99, ...

    Returns ``(band_of (V,) int64, bands)`` with bands ``[{"name", "lo", "hi", "n_types", "count"}]``
    (empty bands dropped, ids renumbered densely).

    >>> band_of, bands = frequency_bands(np.array([0, 3, 12, 150, 7]))
    >>> band_of.tolist(), [b["name"] for b in bands]
    ([0, 1, 2, 3, 1], ['0', '1-9', '10-99', '100-999'])
    """
    counts = np.asarray(counts, dtype=np.int64)
    raw = frequency_decades(counts)
    present = np.unique(raw)
    band_of = np.searchsorted(present, raw).astype(np.int64)  # dense ids in decade order
    bands = []
    for r in present:
        lo, hi = (0, 0) if r == 0 else (10 ** (int(r) - 1), 10 ** int(r) - 1)
        sel = raw == r
        bands.append({"name": band_name(int(r)), "lo": int(lo), "hi": int(hi), "n_types": int(sel.sum()),
                      "count": int(counts[sel].sum())})
    return band_of, bands


# -- Languages: cross-language parity and morpheme boundaries (lang) ----------------------------
# Petrov et al. 2023, "Language Model Tokenizers Introduce Unfairness Between Languages" (NeurIPS):
# a language pays a *premium* when the same content costs it more tokens than the reference language.

__all__ += ["premium", "parity", "fallback_share", "boundary_precision_recall", "language_budget", "language_trades"]


def premium(*, n_tokens: int, n_units: int) -> float:
    """Tokens per unit of text: per UTF-8 byte, or per aligned sentence when the languages' texts are parallel.

    >>> premium(n_tokens=30, n_units=120), premium(n_tokens=30, n_units=10)
    (0.25, 3.0)
    """
    return n_tokens / n_units if n_units else float("nan")


def parity(*, premium_lang: float, premium_reference: float) -> float:
    """A language's premium over the reference language's (Petrov et al.'s ratio; 1.0 = parity, 2.0 = twice the tokens).

    >>> parity(premium_lang=0.5, premium_reference=0.25)
    2.0
    """
    return premium_lang / premium_reference if premium_reference else float("nan")


def fallback_share(*, n_fallback: int, n_chars: int) -> float:
    """Share of characters the tokenizer could not give a token of their own: split into byte tokens or mapped to UNK.

    >>> fallback_share(n_fallback=3, n_chars=12)
    0.25
    """
    return n_fallback / n_chars if n_chars else float("nan")


def boundary_precision_recall(predicted: set[int], reference: set[int]) -> tuple[float, float]:
    """Precision and recall of predicted cut positions against reference ones (e.g. token ends vs morpheme ends).

    >>> boundary_precision_recall({2, 3, 5}, {2, 5, 7})
    (0.666..., 0.666...)
    """
    hit = len(predicted & reference)
    p = hit / len(predicted) if predicted else float("nan")
    r = hit / len(reference) if reference else float("nan")
    return p, r


def language_budget(*, n_bytes: dict[str, int], n_tokens: dict[str, int]) -> dict[str, dict[str, float]]:
    """Each language's share of a training budget, in bytes and in tokens (a language whose share of tokens
    exceeds its share of bytes pays a premium: its text costs more steps for the same content).

    >>> language_budget(n_bytes={"en": 300, "ko": 100}, n_tokens={"en": 75, "ko": 50})["ko"]
    {'bytes': 100, 'tokens': 50, 'byte_share': 0.25, 'token_share': 0.4}
    """
    total_b, total_t = sum(n_bytes.values()), sum(n_tokens.values())
    return {
        lang: {
            "bytes": n_bytes[lang],
            "tokens": n_tokens.get(lang, 0),
            "byte_share": n_bytes[lang] / total_b if total_b else float("nan"),
            "token_share": n_tokens.get(lang, 0) / total_t if total_t else float("nan"),
        }
        for lang in n_bytes
    }


def language_trades(
    bpb: dict[str, dict[str, float]], *, baseline: str, noise: float
) -> dict[str, dict[str, list[str]]]:
    """How designs trade one language against another: per design, the languages whose bits per byte it
    lowers (``better``) or raises (``worse``) against the ``baseline`` design by more than ``noise``.
    A design with both is a trade; ``bpb`` is design -> language -> bits per byte.

    >>> bpb = {"shared": {"en": 1.00, "ko": 1.50}, "big-V": {"en": 0.97, "ko": 1.58}}
    >>> language_trades(bpb, baseline="shared", noise=0.02)
    {'big-V': {'better': ['en'], 'worse': ['ko']}}
    """
    if baseline not in bpb:
        raise ConfigError(f"baseline design {baseline!r} is not among the designs {sorted(bpb)}; pass one of them")
    base = bpb[baseline]
    out: dict[str, dict[str, list[str]]] = {}
    for design, per_lang in bpb.items():
        if design == baseline:
            continue
        deltas = {lang: v - base[lang] for lang, v in per_lang.items() if lang in base}
        out[design] = {
            "better": sorted(lang for lang, d in deltas.items() if d < -noise),
            "worse": sorted(lang for lang, d in deltas.items() if d > noise),
        }
    return out
