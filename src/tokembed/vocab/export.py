"""Export a tokembed checkpoint for other tools: a transformers folder, a word-vector file or plain tensors.

Unlike :mod:`tokembed.vocab.apply` (changes a model's vocabulary), export keeps everything and
changes the container:

- ``hf``: a folder ``transformers`` runs, with logits equal to tokembed's (checked at export,
  max abs difference reported). tokembed's block is pre-norm LayerNorm + causal attention with
  biases + exact-GELU MLP, so:

  ==============================  ==========================================================
  positional                      transformers architecture
  ==============================  ==========================================================
  ``learned``                     ``GPT2LMHeadModel`` (``wpe`` = the learned table)
  ``sinusoidal`` / ``none``       ``GPT2LMHeadModel`` (``wpe`` = the fixed table / zeros)
  ``rope``                        ``GPTNeoXForCausalLM`` (sequential residual, full rotary)
  ==============================  ==========================================================

  Not expressible (a typed error says so): ALiBi positions; adaptive, hashed input embeddings;
  adaptive softmax heads; a head bias (``tied_bias``, or an untied head with ``head_bias``) that
  is not all zeros, since neither GPT-2 nor GPT-NeoX has an output bias; ``embedding_scale``.
  Llama's architecture (RMSNorm, SwiGLU) cannot hold tokembed's blocks either. A factorized
  embedding is exported dense (``E = A B``).
- ``vectors``: the input table as a word2vec text file (one token string per row).
- ``safetensors``: the input table (and the head's, when untied) as plain tensors with the tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..artifacts import atomic_dir, atomic_write_text, save_tensors, write_json
from ..training.checkpoint import load_checkpoint
from ..embeddings.pretrained import write_vectors
from ..embeddings.positional import sinusoidal_table
from ..errors import ConfigError, require
from ..tokenizers import HFTokenizer

__all__ = ["export_checkpoint", "FORMATS", "hf_state_dict"]

FORMATS = ("hf", "vectors", "safetensors")


def export_checkpoint(path: str | os.PathLike, out: str | os.PathLike, *, format: str = "hf") -> dict[str, Any]:
    """Write ``out`` in ``format``; returns a report (for ``hf``: the architecture and the logit check)."""
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}; choose one of {', '.join(FORMATS)}")
    model, tok, config = load_checkpoint(path)
    E = model.embedding.weight_matrix().detach().float()  # (V, D)
    out = Path(out)
    if format == "vectors":
        with atomic_dir(out) as tmp:
            write_vectors(tmp / "vectors.txt", tok.vocab.tokens + [f"<pad:{i}>" for i in range(tok.vocab_size, len(E))], E.numpy())
        return {"format": format, "rows": len(E)}
    if format == "safetensors":
        tensors = {"embedding": E}
        if not isinstance(model.head.weight_matrix(), type(None)) and model.config.head == "untied":
            tensors["head"] = model.head.weight_matrix().detach().float()
        with atomic_dir(out) as tmp:
            save_tensors(tmp / "embeddings.safetensors", tensors, metadata={"tokens": json.dumps(tok.vocab.tokens)})
        return {"format": format, "tensors": sorted(tensors)}
    return _export_hf(model, tok, out)


def _check_expressible(model) -> None:
    c = model.config
    reasons = []
    if c.positional == "alibi":
        reasons.append("ALiBi positions")
    if c.embedding not in ("lookup", "factorized"):
        reasons.append(f"the {c.embedding} input embedding")
    if c.head not in ("untied", "tied", "tied_bias"):
        reasons.append(f"the {c.head} head")
    if c.embedding_scale:
        reasons.append("embedding_scale (√D times the rows)")
    bias = getattr(model.head, "bias", None) if c.head != "untied" else model.head.proj.bias
    if bias is not None and bias.detach().abs().max().item() > 0:
        reasons.append("a non-zero output bias")
    if reasons:
        raise ConfigError(
            f"this model cannot be expressed as a transformers GPT-2/GPT-NeoX model: {', '.join(reasons)}; "
            "pass format='safetensors' or 'vectors' instead",
            param="format",
        )


def hf_state_dict(model) -> tuple[str, dict[str, torch.Tensor]]:
    """(architecture, transformers state dict) of a tokembed Transformer (see the module table)."""
    c = model.config
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    D, H = c.d_model, c.n_heads
    E = model.embedding.weight_matrix().detach().float()  # (V, D)
    W = model.head.weight_matrix().detach().float()  # (V, D)
    out: dict[str, torch.Tensor] = {}
    if c.positional == "rope":
        p = "gpt_neox."
        out[p + "embed_in.weight"], out["lm_head.weight"] = E, W
        for i in range(c.n_layers):
            b, q = f"blocks.{i}.", f"{p}layers.{i}."
            w = sd[b + "attn.qkv.weight"].view(3, H, D // H, D).transpose(0, 1).reshape(3 * D, D)  # (q|k|v) -> per head [q k v]
            bias = sd[b + "attn.qkv.bias"].view(3, H, D // H).transpose(0, 1).reshape(3 * D)
            out |= {q + "attention.query_key_value.weight": w, q + "attention.query_key_value.bias": bias}
            for src, dst in (("ln1", "input_layernorm"), ("ln2", "post_attention_layernorm"), ("attn.proj", "attention.dense"),
                             ("mlp.fc", "mlp.dense_h_to_4h"), ("mlp.proj", "mlp.dense_4h_to_h")):
                out[f"{q}{dst}.weight"], out[f"{q}{dst}.bias"] = sd[f"{b}{src}.weight"], sd[f"{b}{src}.bias"]
        out[p + "final_layer_norm.weight"], out[p + "final_layer_norm.bias"] = sd["ln_f.weight"], sd["ln_f.bias"]
        return "GPTNeoXForCausalLM", out
    p = "transformer."
    out[p + "wte.weight"], out["lm_head.weight"] = E, W
    if c.positional == "learned":
        out[p + "wpe.weight"] = sd["positional.weight"]
    elif c.positional == "sinusoidal":
        out[p + "wpe.weight"] = sinusoidal_table(c.max_seq_len, D).float()
    else:
        out[p + "wpe.weight"] = torch.zeros(c.max_seq_len, D)
    for i in range(c.n_layers):
        b, q = f"blocks.{i}.", f"{p}h.{i}."
        for src, dst in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[f"{q}{dst}.weight"], out[f"{q}{dst}.bias"] = sd[f"{b}{src}.weight"], sd[f"{b}{src}.bias"]
        for src, dst in (("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")):
            out[f"{q}{dst}.weight"] = sd[f"{b}{src}.weight"].T.contiguous()  # Conv1D keeps (in, out)
            out[f"{q}{dst}.bias"] = sd[f"{b}{src}.bias"]
    out[p + "ln_f.weight"], out[p + "ln_f.bias"] = sd["ln_f.weight"], sd["ln_f.bias"]
    return "GPT2LMHeadModel", out


def _hf_config(transformers, arch: str, model, tok):
    c = model.config
    ids = {f"{r}_token_id": tok.vocab.special_id(r) for r in ("pad", "bos", "eos")}
    common = dict(vocab_size=model.vocab_size, tie_word_embeddings=c.head != "untied", **ids)
    if arch == "GPTNeoXForCausalLM":
        return transformers.GPTNeoXConfig(
            hidden_size=c.d_model, num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads, intermediate_size=c.d_ff,
            hidden_act="gelu", max_position_embeddings=c.max_seq_len, layer_norm_eps=1e-5, use_parallel_residual=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
            attention_bias=True, **common,
        )
    return transformers.GPT2Config(
        n_embd=c.d_model, n_layer=c.n_layers, n_head=c.n_heads, n_inner=c.d_ff, n_positions=c.max_seq_len,
        activation_function="gelu", layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
    )


def _export_hf(model, tok, out: Path) -> dict[str, Any]:
    transformers = require("transformers", extra="hf", feature="export --format hf")
    _check_expressible(model)
    arch, sd = hf_state_dict(model)
    hf = getattr(transformers, arch)(_hf_config(transformers, arch, model, tok)).eval()
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)  # the mapping covers every weight
    ids = torch.tensor([tok.encode("The quick brown fox jumps over the lazy dog. 0123456789")[: model.config.max_seq_len]])
    n = getattr(model.head, "num_tokens", None) or model.vocab_size  # rows past n are padding: -inf in tokembed only
    with torch.no_grad():
        diff = (hf(ids).logits[..., :n] - model.eval()(ids).logits[..., :n]).abs().max().item()
    with atomic_dir(out) as tmp:
        hf.save_pretrained(tmp)
        if isinstance(tok, HFTokenizer):
            atomic_write_text(tmp / "tokenizer.json", tok.engine.to_str())
            stm = {f"{r}_token": s for r, s in tok.special_tokens.items() if r in ("pad", "bos", "eos", "unk", "cls", "sep", "mask")}
            write_json(tmp / "special_tokens_map.json", stm)
            write_json(tmp / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast",
                                                        "model_max_length": model.config.max_seq_len, **stm})
        tok.save(tmp / "tokembed_tokenizer")
    rep = {"format": "hf", "architecture": arch, "max_abs_logit_diff": diff, "tokenizer_json": isinstance(tok, HFTokenizer)}
    if n < model.vocab_size:
        rep["padding_rows"] = model.vocab_size - n  # transformers has no mask: their logits come from zero rows
    return rep
