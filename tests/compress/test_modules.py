"""Compressed modules give the outputs of dequantize-then-nn.Embedding / matmul, and keep the interfaces."""

import pytest
import torch
from torch.nn import functional as F

from tokembed.compress import (CastEmbedding, PQEmbedding, QuantizedEmbedding, QuantizedHead, product_quantize,
                               quantize)
from tokembed.compress import module as qmod
from tokembed.errors import TokenIdError

W = torch.randn(97, 32, generator=torch.Generator().manual_seed(0))
IDS = torch.randint(0, 97, (3, 11), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("bits,gs,sym", [(8, None, True), (8, 8, False), (4, None, True), (4, 16, False)])
def test_quantized_embedding_equals_dequantize_then_embedding(bits, gs, sym):
    emb = QuantizedEmbedding.from_float(W, bits=bits, group_size=gs, symmetric=sym)
    Wq = quantize(W, bits=bits, group_size=gs, symmetric=sym).dequantize()
    assert torch.equal(emb(IDS), F.embedding(IDS, Wq))
    assert emb.num_embeddings == 97 and emb.embedding_dim == 32
    assert torch.equal(emb.weight_matrix(), Wq)


def test_quantized_embedding_validates_ids():
    emb = QuantizedEmbedding.from_float(W, bits=8)
    with pytest.raises(TokenIdError, match="97"):
        emb(torch.tensor([[97]]))


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_head_equals_dequantize_then_matmul(bits, monkeypatch):
    monkeypatch.setattr(qmod, "HEAD_BLOCK_ROWS", 40)  # several blocks, last one partial
    bias = torch.randn(97, generator=torch.Generator().manual_seed(3))
    head = QuantizedHead.from_float(W, bias=bias, bits=bits)
    h = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(4))
    Wq = quantize(W, bits=bits).dequantize()
    ref = h @ Wq.T + bias
    z = head(h)
    assert z.shape == (2, 5, 97)
    assert torch.allclose(z, ref, atol=1e-5)
    assert torch.allclose(head.log_prob(h), torch.log_softmax(ref, -1), atol=1e-5)
    t = torch.randint(0, 97, (2, 5))
    assert torch.allclose(head.loss(h, t), F.cross_entropy(ref.reshape(-1, 97), t.reshape(-1)), atol=1e-5)


def test_tied_head_shares_the_embedding_codes():
    emb = QuantizedEmbedding.from_float(W, bits=4, group_size=8)
    head = QuantizedHead.tied(emb)
    assert head.table is emb and head.tied
    h = torch.randn(4, 32)
    assert torch.allclose(head(h), h @ emb.weight_matrix().T, atol=1e-5)
    # stored once: the module tree holds one codes buffer
    assert len({id(b) for b in torch.nn.ModuleList([emb, head]).buffers()}) == 2  # codes + scale


def test_cast_embedding_and_pq_embedding():
    c = CastEmbedding(W, dtype="bf16")
    assert torch.equal(c(IDS), F.embedding(IDS, W.bfloat16().float()))
    pq = product_quantize(W, M=8, nbits=4, seed=0)
    e = PQEmbedding(pq)
    assert torch.equal(e(IDS), F.embedding(IDS, pq.decode()))
    assert e.nbytes == 97 * 8 + 8 * 16 * 4 * 4


KINDS = {"fp16": {}, "int8": {}, "int4": {"group_size": 8, "symmetric": False}, "pq": {"M": 8, "nbits": 4, "iters": 2},
         "lowrank": {"rank": 4}, "prune": {}, "trim": {}, "hash": {"buckets": 8, "iters": 2}, "plan": {"M": 8, "nbits": 4}}


@pytest.mark.parametrize("method", list(KINDS))
def test_one_module_serves_every_codec(method):
    from tokembed.compress import CompressedEmbedding, CompressedHead, embedding_for
    from tokembed.compress.apply import CompressOptions, compress_matrix

    counts = torch.floor(100 / torch.arange(1, 98).double())
    codec = compress_matrix(W, CompressOptions(method=method, **KINDS[method]), counts=counts).table
    emb = embedding_for(codec)
    assert isinstance(emb, CompressedEmbedding) and emb.codec is codec
    Wd = codec.decode()
    assert emb.nbytes == codec.nbytes > 0
    assert torch.allclose(emb(IDS), F.embedding(IDS, Wd), atol=1e-6)
    assert torch.equal(emb.weight_matrix(), Wd)
    with pytest.raises(TokenIdError, match="97"):
        emb(torch.tensor([[0, 97]]))
    bias = torch.randn(97, generator=torch.Generator().manual_seed(5))
    h = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(6))
    for head in (CompressedHead(emb, bias=bias), CompressedHead.tied(emb, bias=bias)):
        extra = codec.bias[codec.id_map.long()] if method == "trim" and codec.bias is not None else 0
        assert torch.allclose(head(h), h @ Wd.T + bias + extra, atol=1e-4)
    before = emb(IDS)
    emb._apply(lambda t: t.clone())  # what .to()/.cpu() do: new buffers; the codec must follow them
    assert all(t is getattr(emb, k.replace(".", "_")) for k, t in emb.codec.state()[0].items())
    assert torch.equal(emb(IDS), before)


def test_a_named_module_refuses_another_codec():
    from tokembed.compress import PQEmbedding
    from tokembed.errors import ConfigError

    with pytest.raises(ConfigError, match="PQEmbedding serves PQCodes"):
        PQEmbedding(quantize(W, bits=8))
