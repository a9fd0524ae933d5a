"""Contextual geometry per layer over a corpus (Ethayarajh 2019, "How Contextual are Contextualized Word Representations?").

For a model tokembed can run (a tokembed checkpoint), the hidden states of many corpus
lines are collected at every layer (0 = embedding output, then each block) and, per layer:

* **anisotropy** = mean cos(h_a, h_b) over random pairs of token occurrences (a ≠ b);
* **self-similarity** of a token type w = mean cos(h_a, h_b) over pairs of its occurrences in
  different contexts, averaged over types seen in at least ``min_occurrences`` contexts;
* **adjusted self-similarity** = self-similarity − anisotropy (Ethayarajh's baseline correction):
  near 0 means the representation depends on context as much as any two random tokens differ.

Unlike :mod:`tokembed.contextual` (the vectors of one text, for ``tokembed embed``), this
summarises a whole corpus per layer. Shapes: N collected occurrences, D model width.
"""

from __future__ import annotations

import numpy as np

from ..metrics import anisotropy

__all__ = ["collect_hidden_states", "self_similarity", "contextual_summary"]


def collect_hidden_states(
    model, tokenizer, texts, *, max_tokens: int = 20_000, seq_len: int = 64, progress: bool = True
):
    """(ids (N,), [layer (N, D) float32 for each layer]) for up to ``max_tokens`` tokens of ``texts``."""
    import torch

    ids_all: list[np.ndarray] = []
    layers: list[list[np.ndarray]] = []
    n = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_tokens, desc="hidden states", unit="tok", leave=False)
    limit = getattr(getattr(model, "config", None), "max_seq_len", seq_len) or seq_len
    with torch.no_grad():
        for text in texts:
            ids = tokenizer.encode(text)[: min(seq_len, limit)]
            if len(ids) < 2:
                continue
            out = model(torch.tensor([ids], dtype=torch.long), output_hidden_states=True, return_logits=False)
            hs = out.hidden_states  # tuple of (1, T, D)
            if not layers:
                layers = [[] for _ in hs]
            for li, h in enumerate(hs):
                layers[li].append(h[0].float().cpu().numpy())
            ids_all.append(np.asarray(ids))
            n += len(ids)
            if bar is not None:
                bar.update(len(ids))
            if n >= max_tokens:
                break
    if bar is not None:
        bar.close()
    if not ids_all:
        return np.zeros(0, dtype=np.int64), []
    return np.concatenate(ids_all), [np.concatenate(L) for L in layers]


def self_similarity(
    ids: np.ndarray, H: np.ndarray, *, min_occurrences: int = 2, max_per_type: int = 20, seed: int = 0
) -> tuple[float, int]:
    """(mean over types of the mean pairwise cosine of their occurrences, number of types used).

    >>> H = np.array([[1., 0], [1, 0.1], [0, 1], [0.1, 1]])
    >>> s, n = self_similarity(np.array([5, 5, 7, 7]), H)
    >>> round(s, 4), n
    (0.995, 2)
    """
    rng = np.random.default_rng(seed)
    Hn = H / np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-12)
    order = np.argsort(ids, kind="stable")
    types, starts, counts = np.unique(ids[order], return_index=True, return_counts=True)
    sims = []
    for s, c in zip(starts, counts):
        if c < min_occurrences:
            continue
        occ = order[s : s + c]
        if c > max_per_type:
            occ = rng.choice(occ, max_per_type, replace=False)
        G = Hn[occ] @ Hn[occ].T  # (m, m) cosine between the occurrences
        m = len(occ)
        sims.append((G.sum() - np.trace(G)) / (m * (m - 1)))
    return (float(np.mean(sims)) if sims else float("nan")), len(sims)


def contextual_summary(source, *, corpus=None, max_tokens: int = 20_000, seed: int = 0, progress: bool = True) -> dict:
    """Per-layer anisotropy and (adjusted) self-similarity of a runnable source on ``corpus``
    (the built-in corpus when None)."""
    from ..corpus import Corpus

    model = source.model_loader()
    model.eval()
    corpus = corpus if corpus is not None else Corpus([])
    ids, layers = collect_hidden_states(
        model, source.tokenizer, corpus.texts(), max_tokens=max_tokens, progress=progress
    )
    rows = []
    for li, H in enumerate(layers):
        a = anisotropy(H, seed=seed)
        s, n_types = self_similarity(ids, H, seed=seed)
        rows.append(
            {"layer": li, "anisotropy": a, "self_similarity": s, "adjusted_self_similarity": s - a, "types": n_types}
        )
    notes = [f"{ids.size:,} token occurrences; layer 0 is the embedding output (plus positions where they are added)"]
    if rows and rows[-1]["adjusted_self_similarity"] < rows[0]["adjusted_self_similarity"]:
        notes.append(
            "self-similarity above the anisotropy baseline falls with depth: upper layers are more context-specific"
        )
    return {"layers": rows, "occurrences": int(ids.size), "notes": notes}
