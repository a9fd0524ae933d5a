"""Verification of a vocabulary change: run the old and the new model on the same texts and compare.

Unlike :mod:`tokembed.vocab.trim`'s segmentation check (tokenizers only), this module runs the
models: tokembed checkpoints, compressed artifacts (their input vectors stand for the hidden
states) or Hugging Face folders (through ``transformers``, imported lazily):

- **tokenization agreement**: share of texts whose new ids are the old ids renumbered by the map;
- **trim**: the maximum absolute difference of the last hidden states on the texts that agree
  (only float noise is expected: the kept rows are bit-identical copies), and the mean
  probability the old model gave the dropped tokens (models with a head);
- **add / transplant**: the mean LM loss per UTF-8 byte before and after (causal models, or
  masked-LM models scored position by position, see :meth:`_HF.run`), else the cosine between
  mean-pooled sentence vectors before and after; and one table comparing **every init**
  (:data:`~tokembed.vocab.map.INITS`) on the same texts: the chosen init is the written model,
  each other init swaps its new-token rows into that loaded model in memory (only the new rows
  differ between inits; nothing is written again).

Everything runs on at most :data:`MAX_TEXTS` texts of :data:`MAX_TOKENS` tokens, once per init.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import load_tensors, read_json
from ..compress.artifact import CompressedTable, embedding_module, load_compressed
from ..training.checkpoint import load_checkpoint
from ..errors import require
from .apply import Source
from .map import INITS, VocabMap
from .tables import adaptive_checkpoint, remap_codec

__all__ = ["verify", "inits_markdown", "MAX_TEXTS", "MAX_TOKENS", "MLM_STRIDE"]

#: Texts and tokens per text a verification runs (a few seconds on a CPU for a small model).
MAX_TEXTS = 64
MAX_TOKENS = 128
#: Masked-LM models: position t is masked in copy ``t % MLM_STRIDE`` of the text, so every position is
#: predicted once from one batch of MLM_STRIDE copies (1/6 ≈ BERT's 15% masking rate).
MLM_STRIDE = 6


@dataclass
class _Side:
    """One model on the texts: ids, last hidden states (T, D) and summed loss in nats (None: no head)."""

    ids: list[list[int]] = field(default_factory=list)
    hidden: list[torch.Tensor] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)


def _run(runner, texts: Sequence[str]) -> _Side:
    side = _Side()
    for text in texts:
        ids = runner.ids(text)
        h, loss = runner.run(ids)  # (T, D), summed nats or None
        side.ids.append(ids)
        side.hidden.append(h)
        side.loss.append(loss)
    return side


def _compare(old: _Side, new: _Side, texts: Sequence[str]) -> dict[str, Any]:
    """Loss per byte before/after (texts both models score) and the mean-pooled cosine."""
    cos = [torch.nn.functional.cosine_similarity(a.mean(0), b.mean(0), dim=0).item() for a, b in zip(old.hidden, new.hidden)]
    rep: dict[str, Any] = {"mean_pooled_cosine": sum(cos) / max(1, len(cos))}
    both = [(a, b, len(t.encode("utf-8"))) for a, b, t in zip(old.loss, new.loss, texts) if a is not None and b is not None]
    nbytes = sum(n for _, _, n in both)
    if nbytes:
        rep["loss_nats_per_byte"] = [sum(a for a, _, _ in both) / nbytes, sum(b for _, b, _ in both) / nbytes]
    return rep


def verify(src: Source, out: Path, vmap: VocabMap, texts: Sequence[str], *, operation: str, init: str = "compose",
           seed: int = 0, compare_inits: bool = True) -> dict[str, Any]:
    """Old model on ``src``, new model on ``out``, the texts of ``texts`` (at most :data:`MAX_TEXTS`).

    For ``add`` / ``transplant`` with new tokens (and ``compare_inits``), ``"inits"`` lists one entry
    per init of :data:`INITS` (``init`` is the written model, ``chosen: true``; ``seed`` as written).
    """
    texts = [t for t in texts if t.strip()][:MAX_TEXTS]
    old, new = _runner(src.kind, src.path), _runner(src.kind, out)
    a, b = _run(old, texts), _run(new, texts)
    same = [[vmap.new_id(i) for i in x] == y for x, y in zip(a.ids, b.ids)]
    rep: dict[str, Any] = {"texts": len(texts), "tokenization_agreement": sum(same) / max(1, len(texts))}
    if operation == "trim":
        rep["max_abs_hidden_diff"] = max([(x - y).abs().max().item() for x, y, s in zip(a.hidden, b.hidden, same) if s], default=0.0)
        dropped = torch.tensor(vmap.dropped, dtype=torch.int64)
        if old.has_head and len(dropped):
            mass = []
            for ids in a.ids:
                p = torch.softmax(old.logits(ids).double(), dim=-1)  # (T, V)
                mass.append(p[:, dropped[dropped < p.shape[1]]].sum(-1).mean().item())
            rep["dropped_probability_mass"] = sum(mass) / max(1, len(mass))  # what the old model gave the dropped tokens
    rep |= _compare(a, b, texts)
    if operation in ("add", "transplant") and compare_inits and vmap.new_tokens and texts:
        rep["metric"] = "loss_change" if "loss_nats_per_byte" in rep else "mean_pooled_cosine"
        fresh = {t.id for t in vmap.new_tokens}
        rep["new_token_share"] = sum(i in fresh for ids in b.ids for i in ids) / max(1, sum(map(len, b.ids)))
        rep["inits"] = _init_table(src, old, new, vmap, texts, a, chosen=(init, rep), seed=seed)
    return rep


def _init_table(src: Source, old, new, vmap: VocabMap, texts, a: _Side, *, chosen: tuple[str, dict], seed: int) -> list[dict]:
    """One row per init: the chosen one from the written model, the others swapped into ``new`` in memory."""
    swap = _swapper(src, old, new, vmap)
    rows = []
    for init in INITS:
        if init == chosen[0]:
            res = chosen[1]
        else:
            swap(init, seed)
            res = _compare(a, _run(new, texts), texts)
        row: dict[str, Any] = {"init": init, "chosen": init == chosen[0], "mean_pooled_cosine": res["mean_pooled_cosine"]}
        if "loss_nats_per_byte" in res:
            before, after = res["loss_nats_per_byte"]
            row |= {"loss_nats_per_byte": after, "loss_change": after - before}
        rows.append(row)
    return rows  # ``new`` now holds the last init's rows; it is not used again


def inits_markdown(rep: dict[str, Any]) -> str:
    """The ``inits`` table of a verify report as markdown (``*`` marks the chosen init).

    >>> print(inits_markdown({"metric": "loss_change", "inits": [
    ...     {"init": "compose", "chosen": True, "loss_nats_per_byte": 1.25, "loss_change": 0.05, "mean_pooled_cosine": 0.99},
    ...     {"init": "random", "chosen": False, "loss_nats_per_byte": 1.5, "loss_change": 0.3, "mean_pooled_cosine": 0.9}]}))
    | init | loss change (nats/byte) | loss after | mean-pooled cosine |
    |---|---|---|---|
    | compose * | +0.0500 | 1.2500 | 0.9900 |
    | random | +0.3000 | 1.5000 | 0.9000 |
    """
    rows = rep.get("inits") or []
    loss = rep.get("metric") == "loss_change"
    head = "| init | loss change (nats/byte) | loss after | mean-pooled cosine |" if loss else "| init | mean-pooled cosine |"
    lines = [head, "|---|---|---|---|" if loss else "|---|---|"]
    for r in rows:
        name = r["init"] + (" *" if r["chosen"] else "")
        cells = [f"{r['loss_change']:+.4f}", f"{r['loss_nats_per_byte']:.4f}"] if loss else []
        lines.append("| " + " | ".join([name, *cells, f"{r['mean_pooled_cosine']:.4f}"]) + " |")
    return "\n".join(lines)


# -- putting another init's new rows into the loaded new model ----------------------------------------
def _swapper(src: Source, old, new, vmap: VocabMap) -> Callable[[str, int], None]:
    """``swap(init, seed)``: the new tokens' rows of ``init`` into ``new``'s model (what ``write_output`` would
    have written with that init), computed from the old model's tensors in memory."""
    if src.kind == "compressed":
        art = load_compressed(src.path)
        scale = float(art.meta.get("embedding_scale", 1.0))

        def swap(init: str, seed: int) -> None:  # new rows encoded with the same codec (tables.remap_codec)
            new.model = embedding_module(CompressedTable(remap_codec(art.input.table, vmap, init=init, seed=seed)), scale=scale)
        return swap
    R, R2, fresh = src.rows, vmap.rows(src.rows), torch.tensor(sorted(t.id for t in vmap.new_tokens), dtype=torch.int64)
    skip: tuple[str, ...] = ()
    names: tuple[str, ...] = ("",)  # every tensor with R rows (as write_output's Hugging Face rule)
    if src.kind == "checkpoint":
        cfg = old.model.config
        skip = tuple(p for p, on in (("embedding.", cfg.embedding == "adaptive"),
                                     ("head.", cfg.head in ("adaptive", "adaptive_tied"))) if on)
        names = ("embedding.", "head.")  # write_output's checkpoint rule (token_counts: zeros for every init)
    old_sd, new_sd = old.model.state_dict(), new.model.state_dict()

    @torch.no_grad()
    def swap(init: str, seed: int) -> None:
        done: set[int] = set()  # a tied head shares the embedding's storage: its rows are set once
        for name, t in old_sd.items():
            n = new_sd.get(name)
            if n is None or not t.is_floating_point() or not name.startswith(names) or name.startswith(skip) or n.data_ptr() in done:
                continue
            done.add(n.data_ptr())
            if t.dim() >= 1 and t.shape[0] == R and n.shape[0] == R2:
                n[fresh] = _new_rows(t, vmap, fresh, init=init, seed=seed).to(n.dtype)
            elif t.shape == (1, R) and n.shape == (1, R2):  # (1, V) bias rows, a (V, 1) column as write_output takes them
                n[0, fresh] = _new_rows(t.T.contiguous(), vmap, fresh, init=init, seed=seed)[:, 0].to(n.dtype)
        if skip:  # adaptive bands: tables.adaptive_checkpoint in memory, only its band tensors loaded
            bands, _, _ = adaptive_checkpoint(read_json(src.path / "config.json")["model"], load_tensors(src.path / "model.safetensors"),
                                              vmap, init=init, seed=seed)
            for name, t in bands.items():
                if name.startswith(skip) and name in new_sd and new_sd[name].shape == t.shape:
                    new_sd[name].copy_(t)
    return swap


