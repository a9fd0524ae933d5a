"""export: transformers runs the exported model with tokembed's logits; designs it cannot hold are refused."""

from __future__ import annotations

import json

import pytest
import torch
from _vocab_models import SENTENCES

from tokembed.training.checkpoint import load_checkpoint, save_checkpoint
from tokembed.cli import main
from tokembed.errors import ConfigError
from tokembed.model import ModelConfig, build_model
from tokembed.training.config import TrainConfig
from tokembed.vocab.export import export_checkpoint


def _ckpt(tok, folder, **model_kw):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=2, max_seq_len=64, **model_kw)
    model = build_model(mcfg, seed=1)
    with torch.no_grad():  # trained-looking LayerNorms and biases, so a wrong mapping shows
        for name, p in model.named_parameters():
            if "ln" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
        bias = getattr(model.head, "bias", None) if model.config.head != "untied" else model.head.proj.bias
        if bias is not None:
            bias.zero_()
    return save_checkpoint(folder, model=model, tokenizer=tok, config=TrainConfig(model=mcfg, max_steps=1, seq_len=32))


@pytest.mark.parametrize("kw", [
    {"positional": "learned", "head": "tied"},
    {"positional": "rope", "head": "untied", "head_bias": False},
    {"positional": "sinusoidal", "head": "untied"},
    {"positional": "rope", "embedding": "factorized", "rank": 8, "head": "tied"},
])
def test_export_hf_logits_match(bpe_tok, tmp_path, kw):
    import transformers

    src = _ckpt(bpe_tok, tmp_path / "ck", **kw)
    rep = export_checkpoint(src, tmp_path / "hf", format="hf")
    assert rep["max_abs_logit_diff"] < 1e-4
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model, tok, _ = load_checkpoint(src)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = hf_tok(SENTENCES[2])["input_ids"]
    assert ids == tok.encode(SENTENCES[2])
    with torch.no_grad():
        assert (hf.eval()(torch.tensor([ids])).logits - model(torch.tensor([ids])).logits).abs().max() < 1e-4


def test_export_refuses_what_gpt2_cannot_hold(bpe_tok, tmp_path):
    src = _ckpt(bpe_tok, tmp_path / "ck", positional="alibi")
    with pytest.raises(ConfigError, match="ALiBi"):
        export_checkpoint(src, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_export_vectors_and_safetensors_cli(bpe_tok, tmp_path, capsys):
    from tokembed.embeddings.pretrained import read_vectors

    src = _ckpt(bpe_tok, tmp_path / "ck")
    assert main(["export", str(src), "-o", str(tmp_path / "v"), "--format", "vectors"]) == 0
    vec = read_vectors(tmp_path / "v" / "vectors.txt", progress=False)
    model, _, _ = load_checkpoint(src)
    assert torch.allclose(torch.as_tensor(vec.matrix), model.embedding.weight_matrix().detach())
    assert main(["export", str(src), "-o", str(tmp_path / "s"), "--format", "safetensors"]) == 0
    assert json.loads(capsys.readouterr().out.split("}\n")[-2] + "}")["tensors"] == ["embedding", "head"]
