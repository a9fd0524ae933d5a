"""Evaluate a language model: loss, perplexity, bits per byte, calibration, frequency bands, speed, size.

Unlike :mod:`tokembed.training.loop` this never updates weights; it reads a shard (or tokenizes a
corpus the same way :mod:`tokembed.training.shards` does) and scores every next-token prediction.

What is counted (so bits per byte compares tokenizers fairly):

- the text is a list of whole documents, tokenized as ``[eos] d_1 [eos] d_2 [eos] ...``;
- **predicted tokens**: every token after the leading eos — each document token and the eos
  closing each document (the leading eos is context only); ``N`` of them;
- **bytes**: the UTF-8 bytes of those documents' text (inner newlines included, the eos
  separators count 0 bytes) — ``n_bytes``;
- ``loss = Σ nats / N``; ``perplexity = exp(loss)``; ``bits_per_byte = Σ nats / ln 2 / n_bytes``
  (:func:`tokembed.metrics.bits_per_byte`);
- ``max_tokens`` keeps the longest prefix of *whole documents* within that many tokens, so
  the byte count stays exact; it is a hard cap: when the first document alone is longer, its
  first ``max_tokens`` tokens are scored and the bytes are those of their decoded text;
- the text is scored in consecutive windows of ``seq_len`` predicted tokens; each token sees
  the tokens before it inside its window (no context carried across windows).

ECE is the expected calibration error of the top-1 prediction (15 bins,
:func:`tokembed.metrics.expected_calibration_error`); the band loss is the mean loss of the
target tokens per training-frequency band (decades of counts, :func:`tokembed.metrics.frequency_bands`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..errors import EmptyCorpusError, FingerprintMismatchError
from ..metrics import bits_per_byte, expected_calibration_error, frequency_bands, perplexity, reliability_bins
from ..metrics import token_counts as count_tokens
from .shards import Shard, encode_documents

__all__ = ["EvalResult", "evaluate", "as_shard"]


@dataclass
class EvalResult:
    loss: float  # mean nats per predicted token
    perplexity: float  # exp(loss); never compare across tokenizers
    bits_per_byte: float  # Σ nats / ln 2 / UTF-8 bytes — compares across tokenizers
    ece: float  # expected calibration error of top-1 predictions
    reliability: dict  # {"count": [15], "confidence": [15], "accuracy": [15]} (None for empty bins)
    tokens_per_s: float  # predicted tokens scored per second
    params: dict  # {"embedding", "head", "rest", "total"}
    embedding_bytes: int  # bytes of the embedding + head tables (shared storage once)
    band_loss: list[dict]  # per training-frequency band: name, lo, hi, n_types, n_tokens, loss
    n_tokens: int  # predicted tokens N
    n_bytes: int  # UTF-8 bytes of the evaluated documents
    accuracy: float = float("nan")  # top-1 accuracy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_shard(tokenizer, data) -> Shard:
    """A :class:`Shard` from a shard, a :class:`~tokembed.corpus.Corpus` or a list of document strings."""
    if isinstance(data, Shard):
        if data.fingerprint != tokenizer.fingerprint:
            raise FingerprintMismatchError(
                f"shard {data.path} was tokenized with fingerprint {data.fingerprint[:12]}, the model's tokenizer has "
                f"{tokenizer.fingerprint[:12]}; evaluate on a corpus or on shards built with the model's tokenizer"
            )
        return data
    docs = list(data.documents()) if hasattr(data, "documents") else list(data)
    if not docs:
        raise EmptyCorpusError("nothing to evaluate: the corpus holds no documents")
    tokens, index, n_bytes = encode_documents(tokenizer, docs)
    return Shard(tokens=tokens, n_bytes=n_bytes, n_docs=len(docs), fingerprint=tokenizer.fingerprint, doc_index=index,
                 vocab_size=tokenizer.vocab_size)


@torch.no_grad()
def evaluate(
    model,
    tokenizer,
    shard_or_corpus,
    *,
    seq_len: int = 128,
    batch_size: int = 16,
    max_tokens: int | None = None,
    device: str | torch.device = "cpu",
    token_counts=None,
) -> EvalResult:
    """Score ``shard_or_corpus`` (a Shard, Corpus or list of documents) with ``model``.

    ``token_counts`` (V,) define the frequency bands; default: the model's training counts, or
    the counts of the evaluated tokens when the model has none.
    """
    shard = as_shard(tokenizer, shard_or_corpus)
    n_tok, n_bytes = shard.prefix(max_tokens)
    if max_tokens is not None and n_tok > max(max_tokens, 2):  # the first document alone is longer: a hard cap
        n_tok = max(max_tokens, 2)
        n_bytes = len(tokenizer.decode([int(i) for i in shard.tokens[1:n_tok]]).encode("utf-8", errors="surrogatepass"))
    if n_tok < 2:
        raise EmptyCorpusError(
            f"nothing to evaluate: the {shard.split or 'given'} data holds {n_tok} tokens ({shard.n_docs} documents); "
            "pass a corpus with more documents (blank-line separated) or raise val_fraction"
        )
    device = torch.device(device)
    was_training = model.training
    model.eval()
    if next(model.parameters()).device != device:
        model.to(device)
    tokens = torch.from_numpy(np.asarray(shard.tokens[:n_tok], dtype=np.int64))  # (n_tok,)
    band_of, bands = _bands(model, tokens, token_counts)
    scores = _Scores(len(bands))
    t0 = time.perf_counter()
    for x, y in _windows(tokens, seq_len=seq_len, batch_size=batch_size):
        scores.add(model, x, y, band_of, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if was_training:
        model.train()
    return _result(model, scores, bands, n_pred=n_tok - 1, n_bytes=n_bytes, seconds=seconds)


def _bands(model, tokens: torch.Tensor, counts) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Band of every id (:func:`tokembed.metrics.frequency_bands`) from ``counts``, else the model's
    training counts, else the counts of the evaluated tokens."""
    if counts is None:
        mc = getattr(model, "token_counts", None)
        counts = mc.cpu().numpy() if mc is not None and int(mc.sum()) > 0 else count_tokens(tokens.numpy(), model.vocab_size)
    band_of, bands = frequency_bands(np.asarray(counts))
    return torch.from_numpy(band_of), bands


