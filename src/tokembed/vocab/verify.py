"""Verification of a vocabulary change: run the old and the new model on the same texts and compare.

Unlike :mod:`tokembed.vocab.trim`'s segmentation check (tokenizers only), this module runs the
models: tokembed checkpoints, compressed artifacts (their input vectors stand for the hidden
states) or Hugging Face folders (through ``transformers``, imported lazily):

- **tokenization agreement**: share of texts whose new ids are the old ids renumbered by the map;
- **trim**: the maximum absolute difference of the last hidden states on the texts that agree
  (only float noise is expected: the kept rows are bit-identical copies), and the mean
  probability the old model gave the dropped tokens (models with a head);
- **add / transplant**: the mean LM loss per UTF-8 byte before and after (causal models, or
  models with a head), else the cosine between mean-pooled sentence vectors before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..compress.artifact import load_compressed
from ..training.checkpoint import load_checkpoint
from ..errors import require
from .apply import Source
from .map import VocabMap

__all__ = ["verify", "MAX_TEXTS", "MAX_TOKENS"]

#: Texts and tokens per text a verification runs (a few seconds on a CPU for a small model).
MAX_TEXTS = 64
MAX_TOKENS = 128


def verify(src: Source, out: Path, vmap: VocabMap, texts: Sequence[str], *, operation: str) -> dict[str, Any]:
    """Old model on ``src``, new model on ``out``, the texts of ``texts`` (at most :data:`MAX_TEXTS`)."""
    texts = [t for t in texts if t.strip()][:MAX_TEXTS]
    old, new = _runner(src.kind, src.path), _runner(src.kind, out)
    agree, hidden_diff, loss_old, loss_new, cos, nbytes = 0, 0.0, 0.0, 0.0, [], 0
    dropped = torch.tensor(vmap.dropped, dtype=torch.int64)
    mass: list[float] = []
    for text in texts:
        a, b = old.ids(text), new.ids(text)
        same = [vmap.new_id(i) for i in a] == b
        agree += same
        ha, hb = old.hidden(a), new.hidden(b)
        if operation == "trim" and same:
            hidden_diff = max(hidden_diff, (ha - hb).abs().max().item())
        if operation == "trim" and old.has_head and len(dropped):
            p = torch.softmax(old.logits(a).double(), dim=-1)  # (T, V)
            mass.append(p[:, dropped[dropped < p.shape[1]]].sum(-1).mean().item())
        cos.append(torch.nn.functional.cosine_similarity(ha.mean(0), hb.mean(0), dim=0).item())
        if old.has_head and len(a) > 1 and len(b) > 1:
            loss_old += old.loss(a)
            loss_new += new.loss(b)
            nbytes += len(text.encode("utf-8"))
    rep: dict[str, Any] = {"texts": len(texts), "tokenization_agreement": agree / max(1, len(texts))}
    if operation == "trim":
        rep["max_abs_hidden_diff"] = hidden_diff
        if mass:
            rep["dropped_probability_mass"] = sum(mass) / len(mass)  # what the old model gave the dropped tokens
    if old.has_head and nbytes:
        rep["loss_nats_per_byte"] = [loss_old / nbytes, loss_new / nbytes]
    rep["mean_pooled_cosine"] = sum(cos) / max(1, len(cos))
    return rep


class _Runner:
    """What both kinds of model share: logits (T, V) of one sequence."""

    model: Any

    @torch.no_grad()
    def logits(self, ids: list[int]) -> torch.Tensor:
        return self.model(torch.tensor([ids])).logits[0]  # (T, V)


class _Tokembed(_Runner):
    """A tokembed checkpoint: ids, last hidden states (T, D), summed next-token loss (nats)."""

    has_head = True

    def __init__(self, path: Path):
        self.model, self.tok, _ = load_checkpoint(path)

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text)[:MAX_TOKENS]

    @torch.no_grad()
    def hidden(self, ids: list[int]) -> torch.Tensor:
        return self.model.hidden(torch.tensor([ids])).last_hidden[0]  # (T, D)

    @torch.no_grad()
    def loss(self, ids: list[int]) -> float:
        x = torch.tensor([ids])
        return self.model.loss(x[:, :-1], x[:, 1:]).item() * (len(ids) - 1)


class _HF(_Runner):
    """A Hugging Face folder through transformers (``AutoModelForCausalLM`` when the config says so)."""

    def __init__(self, path: Path):
        transformers = require("transformers", extra="hf", feature="verifying a Hugging Face folder")
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        arch = (config.architectures or [""])[0]
        self.has_head = arch.endswith("ForCausalLM")
        cls = getattr(transformers, arch, None) or transformers.AutoModel  # the class it was saved as: no missing weights
        self.model = cls.from_pretrained(str(path), local_files_only=True).eval()
        self.tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def ids(self, text: str) -> list[int]:
        return self.tok(text)["input_ids"][:MAX_TOKENS]

    @torch.no_grad()
    def hidden(self, ids: list[int]) -> torch.Tensor:
        out = self.model(torch.tensor([ids]), output_hidden_states=True)
        return out.hidden_states[-1][0]  # (T, D)

    @torch.no_grad()
    def loss(self, ids: list[int]) -> float:
        x = torch.tensor([ids])
        return self.model(x, labels=x).loss.item() * (len(ids) - 1)


class _Compressed(_Runner):
    """A compressed artifact: its input vectors stand for the hidden states (an embedding table, not an LM)."""

    has_head = False

    def __init__(self, path: Path):
        art = load_compressed(path)
        self.tok, self.model = art.tokenizer, art.embedding()

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text)[:MAX_TOKENS]

    @torch.no_grad()
    def hidden(self, ids: list[int]) -> torch.Tensor:
        return self.model(torch.tensor(ids))  # (T, D)


def _runner(kind: str, path: Path):
    return {"checkpoint": _Tokembed, "compressed": _Compressed}.get(kind, _HF)(path)
