"""MixtureEmbedding: lexical + feature embeddings by sum, concat+projection, learned gate."""

import pytest
import torch

from tokembed.embeddings import MixtureEmbedding, TokenEmbedding
from tokembed.errors import ConfigError, TokenIdError

V, D = 30, 8
FEATS = {"pos": 17, "case": 3}


def _inputs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (2, 5), generator=g)
    feats = {"pos": torch.randint(0, 17, (2, 5), generator=g), "case": torch.randint(0, 3, (2, 5), generator=g)}
    return ids, feats


def test_sum_known_answer_and_params():
    emb = MixtureEmbedding(TokenEmbedding(V, D), FEATS, combine="sum")
    ids, f = _inputs()
    expected = emb.lexical(ids) + emb.features["pos"](f["pos"]) + emb.features["case"](f["case"])
    torch.testing.assert_close(emb(ids, f), expected)
    assert sum(p.numel() for p in emb.parameters()) == V * D + (17 + 3) * D


def test_concat_known_answer_and_params():
    emb = MixtureEmbedding(TokenEmbedding(V, 6), FEATS, combine="concat", embedding_dim=D, feature_dim=4)
    ids, f = _inputs()
    cat = torch.cat([emb.lexical(ids), emb.features["pos"](f["pos"]), emb.features["case"](f["case"])], -1)
    torch.testing.assert_close(emb(ids, f), cat @ emb.proj.weight.T + emb.proj.bias)
    assert emb(ids, f).shape == (2, 5, D)
    assert sum(p.numel() for p in emb.parameters()) == V * 6 + (17 + 3) * 4 + (6 + 4 + 4) * D + D


def test_gate_known_answer_and_params():
    emb = MixtureEmbedding(TokenEmbedding(V, D), FEATS, combine="gate")
    ids, f = _inputs()
    v = torch.stack([emb.lexical(ids), emb.features["pos"](f["pos"]), emb.features["case"](f["case"])], -2)  # (B,T,S,D)
    alpha = torch.softmax(v.flatten(-2) @ emb.gate.weight.T + emb.gate.bias, -1)
    torch.testing.assert_close(emb(ids, f), (alpha.unsqueeze(-1) * v).sum(-2))
    S = 3
    assert sum(p.numel() for p in emb.parameters()) == V * D + 20 * D + S * D * S + S
    emb(ids, f).sum().backward()
    assert all(p.grad is not None for p in emb.parameters())


@pytest.mark.parametrize("combine", ["sum", "concat", "gate"])
def test_static_tables_give_interface(combine, check_interface):
    case_of = torch.arange(V) % 3
    emb = MixtureEmbedding(TokenEmbedding(V, D), {"case": 3}, combine=combine, feature_tables={"case": case_of})
    check_interface(emb, atol=1e-6)
    ids, _ = _inputs()
    torch.testing.assert_close(emb(ids), emb(ids, {"case": case_of[ids]}))  # table used when not passed


def test_errors():
    emb = MixtureEmbedding(TokenEmbedding(V, D), FEATS)
    ids, f = _inputs()
    with pytest.raises(ConfigError, match="feature 'case' was not passed"):
        emb(ids, {"pos": f["pos"]})
    with pytest.raises(ConfigError, match=r"unknown features \['lemma'\]"):
        emb(ids, {**f, "lemma": f["pos"]})
    with pytest.raises(ConfigError, match="needs the ids' shape"):
        emb(ids, {**f, "pos": f["pos"][:, :2]})
    with pytest.raises(TokenIdError):
        emb(ids, {**f, "pos": f["pos"] + 17})  # feature ids are validated too
    with pytest.raises(ConfigError, match="needs every source at D=8"):
        MixtureEmbedding(TokenEmbedding(V, D), {"pos": TokenEmbedding(17, 4)}, combine="sum")
    with pytest.raises(ConfigError, match="combine='max'"):
        MixtureEmbedding(TokenEmbedding(V, D), FEATS, combine="max")
    with pytest.raises(ConfigError, match="needs one per vocabulary id"):
        MixtureEmbedding(TokenEmbedding(V, D), FEATS, feature_tables={"case": torch.zeros(3)})


@pytest.mark.cuda
def test_cuda(cuda_device):
    emb = MixtureEmbedding(TokenEmbedding(V, D), FEATS, combine="gate").to(cuda_device)
    ids, f = _inputs()
    out = emb(ids.to(cuda_device), {k: v.to(cuda_device) for k, v in f.items()})
    assert out.device.type == "cuda"
