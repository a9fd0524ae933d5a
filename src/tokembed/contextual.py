"""Contextual embeddings (hidden states per layer): extract them for one text, and measure them over a corpus.

Unlike the static table ``E`` (one vector per id), a contextual embedding depends on the
surrounding text: "bank" in "river bank" and in "bank account" gets different vectors in
the upper layers although both start from the same row of ``E``. This module returns the
hidden states of a tokembed checkpoint (``output_hidden_states=True``: the embedding
output, then every block) or of a local Hugging Face model folder (through ``transformers``,
an optional extra, strictly offline), and summarises, per layer, how similar the
occurrences of the same token are.

**Over a corpus** (Ethayarajh 2019, "How Contextual are Contextualized Word Representations?"),
for a model tokembed can run, the hidden states of many corpus lines are collected at every
layer (0 = embedding output, then each block) and, per layer (:func:`contextual_summary`, used
by ``tokembed inspect``):

* **anisotropy** = mean cos(h_a, h_b) over random pairs of token occurrences (a ≠ b);
* **self-similarity** of a token type w = mean cos(h_a, h_b) over pairs of its occurrences in
  different contexts, averaged over types seen in at least ``min_occurrences`` contexts;
* **adjusted self-similarity** = self-similarity − anisotropy (Ethayarajh's baseline correction):
  near 0 means the representation depends on context as much as any two random tokens differ.

Shapes: T tokens of the text, D model dim, L+1 layers (embedding output + L blocks); N collected
occurrences over a corpus.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._paths import existing_local_path
from .corpus import Corpus
from .errors import ConfigError, EmbeddingSourceError, require
from .metrics import anisotropy
from .sources import load_embeddings
from .training.checkpoint import check_finite_tensors, load_checkpoint

__all__ = [
    "ContextualEmbeddings",
    "contextual_embeddings",
    "same_token_similarity",
    "parse_layers",
    "collect_hidden_states",
    "self_similarity",
    "contextual_summary",
]

#: A hub id: "name" or "org/name" of word characters, dots and dashes (huggingface_hub's repo id rule).


@dataclass
class ContextualEmbeddings:
    tokens: list[str]  # the T token strings
    layers: list[np.ndarray]  # per selected layer, (T, D) float32
    layer_ids: list[int]  # 0 = embedding output, i = after block i

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "layer_ids": self.layer_ids,
            "layers": [layer.tolist() for layer in self.layers],
            "summary": same_token_similarity(self.tokens, self.layers, self.layer_ids),
        }


def _cos_matrix(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    u = x / np.maximum(n, 1e-12)
    return u @ u.T  # (T, T)


def same_token_similarity(tokens: list[str], layers: list[np.ndarray], layer_ids: list[int]) -> dict[str, Any]:
    """Per layer: mean cosine between occurrences of the same token, against different-token pairs.

    ``repeated``: for every token string occurring at least twice, its positions and the mean
    pairwise cosine per layer; ``same_token_cosine``/``other_token_cosine``: means over all
    same-token / different-token pairs per layer (the latter is the baseline: high values mean
    anisotropy, not context-independence).

    >>> s = same_token_similarity(["a", "b", "a"], [np.array([[1., 0], [0, 1], [1, 0]])], [0])
    >>> s["repeated"], s["same_token_cosine"], s["other_token_cosine"]
    ([{'token': 'a', 'positions': [0, 2], 'cosine': [1.0]}], [1.0], [0.0])
    """
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(tokens):
        groups.setdefault(t, []).append(i)
    same_pairs = [p for pos in groups.values() if len(pos) > 1 for p in itertools.combinations(pos, 2)]
    T = len(tokens)
    other_pairs = [(i, j) for i in range(T) for j in range(i + 1, T) if tokens[i] != tokens[j]]
    repeated = [{"token": t, "positions": pos, "cosine": []} for t, pos in groups.items() if len(pos) > 1]
    same, other = [], []
    for layer in layers:
        c = _cos_matrix(np.asarray(layer, dtype=np.float64))
        for r in repeated:
            pairs = list(itertools.combinations(r["positions"], 2))
            r["cosine"].append(round(float(np.mean([c[i, j] for i, j in pairs])), 6))
        same.append(round(float(np.mean([c[i, j] for i, j in same_pairs])), 6) if same_pairs else None)
        other.append(round(float(np.mean([c[i, j] for i, j in other_pairs])), 6) if other_pairs else None)
    return {"layer_ids": list(layer_ids), "repeated": repeated, "same_token_cosine": same, "other_token_cosine": other}


def parse_layers(spec: str | list[int] | None, n_layers: int) -> list[int]:
    """``"all"`` -> 0..n_layers-1; ``"0,-1"`` -> [0, n_layers-1] (0 = embedding output).

    >>> parse_layers("all", 3), parse_layers("0,-1", 3)
    ([0, 1, 2], [0, 2])
    """
    if spec is None or spec == "all":
        return list(range(n_layers))
    items = spec if isinstance(spec, list) else [s for s in str(spec).split(",") if s.strip()]
    out = []
    for s in items:
        try:
            i = int(s)
        except ValueError:
            raise ConfigError(f"layers item {s!r} is not an integer; pass layers='all' or e.g. '0,-1'", param="layers") from None
        j = i + n_layers if i < 0 else i
        if not 0 <= j < n_layers:
            raise ConfigError(f"layer {i} is out of range: the model has layers 0..{n_layers - 1} (0 = embedding output)")
        out.append(j)
    return out


def _is_tokembed_checkpoint(p: Path) -> bool:
    return (p / "model.safetensors").is_file() and (p / "tokenizer").is_dir() or (p / "checkpoint" / "model.safetensors").is_file()


def contextual_embeddings(source: str | os.PathLike, text: str, *, layers: str | list[int] | None = "all",
                          device: str = "cpu") -> ContextualEmbeddings:
    """Hidden states of ``text`` from a tokembed checkpoint or a local Hugging Face model folder.

    A name that is not a local path but looks like a hub id raises :class:`HubIdError` (tokembed is offline).
    """
    p = existing_local_path(source, expected="a tokembed checkpoint or a local model folder", error=EmbeddingSourceError)
    if not text:
        raise ConfigError("TEXT is empty; pass the text whose token vectors you want")
    if _is_tokembed_checkpoint(p):
        return _from_tokembed(p, text, layers, device)
    if (p / "config.json").is_file():
        return _from_transformers(p, text, layers, device)
    raise EmbeddingSourceError(
        f"{p}: neither a tokembed checkpoint (model.safetensors + tokenizer/) nor a Hugging Face model folder (config.json)"
    )


def _from_tokembed(p: Path, text: str, layers, device: str) -> ContextualEmbeddings:
    model, tokenizer, _ = load_checkpoint(p, device=device)
    ids = tokenizer.encode(text)
    if len(ids) > model.config.max_seq_len:
        raise ConfigError(f"the text has {len(ids)} tokens, more than the model's max_seq_len={model.config.max_seq_len}; pass a shorter text")
    with torch.no_grad():
        out = model(torch.tensor([ids], device=device), output_hidden_states=True, return_logits=False)
    states = [h[0].float().cpu().numpy() for h in out.hidden_states]  # L+1 × (T, D)
    sel = parse_layers(layers, len(states))
    return ContextualEmbeddings(tokens=[tokenizer.vocab.token(i) for i in ids], layers=[states[i] for i in sel], layer_ids=sel)


def _from_transformers(p: Path, text: str, layers, device: str) -> ContextualEmbeddings:
    transformers = require("transformers", extra="hf", feature="contextual embeddings of a Hugging Face model")
    # the checks inspect/neighbors/compress make, before transformers reads anything: safetensors weights only
    # (never pickled ones), a config object, a vocabulary no larger than the embedding, finite rows
    src = load_embeddings(p)
    check_finite_tensors({src.names["input"]: torch.from_numpy(np.asarray(src.input))}, where=str(p))
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        model = transformers.AutoModel.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise EmbeddingSourceError(f"{p}: transformers cannot load this folder ({e}); it needs config.json, weights and a tokenizer") from e
    model.to(device).eval()
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        out = model(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=True)
    states = [h[0].float().cpu().numpy() for h in out.hidden_states]  # L+1 × (T, D)
    sel = parse_layers(layers, len(states))
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return ContextualEmbeddings(tokens=[str(t) for t in tokens], layers=[states[i] for i in sel], layer_ids=sel)


# -- over a corpus (tokembed inspect) ------------------------------------------------------


def collect_hidden_states(
    model, tokenizer, texts, *, max_tokens: int = 20_000, seq_len: int = 64, progress: bool = True
):
    """(ids (N,), [layer (N, D) float32 for each layer]) for up to ``max_tokens`` tokens of ``texts``."""
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
