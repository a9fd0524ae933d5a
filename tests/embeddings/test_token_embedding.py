"""TokenEmbedding: id validation, max-norm without in-place autograd errors, stable-embedding LayerNorm."""

import math

import pytest
import torch
from torch import nn

from tokembed.embeddings import TokenEmbedding
from tokembed.errors import ConfigError, TokenIdError
from tokembed.heads import TiedHead


def test_interface_known_answers(check_interface):
    emb = TokenEmbedding(20, 8, seed=3)
    check_interface(emb, atol=0)
    assert sum(p.numel() for p in emb.parameters()) == 20 * 8  # V·D


@pytest.mark.parametrize(
    "ids, match",
    [
        (torch.tensor([[1, 10]]), r"ids \[10\] at positions \[\[0, 1\]\] are outside the valid range \[0, 10\)"),
        (torch.tensor([[-1, 2, -3]]), r"ids \[-1, -3\] at positions \[\[0, 0\], \[0, 2\]\]"),
        (torch.tensor([[1.0, 2.0]]), r"dtype torch.float32; pass an integer tensor"),
        (torch.tensor([[True]]), r"dtype torch.bool"),
        ([[1, 2]], "must be a torch tensor"),
    ],
)
def test_bad_ids_raise_token_id_error(ids, match):
    emb = TokenEmbedding(10, 4)
    with pytest.raises(TokenIdError, match=match) as e:
        emb(ids)
    assert isinstance(e.value, IndexError)  # also catchable as the builtin


def test_int32_ids_and_empty_batch_work():
    emb = TokenEmbedding(10, 4)
    assert torch.equal(emb(torch.tensor([[3]], dtype=torch.int32)), emb(torch.tensor([[3]])))
    assert emb(torch.zeros(0, 5, dtype=torch.long)).shape == (0, 5, 4)


def _tied_twice(lookup, weight, ids1, ids2):
    """A tied model that embeds twice before backward (e.g. a second segment): head(emb(a)) + emb(b)."""
    z = lookup(ids1) @ weight.T  # the head uses the weight ...
    x2 = lookup(ids2)  # ... then the second lookup renormalises it (in place for nn.Embedding)
    return z.sum() + x2.sum()


def test_nn_embedding_max_norm_breaks_tying_and_ours_does_not():
    ids1, ids2 = torch.tensor([[0, 1]]), torch.tensor([[2, 3]])
    ref = nn.Embedding(5, 3, max_norm=1.0)
    with torch.no_grad():
        ref.weight.mul_(10)  # every row above the max norm
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _tied_twice(ref, ref.weight, ids1, ids2).backward()

    ours = TokenEmbedding(5, 3, max_norm=1.0)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(5, 3) * 10)
    head = TiedHead(ours)
    loss = head(ours(ids1)).sum() + ours(ids2).sum()
    loss.backward()  # no error
    assert ours.weight.grad is not None and ours.weight.grad.abs().sum() > 0
    # the constraint holds on what comes out, and on what the tied head sees
    assert torch.linalg.vector_norm(ours(torch.arange(5)[None]), dim=-1).max() <= 1.0 + 1e-6
    assert torch.linalg.vector_norm(head.weight_matrix(), dim=-1).max() <= 1.0 + 1e-6


def test_max_norm_output_equals_nn_embedding_where_it_works():
    torch.manual_seed(0)
    ref = nn.Embedding(6, 4, max_norm=0.5, norm_type=1.0)
    ours = TokenEmbedding(6, 4, max_norm=0.5, norm_type=1.0)
    with torch.no_grad():
        ours.weight.copy_(ref.weight)
    ids = torch.tensor([[0, 1, 2, 3, 4, 5]])
    expected = ref(ids).detach()  # nn.Embedding renormalises rows in place and returns them
    torch.testing.assert_close(ours(ids), expected)
    assert not torch.equal(ours.weight.detach(), ref.weight.detach())  # ours leaves the table alone ...
    ours.apply_max_norm_()
    torch.testing.assert_close(ours.weight.detach(), ref.weight.detach())  # ... until projected explicitly


def test_max_norm_gradient_matches_autograd_reference():
    emb = TokenEmbedding(4, 3, max_norm=1.0).double()
    with torch.no_grad():
        emb.weight.copy_(torch.randn(4, 3, dtype=torch.float64) * 3)
    ids = torch.tensor([[0, 2, 2]])

    def f(w):
        x = w[ids]
        n = x.norm(dim=-1, keepdim=True)
        return torch.where(n > 1.0, x / (n + 1e-7), x).pow(3).sum()

    (g_ref,) = torch.autograd.grad(f(emb.weight), emb.weight)
    (g,) = torch.autograd.grad(emb(ids).pow(3).sum(), emb.weight)
    torch.testing.assert_close(g, g_ref)
    with pytest.raises(ConfigError, match="max_norm=0 must be > 0"):
        TokenEmbedding(4, 3, max_norm=0)


def test_stable_embedding_layer_norm_and_scale():
    emb = TokenEmbedding(10, 8, layer_norm=True, init="xavier", scale=True)
    x = emb(torch.tensor([[1, 2, 3]]))
    # LayerNorm (gain 1, bias 0 at init): each vector has mean 0 and variance 1, then ×√D
    torch.testing.assert_close(x.mean(-1), torch.zeros(1, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.var(-1, unbiased=False), torch.full((1, 3), 8.0), atol=1e-3, rtol=1e-3)
    assert sum(p.numel() for p in emb.parameters()) == 10 * 8 + 2 * 8  # V·D + LayerNorm gain and bias
    expected = nn.functional.layer_norm(emb.weight[[1, 2, 3]], (8,)) * math.sqrt(8)
    torch.testing.assert_close(x[0], expected)
    emb(torch.tensor([[1]])).sum().backward()
    assert emb.norm.weight.grad is not None and emb.weight.grad is not None


@pytest.mark.cuda
def test_cuda(cuda_device):
    emb = TokenEmbedding(10, 4, max_norm=1.0, layer_norm=True).to(cuda_device)
    out = emb(torch.tensor([[1, 2]], device=cuda_device))
    assert out.device.type == "cuda"
    with pytest.raises(TokenIdError):
        emb(torch.tensor([[10]], device=cuda_device))
