"""Frequency vs quality: token counts on a corpus and how norm and neighbours change with them.

The corpus is tokenized with the source's own tokenizer (the ids must be the rows). Tokens
fall in log-frequency bands (0, 1–9, 10–99, ...); per band we report the mean norm and the
*neighbour coherence*: the mean cosine of a token's k nearest neighbours and the share of
them in the same band (rare tokens that only neighbour other rare tokens learned little
beyond "I am rare", Gao et al. 2019, "Representation Degeneration"). Unlike
:mod:`tokembed.diagnostics.undertrained` this needs a corpus and looks at all tokens.

Counts and bands are :mod:`tokembed.metrics` (:func:`~tokembed.metrics.corpus_token_counts`,
:func:`~tokembed.metrics.frequency_decades`), so a band here is the band of training and ``eval``.
"""

from __future__ import annotations

import numpy as np

from ..metrics import band_name, frequency_decades
from .neighbors import topk_cosine

__all__ = ["frequency_summary"]


def frequency_summary(
    counts: np.ndarray,
    norms: np.ndarray,
    unit: tuple[np.ndarray, np.ndarray],
    tokens,
    *,
    special_ids=(),
    per_band: int = 200,
    k: int = 10,
    seed: int = 0,
) -> dict:
    """Per band: tokens, mean norm, neighbour coherence (sampled ``per_band`` tokens); never-seen tokens."""
    U, valid = unit
    V = U.shape[0]
    bands = frequency_decades(counts)
    present = [int(d) for d in np.unique(bands)]
    rng = np.random.default_rng(seed)
    special = set(special_ids)
    rows, sample_ids, sample_band = [], [], []
    for b in present:
        members = np.flatnonzero((bands == b) & valid)
        if members.size == 0:
            continue
        pick = members if members.size <= per_band else rng.choice(members, per_band, replace=False)
        sample_ids.append(pick)
        sample_band.append(np.full(pick.size, b))
    coherence = {}
    if sample_ids:
        q = np.concatenate(sample_ids)
        qb = np.concatenate(sample_band)
        nid, nsim = topk_cosine(U, U[q], k=k, exclude=[[int(i)] for i in q], normalized=True, valid=valid)
        same = (bands[np.clip(nid, 0, V - 1)] == qb[:, None]) & (nid >= 0)
        for b in np.unique(qb):
            m = qb == b
            s = nsim[m]
            coherence[int(b)] = (float(np.mean(s[np.isfinite(s)])), float(same[m].mean()), int(m.sum()))
    for b in present:
        members = np.flatnonzero(bands == b)
        if members.size == 0:
            continue
        nm = norms[members]
        nm = nm[np.isfinite(nm)]
        c = coherence.get(b)
        rows.append(
            {
                "band": band_name(b),
                "tokens": int(members.size),
                "mean_norm": float(nm.mean()) if nm.size else float("nan"),
                f"mean_top{k}_cosine": c[0] if c else float("nan"),
                "same_band_neighbours": c[1] if c else float("nan"),
                "same_band_chance": float(members.size / V),  # the share a random neighbour would give
                "sampled": c[2] if c else 0,
            }
        )
    unseen = [i for i in np.flatnonzero(counts == 0).tolist() if i not in special]
    fin = np.isfinite(norms) & (counts > 0)
    corr = float(np.corrcoef(np.log10(counts[fin]), norms[fin])[0, 1]) if fin.sum() > 2 else float("nan")
    return {
        "bands": rows,
        "never_seen": len(unseen),
        "never_seen_share": len(unseen) / V if V else float("nan"),
        "never_seen_examples": [tokens[i] for i in unseen[:50]],
        "norm_logfreq_correlation": corr,
        "_coherence_sample": (np.concatenate(sample_ids) if sample_ids else np.zeros(0, dtype=np.int64)),
    }
