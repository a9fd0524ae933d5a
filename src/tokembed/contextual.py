"""Contextual embeddings: the vector of every token at every layer of a model, for one text.

Unlike the static table ``E`` (one vector per id), a contextual embedding depends on the
surrounding text: "bank" in "river bank" and in "bank account" gets different vectors in
the upper layers although both start from the same row of ``E``. This module returns the
hidden states of a tokembed checkpoint (``output_hidden_states=True``: the embedding
output, then every block) or of a local Hugging Face model folder (through ``transformers``,
an optional extra, strictly offline), and summarises, per layer, how similar the
occurrences of the same token are.

Shapes: T tokens of the text, D model dim, L+1 layers (embedding output + L blocks).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._paths import existing_local_path
from .errors import ConfigError, EmbeddingSourceError, require

__all__ = ["ContextualEmbeddings", "contextual_embeddings", "same_token_similarity", "parse_layers"]

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
            raise ConfigError(f"--layers item {s!r} is not an integer; pass 'all' or e.g. '0,-1'") from None
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
    import torch

    from .training.checkpoint import load_checkpoint

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
    import torch

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