def _new_rows(t: torch.Tensor, vmap: VocabMap, fresh: torch.Tensor, *, init: str, seed: int) -> torch.Tensor:
    """(n, ...) rows of the new ids ``fresh`` exactly as :meth:`VocabMap.row_blocks` makes them (same seeded draws),
    one block of rows at a time: the new table is never assembled."""
    out = torch.empty((len(fresh), *t.shape[1:]), dtype=t.dtype)
    for a, block in vmap.row_blocks(t, init=init, seed=seed):
        inside = (fresh >= a) & (fresh < a + len(block))
        out[inside] = block[fresh[inside] - a]
    return out


class _Runner:
    """What every kind of model shares: logits (T, V) of one sequence (trim's dropped mass)."""

    model: Any

    @torch.no_grad()
    def logits(self, ids: list[int]) -> torch.Tensor:
        return self.model(torch.tensor([ids])).logits[0]  # (T, V)


class _Tokembed(_Runner):
    """A tokembed checkpoint: one pass gives the last hidden states (T, D) and the summed next-token loss."""

    has_head = True

    def __init__(self, path: Path):
        self.model, self.tok, _ = load_checkpoint(path)

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text)[:MAX_TOKENS]

    @torch.no_grad()
    def run(self, ids: list[int]) -> tuple[torch.Tensor, float | None]:
        x = torch.tensor([ids])
        h = self.model.hidden(x).last_hidden  # (1, T, D); causal, so h[:, :-1] is the prefix's
        loss = self.model.head.loss(h[:, :-1], x[:, 1:]).item() * (len(ids) - 1) if len(ids) > 1 else None
        return h[0], loss


