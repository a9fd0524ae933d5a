"""Magnitude pruning, vocabulary trimming (ids consistent in tokenizer and model), the planner vs uniform."""

import pytest
import torch

from tokembed.compress import TrimmedEmbedding, TrimmedHead, magnitude_prune, plan, quantize, token_counts, trim_vocab
from tokembed.compress import MixedEmbedding
from tokembed.compress.planner import frequency_bands, weighted_error
from tokembed.compress.pq import product_quantize
from tokembed.errors import ConfigError
from tokembed.tokenizers import ByteTokenizer


def test_magnitude_prune_keeps_the_largest_entries_per_row():
    W = torch.randn(50, 20, generator=torch.Generator().manual_seed(0))
    sp = magnitude_prune(W, sparsity=0.75)
    dec = sp.decode()
    assert ((dec != 0).sum(1) == 5).all()
    kept_min = torch.where(dec != 0, W.abs(), torch.inf).amin(1)
    dropped_max = torch.where(dec == 0, W.abs(), 0.0).amax(1)
    assert (kept_min >= dropped_max).all()
    assert torch.equal(dec[dec != 0], W[dec != 0])
    assert sp.nbytes == 50 * 5 * (4 + 2)
    with pytest.raises(ConfigError, match="sparsity=1.5"):
        magnitude_prune(W, sparsity=1.5)


def test_trimming_keeps_kept_vectors_bit_identical_and_ids_consistent():
    tok = ByteTokenizer()
    V = tok.vocab_size
    E = torch.randn(V, 8, generator=torch.Generator().manual_seed(1))
    bias = torch.randn(V)
    text = ["hello world", "abc"]
    counts = token_counts(tok, text)
    keep = counts.nonzero().flatten()
    assert set(keep.tolist()) == set(b for t in text for b in t.encode())
    tr = trim_vocab(E, keep=keep, bias=bias)
    emb = TrimmedEmbedding(tr)
    ids = torch.tensor([tok.encode("hello abc")])  # the unchanged tokenizer's ids
    assert torch.equal(emb(ids), E[ids])  # bit-identical for every kept token
    dropped = torch.tensor([[ord("z")]])
    assert torch.equal(emb(dropped)[0, 0], E[[i for i in range(V) if i not in set(keep.tolist())]].mean(0))
    head = TrimmedHead(tr)
    h = torch.randn(3, 8)
    z = head(h)
    assert z.shape == (3, V)
    assert torch.allclose(z[:, keep], h @ E[keep].T + bias[keep], atol=1e-6)
    assert tr.table.shape == (len(keep) + 1, 8)


def test_planner_beats_uniform_at_equal_bytes_on_zipf_weighted_error():
    g = torch.Generator().manual_seed(0)
    V, D = 2048, 32
    E = torch.randn(V, D, generator=g)
    # Zipf counts of a finite corpus (count of rank r = floor(1000 / r)): half the vocabulary is never seen
    counts = torch.floor(1000 / torch.arange(1, V + 1).double())[torch.randperm(V, generator=g)]
    for uniform in ("int4", "int8"):
        qt = quantize(E, bits=int(uniform[3:]))
        budget = qt.nbytes + V  # uniform bytes + the planner's 1 byte/row map
        p = plan(E, counts, budget_bytes=budget, n_bands=6, options=("fp16", "int8", "int4", "pq"), pq_M=8, pq_nbits=6)
        assert p.nbytes <= budget
        err_uniform = weighted_error(E, qt.dequantize(), counts)
        err_plan = weighted_error(E, MixedEmbedding(p.tables).weight_matrix(), counts)
        assert abs(err_plan - p.weighted_error) < 1e-6 * max(1.0, err_plan)
        assert err_plan < 0.5 * err_uniform, (uniform, err_plan, err_uniform, [b["option"] for b in p.bands])
        assert p.bands[0]["option"] in ("fp16", "int8")  # frequent tokens keep more precision


def test_planner_budget_too_small_and_bands():
    E = torch.randn(64, 8)
    with pytest.raises(ConfigError, match="budget_bytes=10 is below"):
        plan(E, torch.ones(64), budget_bytes=10, options=("int8", "int4"))
    bands = frequency_bands(torch.tensor([5, 1, 9, 0, 3, 7, 2, 8]), 3)
    assert [b.tolist() for b in bands] == [[2, 7], [5, 0], [4, 6, 1, 3]]


def test_mixed_embedding_serves_each_row_from_its_option():
    g = torch.Generator().manual_seed(3)
    E = torch.randn(256, 16, generator=g)
    counts = torch.arange(256, 0, -1).double()
    p = plan(E, counts, budget_bytes=256 * 13, n_bands=4, options=("int8", "int4", "pq"), pq_M=4)
    emb = MixedEmbedding(p.tables)
    full = emb.weight_matrix()
    pq = product_quantize(E, M=4, nbits=8, seed=0).decode()
    for b, rows in zip(p.bands, frequency_bands(counts, 4)):
        ref = {"int8": quantize(E, bits=8).dequantize(), "int4": quantize(E, bits=4).dequantize(), "pq": pq}[b["option"]]
        assert torch.equal(full[rows], ref[rows])
    ids = torch.tensor([[0, 255, 17]])
    assert torch.equal(emb(ids)[0], full[ids[0]])