def _windows(tokens: torch.Tensor, *, seq_len: int, batch_size: int):
    """(inputs, targets) batches of consecutive windows of ``seq_len`` predictions; the last window may be shorter."""
    T = seq_len
    n_pred = len(tokens) - 1
    n_full = n_pred // T
    for b0 in range(0, n_full, batch_size):
        starts = torch.arange(b0, min(b0 + batch_size, n_full)) * T
        w = tokens[starts[:, None] + torch.arange(T + 1)]  # (b, T+1)
        yield w[:, :-1], w[:, 1:]
    if n_pred % T:
        w = tokens[n_full * T :][None]  # (1, t+1) the last, shorter window
        yield w[:, :-1], w[:, 1:]


class _Scores:
    """Running sums over scored windows: total and per-band nats, top-1 confidences and hits."""

    def __init__(self, n_bands: int):
        self.total_nats = 0.0
        self.band_nats = torch.zeros(n_bands, dtype=torch.float64)
        self.band_n = torch.zeros(n_bands, dtype=torch.float64)
        self.confs: list[np.ndarray] = []
        self.corrects: list[np.ndarray] = []

    def add(self, model, x: torch.Tensor, y: torch.Tensor, band_of: torch.Tensor, device: torch.device) -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = model.hidden(x.to(device)).last_hidden  # (b, t, D)
            logp = model.head.log_prob(h).float()  # (b, t, V): log softmax(z)
        y_d = y.to(device)
        nats = -logp.gather(-1, y_d.unsqueeze(-1)).squeeze(-1).double().cpu()  # (b, t)
        conf, pred = logp.max(dim=-1)  # top-1 log-confidence and id
        self.total_nats += float(nats.sum())
        b = band_of[y.reshape(-1)]
        self.band_nats.index_add_(0, b, nats.reshape(-1))
        self.band_n.index_add_(0, b, torch.ones_like(nats.reshape(-1)))
        self.confs.append(conf.exp().reshape(-1).cpu().numpy())
        self.corrects.append((pred == y_d).reshape(-1).cpu().numpy())


def _result(model, s: _Scores, bands, *, n_pred: int, n_bytes: int, seconds: float) -> EvalResult:
    conf = np.concatenate(s.confs)
    correct = np.concatenate(s.corrects).astype(np.float64)
    count, mconf, acc = reliability_bins(conf, correct)
    band_loss = [
        {**bands[i], "n_tokens": int(s.band_n[i]), "loss": float(s.band_nats[i] / s.band_n[i]) if s.band_n[i] > 0 else None}
        for i in range(len(bands))
    ]
    return EvalResult(
        loss=s.total_nats / n_pred,
        perplexity=perplexity(total_nats=s.total_nats, n_tokens=n_pred),
        bits_per_byte=bits_per_byte(total_nats=s.total_nats, n_bytes=n_bytes),
        ece=expected_calibration_error(conf, correct),
        reliability={
            "count": [int(c) for c in count],
            "confidence": [None if math.isnan(v) else float(v) for v in mconf],
            "accuracy": [None if math.isnan(v) else float(v) for v in acc],
        },
        tokens_per_s=n_pred / seconds if seconds > 0 else float("nan"),
        params=model.num_parameters(),
        embedding_bytes=model.embedding_bytes(),
        band_loss=band_loss,
        n_tokens=n_pred,
        n_bytes=n_bytes,
        accuracy=float(correct.mean()),
    )