class _HF(_Runner):
    """A Hugging Face folder through transformers, loaded as the class it was saved as (no missing weights).

    Heads: the classes ``AutoModelForCausalLM`` loads (``GPT2LMHeadModel``, ``*ForCausalLM``: next-token
    loss) and those ``AutoModelForMaskedLM`` loads (masked-LM loss, see :meth:`run`); any other class is
    scored by its hidden states only."""

    def __init__(self, path: Path):
        transformers = require("transformers", extra="hf", feature="verifying a Hugging Face folder")
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        arch = (config.architectures or [""])[0]
        cls = getattr(transformers, arch, None) or transformers.AutoModel
        self.model = cls.from_pretrained(str(path), local_files_only=True).eval()
        self.tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        from transformers.models.auto import modeling_auto as auto  # the classes each AutoModelFor... picks

        self.masked = arch in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES.values() and self.tok.mask_token_id is not None
        self.causal = arch in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() or arch.endswith("ForCausalLM")
        self.has_head = self.causal or self.masked

    def ids(self, text: str) -> list[int]:
        return self.tok(text)["input_ids"][:MAX_TOKENS]

    @torch.no_grad()
    def run(self, ids: list[int]) -> tuple[torch.Tensor, float | None]:
        """Last hidden states (T, D) and summed nats over the text's tokens, from one forward pass: causal, or
        masked — row 0 is the text, row k masks the positions t ≡ k-1 (mod :data:`MLM_STRIDE`), so each
        non-special token is predicted once."""
        x = torch.tensor([ids])  # (1, T)
        if not (self.masked and len(ids) > 1):
            scored = self.causal and len(ids) > 1
            out = self.model(x, output_hidden_states=True, **({"labels": x} if scored else {}))
            return out.hidden_states[-1][0], (out.loss.item() * (len(ids) - 1) if scored else None)
        K = min(MLM_STRIDE, len(ids))
        scored = ~torch.isin(x[0], torch.tensor(self.tok.all_special_ids, dtype=torch.int64))  # (T,)
        hit = (torch.arange(len(ids))[None, :] % K == torch.arange(K)[:, None]) & scored  # (K, T) masked in row k+1
        hit = torch.cat([torch.zeros_like(hit[:1]), hit])  # (K+1, T): row 0 unmasked
        inputs = torch.where(hit, self.tok.mask_token_id, x.expand(K + 1, -1))
        out = self.model(inputs, output_hidden_states=True)  # logits (K+1, T, V)
        labels = torch.where(hit, x.expand(K + 1, -1), -100)
        loss = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), labels, ignore_index=-100, reduction="sum")
        return out.hidden_states[-1][0], loss.item()


class _Compressed(_Runner):
    """A compressed artifact: its input vectors stand for the hidden states (an embedding table, not an LM)."""

    has_head = False

    def __init__(self, path: Path):
        art = load_compressed(path)
        self.tok, self.model = art.tokenizer, art.embedding()

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text)[:MAX_TOKENS]

    @torch.no_grad()
    def run(self, ids: list[int]) -> tuple[torch.Tensor, None]:
        return self.model(torch.tensor(ids)), None  # (T, D)


def _runner(kind: str, path: Path):
    return {"checkpoint": _Tokembed, "compressed": _Compressed}.get(kind, _HF)(path)
