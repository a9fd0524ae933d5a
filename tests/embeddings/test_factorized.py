"""FactorizedEmbedding: E = A B (ALBERT), its parameter count and the tied-head fast path."""

import pytest
import torch

from tokembed.embeddings import FactorizedEmbedding, TokenEmbedding, init_from_pretrained
from tokembed.errors import ConfigError, TokenIdError
from tokembed.heads import TiedHead
from tokembed.vocab import Vocab


@pytest.mark.parametrize("V, D, r", [(30000, 4096, 128), (1000, 64, 8), (7, 5, 5)])
def test_parameter_count_formula(V, D, r):
    # V·r + r·D (ALBERT-xxlarge: V=30000, E=128, H=4096 -> 3,840,000 + 524,288)
    emb = FactorizedEmbedding(V, D, r)
    assert sum(p.numel() for p in emb.parameters()) == V * r + r * D
    if (V, D, r) == (30000, 4096, 128):
        assert V * r + r * D == 4_364_288


def test_interface_and_tied_head(check_interface):
    emb = FactorizedEmbedding(50, 16, 4, seed=1)
    check_interface(emb)
    torch.testing.assert_close(emb.weight_matrix(), emb.A @ emb.B, rtol=0, atol=0)


def test_fast_path_agrees_with_reference_in_float64():
    emb = FactorizedEmbedding(40, 12, 3)
    head = TiedHead(emb, bias=True).double()
    with torch.no_grad():
        head.bias.uniform_(-1, 1)
    h = torch.randn(4, 7, 12, dtype=torch.float64)
    fast, ref = head(h), head.forward_reference(h)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast, h @ (emb.A @ emb.B).T + head.bias, rtol=1e-12, atol=1e-12)
    # gradients of both paths agree too
    g_fast = torch.autograd.grad(head(h).square().sum(), [emb.A, emb.B])
    g_ref = torch.autograd.grad(head.forward_reference(h).square().sum(), [emb.A, emb.B])
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_tied_head_on_plain_embedding_is_unchanged():
    emb = TokenEmbedding(9, 4)
    h = torch.randn(3, 4)
    assert torch.equal(TiedHead(emb)(h), h @ emb.weight.T)  # exact: same kernel as before


def test_padding_row_and_id_validation():
    emb = FactorizedEmbedding(10, 6, 2, padding_idx=0)
    out = emb(torch.tensor([[0, 3]]))
    assert torch.equal(out[0, 0], torch.zeros(6))
    out.sum().backward()
    assert emb.A.grad[0].abs().sum() == 0
    for bad in (torch.tensor([[10]]), torch.tensor([[-1]]), torch.tensor([[1.0]])):
        with pytest.raises(TokenIdError, match="FactorizedEmbedding"):
            emb(bad)
    with pytest.raises(ConfigError, match="rank=7 must be in"):
        FactorizedEmbedding(10, 6, 7)


def test_load_matrix_is_the_best_rank_r_approximation():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(30, 10, generator=g, dtype=torch.float64)
    emb = FactorizedEmbedding(30, 10, 3).double()
    emb.load_matrix(M)
    s = torch.linalg.svdvals(M)
    err = torch.linalg.matrix_norm(M - emb.weight_matrix())
    torch.testing.assert_close(err, s[3:].square().sum().sqrt())  # Eckart–Young: ||M - M_r||_F
    low = (emb.A @ emb.B).detach()
    emb2 = FactorizedEmbedding(30, 10, 3).double()
    emb2.load_matrix(low)  # a rank-3 matrix is recovered exactly
    torch.testing.assert_close(emb2.weight_matrix(), low)


def test_init_from_pretrained_writes_through_load_matrix():
    words = ["a", "b", "c", "d"]
    mat = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [1.0, 1.0, 0]]).numpy()
    emb = FactorizedEmbedding(4, 3, 3)
    r = init_from_pretrained(emb, Vocab(words), (words, mat))
    assert r.exact == 4
    torch.testing.assert_close(emb.weight_matrix(), torch.from_numpy(mat), atol=1e-5, rtol=0)


@pytest.mark.cuda
def test_cuda(cuda_device, check_interface):
    emb = FactorizedEmbedding(50, 16, 4).to(cuda_device)
    ids = torch.randint(0, 50, (2, 3), device=cuda_device)
    assert emb(ids).device.type == "cuda"
    h = torch.randn(2, 16, device=cuda_device)
    torch.testing.assert_close(TiedHead(emb)(h), h @ emb.weight_matrix().T)
