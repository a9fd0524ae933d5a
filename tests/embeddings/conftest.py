"""Shared checks of the embedding interface (forward(ids)->(B,T,D), num_embeddings, embedding_dim, weight_matrix())."""

import pytest
import torch

from tokembed.heads import TiedHead


def _check_interface(emb, *, atol=1e-6, tied=True):
    """Known answers every embedding must give, whatever its design."""
    V, D = emb.num_embeddings, emb.embedding_dim
    emb.eval()
    ids = torch.arange(V).reshape(1, V)
    out = emb(ids)
    assert out.shape == (1, V, D) and out.dtype == torch.float32
    W = emb.weight_matrix()
    assert W.shape == (V, D)
    # the materialised table is exactly what the lookup returns, row for row
    torch.testing.assert_close(out[0], W, atol=atol, rtol=1e-5)
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, V, (2, 5), generator=g)
    assert emb(batch).shape == (2, 5, D)
    if tied:
        head = TiedHead(emb, bias=True)
        with torch.no_grad():
            head.bias.normal_(generator=g)
        h = torch.randn(2, 5, D, generator=g)
        z = head(h)
        torch.testing.assert_close(z, h @ W.T + head.bias, atol=atol, rtol=1e-5)  # z = E h + b
        # gradients reach the shared parameters from both ends
        emb.train()
        for p in emb.parameters():
            p.grad = None
        head(emb(batch)).sum().backward()
        grads = [p.grad for p in emb.parameters() if p.requires_grad]
        assert grads and all(gr is not None for gr in grads)
        emb.zero_grad()
        head.forward_reference(torch.randn(3, D, generator=g)).sum().backward()  # head end alone
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in emb.parameters())
        emb.zero_grad()
    emb.eval()
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run tiny ops; on a loaded 2-core machine two spinning OpenMP threads make a
    7-token char-CNN step take ~0.7 s instead of ~0.01 s. Restored after each test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def check_interface():
    return _check_interface


def _cuda_available():
    return torch.cuda.is_available()


@pytest.fixture
def cuda_device():
    if not _cuda_available():
        pytest.skip("needs a CUDA GPU")
    return torch.device("cuda")
