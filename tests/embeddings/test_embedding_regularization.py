"""EmbeddingDropout (token types) and TokenDropout (positions)."""

import pytest
import torch

from tokembed.embeddings import EmbeddingDropout, TokenDropout, TokenEmbedding
from tokembed.embeddings.regularization import embedding_dropout_reference
from tokembed.errors import ConfigError, TokenIdError

V, D = 200, 6


def test_type_dropout_drops_types_consistently_and_scales():
    emb = TokenEmbedding(V, D, seed=0)
    drop = EmbeddingDropout(emb, p=0.25, seed=1)
    ids = torch.arange(V).repeat(3, 1)  # every type at 3 positions
    x = drop(ids)
    base = emb(ids)
    kept = (x != 0).all(-1)  # (3, V)
    assert torch.equal(kept[0], kept[1]) and torch.equal(kept[1], kept[2])  # one mask per batch
    ratio = kept.float() / 0.75  # 0 or 1/(1-p)
    torch.testing.assert_close(x, base * ratio.unsqueeze(-1))
    assert torch.equal(x[~kept], torch.zeros_like(x[~kept]))
    dropped = (ratio[0] == 0).float().mean().item()
    assert 0.15 < dropped < 0.35  # Bernoulli(0.25) over 200 types
    assert not torch.equal(drop(ids), x)  # a fresh mask for the next batch


def test_type_dropout_agrees_with_full_table_reference():
    emb = TokenEmbedding(V, D, seed=0)
    drop = EmbeddingDropout(emb, p=0.4, seed=3)
    ids = torch.randint(0, V, (4, 9), generator=torch.Generator().manual_seed(0))
    m = drop.sample_mask()
    torch.testing.assert_close(drop(ids, mask=m), embedding_dropout_reference(emb.weight, ids, m), rtol=0, atol=0)


def test_seeded_and_eval_identity():
    ids = torch.randint(0, V, (2, 30), generator=torch.Generator().manual_seed(1))
    kinds = ((EmbeddingDropout, {}), (TokenDropout, {}), (TokenDropout, {"mode": "replace", "replacement_id": 0}))
    for cls, kw in kinds:
        a = cls(TokenEmbedding(V, D), 0.3, seed=7, **kw)
        b = cls(TokenEmbedding(V, D), 0.3, seed=7, **kw)
        assert torch.equal(a(ids), b(ids)) and torch.equal(a(ids), b(ids))  # same mask sequence
        a.eval()
        assert torch.equal(a(ids), a.embedding(ids))
        assert a.weight_matrix() is a.embedding.weight_matrix()


def test_token_dropout_zero_mode_keeps_ids_and_gradient():
    emb = TokenEmbedding(V, D)
    drop = TokenDropout(emb, 0.5, keep_ids=[0], seed=2)
    ids = torch.randint(1, V, (4, 50), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 0
    d = drop.sample_drop(ids)
    assert not d[:, 0].any() and 0.35 < d[:, 1:].float().mean() < 0.65
    x = drop(ids, drop=d)
    assert torch.equal(x[d], torch.zeros_like(x[d])) and torch.equal(x[~d], emb(ids)[~d])
    x.sum().backward()
    dropped_only = set(ids[d].tolist()) - set(ids[~d].tolist())
    for i in dropped_only:
        assert emb.weight.grad[i].abs().sum() == 0  # a dropped position sends no gradient to its row
    rescaled = TokenDropout(emb, 0.5, rescale=True)(ids, drop=d)
    torch.testing.assert_close(rescaled[~d], 2 * emb(ids)[~d])


def test_token_dropout_replace_mode():
    emb = TokenEmbedding(V, D)
    drop = TokenDropout(emb, 0.5, mode="replace", replacement_id=3, seed=0)
    ids = torch.randint(4, V, (2, 20), generator=torch.Generator().manual_seed(0))
    d = drop.sample_drop(ids)
    x = drop(ids, drop=d)
    torch.testing.assert_close(x[d], emb.weight[3].expand(int(d.sum()), D))
    torch.testing.assert_close(x[~d], emb(ids)[~d])


def test_bad_options_and_ids():
    emb = TokenEmbedding(10, 2)
    with pytest.raises(ConfigError, match="p=1.0 must be in"):
        EmbeddingDropout(emb, 1.0)
    with pytest.raises(ConfigError, match="needs replacement_id in"):
        TokenDropout(emb, 0.1, mode="replace")
    with pytest.raises(ConfigError, match="mode='swap'"):
        TokenDropout(emb, 0.1, mode="swap")
    with pytest.raises(TokenIdError):
        EmbeddingDropout(emb, 0.5)(torch.tensor([[10]]))


@pytest.mark.cuda
def test_cuda(cuda_device):
    emb = TokenEmbedding(V, D).to(cuda_device)
    ids = torch.randint(0, V, (2, 5), device=cuda_device)
    assert EmbeddingDropout(emb, 0.5, seed=0)(ids).device.type == "cuda"
    assert TokenDropout(emb, 0.5, seed=0)(ids).device.type == "cuda"
