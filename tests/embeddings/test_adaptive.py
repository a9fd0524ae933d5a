"""AdaptiveInput: band widths, parameter counts, frequency permutation, index stability."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tokembed.embeddings import AdaptiveInput, frequency_permutation
from tokembed.embeddings.adaptive import adaptive_param_count, band_bounds, band_dims, inverse_permutation
from tokembed.errors import ConfigError, TokenIdError
from tokembed.artifacts import load_tensors, save_tensors


def _counts(V, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 1000, (V,), generator=g)


# Known answer: Baevski & Auli (2019), WikiText-103 setup: V = 267,744, D = 1024, cutoffs 20k/60k,
# factor 4 -> bands of width 1024/256/64 (hand-computed from the formula): 20000·1024 + 40000·256 + 207744·64 + 256·1024 + 64·1024
EXPECTED_WT103_PARAMS = 20000 * 1024 + 40000 * 256 + 207744 * 64 + 256 * 1024 + 64 * 1024


def test_param_count_formula_known_answer():
    assert adaptive_param_count(267_744, 1024, [20_000, 60_000], 4) == EXPECTED_WT103_PARAMS == 44_343_296
    emb = AdaptiveInput(1000, 64, [100, 400], 4.0)
    assert emb.band_dims == [64, 16, 4] and emb.band_sizes == [100, 300, 600]
    # 100·64 + 300·16 + 600·4 + (16·64 + 4·64); band 0 has no projection (d_0 = D)
    expected = 100 * 64 + 300 * 16 + 600 * 4 + 16 * 64 + 4 * 64
    assert sum(p.numel() for p in emb.parameters()) == expected == adaptive_param_count(1000, 64, [100, 400], 4.0)


def test_frequency_permutation_known_answer_and_ties():
    assert frequency_permutation([5, 9, 5, 0, 9]).tolist() == [1, 4, 0, 2, 3]  # ties: smaller id first
    order = frequency_permutation(torch.tensor([3.0, 1.0, 2.0]))
    assert order.tolist() == [0, 2, 1]
    assert inverse_permutation(order).tolist() == [0, 2, 1]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=60))
def test_frequency_permutation_round_trip(counts):
    order = frequency_permutation(counts)
    rank = inverse_permutation(order)
    V = len(counts)
    assert sorted(order.tolist()) == list(range(V))
    assert torch.equal(order[rank], torch.arange(V)) and torch.equal(rank[order], torch.arange(V))
    sorted_counts = [counts[i] for i in order.tolist()]
    assert sorted_counts == sorted(counts, reverse=True)


def test_forward_matches_reference_and_weight_matrix_in_tokenizer_order():
    counts = _counts(50)
    emb = AdaptiveInput.from_counts(counts, 16, cutoffs=[5, 20], factor=2)
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    out = emb(ids)
    assert out.shape == (3, 7, 16)
    torch.testing.assert_close(out, emb._reference_forward(ids), rtol=0, atol=1e-6)
    W = emb.weight_matrix()
    assert W.shape == (50, 16)
    torch.testing.assert_close(out, W[ids], rtol=0, atol=1e-6)


def test_most_frequent_tokens_get_the_wide_band():
    counts = torch.zeros(30, dtype=torch.long)
    counts[[17, 3, 25]] = torch.tensor([100, 90, 80])
    emb = AdaptiveInput.from_counts(counts, 8, cutoffs=[3], factor=4)
    assert emb.order[:3].tolist() == [17, 3, 25]
    assert emb.rank[[17, 3, 25]].tolist() == [0, 1, 2]
    # tokenizer id 17 is looked up as row 0 of band 0 (width 8, no projection)
    torch.testing.assert_close(emb(torch.tensor([[17]]))[0, 0], emb.bands[0][0])


def test_permutation_survives_state_dict_round_trip(tmp_path):
    emb = AdaptiveInput.from_counts(_counts(40, seed=3), 8, cutoffs=[4, 12], factor=2, seed=5)
    path = tmp_path / "m.safetensors"
    save_tensors(path, {k: v.contiguous() for k, v in emb.state_dict().items()})
    fresh = AdaptiveInput(40, 8, [4, 12], 2, seed=9)  # identity order, other weights
    assert not torch.equal(fresh.order, emb.order)
    fresh.load_state_dict(load_tensors(path))
    assert torch.equal(fresh.order, emb.order) and torch.equal(fresh.rank, emb.rank)
    ids = torch.arange(40)[None]
    torch.testing.assert_close(fresh(ids), emb(ids), rtol=0, atol=0)


def test_padding_idx_is_zero_and_gets_no_gradient():
    counts = _counts(20, seed=2)
    pad = int(frequency_permutation(counts)[15])  # lands in the last band
    emb = AdaptiveInput.from_counts(counts, 8, cutoffs=[4, 10], factor=2, padding_idx=pad)
    ids = torch.tensor([[pad, 1, 2, pad]])
    out = emb(ids)
    assert torch.count_nonzero(out[0, 0]) == 0
    out.sum().backward()
    k, j = emb._locate(int(emb.rank[pad]))
    assert k == 2 and torch.count_nonzero(emb.bands[k].grad[j]) == 0


def test_gradients_reach_every_band():
    emb = AdaptiveInput(30, 8, [5, 15], 2)
    emb(torch.arange(30)[None]).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in emb.parameters())


def test_bad_ids_raise_token_id_error():
    emb = AdaptiveInput(10, 4, [3], 2)
    with pytest.raises(TokenIdError, match=r"\[0, 10\)"):
        emb(torch.tensor([[1, 10]]))
    with pytest.raises(TokenIdError, match="dtype"):
        emb(torch.tensor([[1.0]]))


@pytest.mark.parametrize(
    "cutoffs, match",
    [([], "cutoffs"), ([5, 3], "increasing"), ([0, 4], "inside"), ([4, 11], "inside"), ([2, 4, 6, 8], "width")],
)
def test_bad_config_is_a_config_error(cutoffs, match):
    with pytest.raises(ConfigError, match=match):
        AdaptiveInput(10, 8, cutoffs, 4.0)


def test_bad_permutation_and_counts():
    with pytest.raises(ConfigError, match="missing"):
        AdaptiveInput(4, 4, [2], 2, permutation=[0, 1, 1, 3])
    with pytest.raises(ConfigError, match="length V=4"):
        AdaptiveInput(4, 4, [2], 2, permutation=[0, 1, 2])
    with pytest.raises(ConfigError, match="negative"):
        frequency_permutation([1, -2, 3])
    assert band_bounds(10, [2, 5]) == [(0, 2), (2, 5), (5, 10)]
    assert band_dims(512, 3, 4.0) == [512, 128, 32]
