import math

import pytest
import torch

from tokembed.embeddings.positional import (
    ALiBiPositions,
    LearnedPositions,
    RotaryPositions,
    SinusoidalPositions,
    alibi_slopes,
    build_positional,
    rope_rotate_reference,
    sinusoidal_table,
)
from tokembed.errors import ConfigError


def test_sinusoidal_known_values():
    # Vaswani et al. 2017 §3.5: PE[t, 2i] = sin(t / 10000^(2i/D)), PE[t, 2i+1] = cos(...)
    pe = sinusoidal_table(3, 4)
    assert pe[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    expected_t2 = [math.sin(2), math.cos(2), math.sin(2 / 100), math.cos(2 / 100)]
    assert pe[2].tolist() == pytest.approx(expected_t2, abs=1e-7)


def test_sinusoidal_is_added_to_embeddings():
    pe = SinusoidalPositions(4, max_seq_len=5)
    x = torch.zeros(2, 3, 4)
    assert torch.equal(pe.add(x)[1], sinusoidal_table(3, 4))
    assert list(pe.parameters()) == []


def test_learned_positions_are_parameters_added():
    pe = LearnedPositions(4, max_seq_len=6)
    x = torch.randn(2, 5, 4)
    assert torch.equal(pe.add(x), x + pe.weight[:5])
    assert sum(p.numel() for p in pe.parameters()) == 6 * 4  # Tmax·D


def test_alibi_slopes_known_answers():
    # Press et al. 2022 §3: 8 heads -> 1/2, 1/4, ..., 1/256; 16 heads -> 1/sqrt(2), 1/2, ..., 1/256
    assert alibi_slopes(8) == [2.0**-k for k in range(1, 9)]
    assert alibi_slopes(16) == pytest.approx([2.0 ** (-k / 2) for k in range(1, 17)])
    # non-power of 2 (their reference code): 8 slopes of n=8, then every other slope of n=16
    assert alibi_slopes(12) == pytest.approx([2.0**-k for k in range(1, 9)] + [2.0 ** (-k / 2) for k in (1, 3, 5, 7)])


def test_alibi_bias_is_linear_in_distance_and_causal():
    pe = ALiBiPositions(2, max_seq_len=8)
    b = pe.attn_bias(4)
    assert b.shape == (2, 4, 4)
    m = alibi_slopes(2)  # [1/16, 1/256]
    assert b[0, 3, 0].item() == pytest.approx(-3 * m[0])
    assert b[1, 2, 1].item() == pytest.approx(-1 * m[1])
    assert b[0, 1, 1].item() == 0.0
    assert torch.isinf(b[:, 0, 1]).all() and (b[:, 0, 1] < 0).all()


def test_rope_preserves_norms():
    rope = RotaryPositions(8, max_seq_len=16)
    q, k = torch.randn(2, 3, 16, 8), torch.randn(2, 3, 16, 8)
    q2, k2 = rope.rotate(q, k)
    torch.testing.assert_close(q2.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(k2.norm(dim=-1), k.norm(dim=-1))


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryPositions(8, max_seq_len=32)
    g = torch.Generator().manual_seed(0)
    q_vec, k_vec = torch.randn(8, generator=g), torch.randn(8, generator=g)
    # the same q at every position and the same k at every position
    q = q_vec.expand(1, 1, 32, 8).clone()
    k = k_vec.expand(1, 1, 32, 8).clone()
    qr, kr = rope.rotate(q, k)
    scores = (qr @ kr.transpose(-1, -2))[0, 0]  # (T, T): q_m · k_n
    for offset in (0, 1, 5, 17):
        diag = torch.diagonal(scores, offset=-offset)  # pairs with m - n = offset
        torch.testing.assert_close(diag, diag[0].expand_as(diag), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, -5)[0])


def test_rope_fast_path_matches_reference():
    hs, T = 6, 5
    rope = RotaryPositions(hs, max_seq_len=T)
    x_pair = torch.randn(2, T, hs, dtype=torch.float64)
    perm = list(range(0, hs, 2)) + list(range(1, hs, 2))  # pair layout -> rotate-half layout
    fast, _ = rope.rotate(x_pair[..., perm].float(), x_pair[..., perm].float())
    ref = rope_rotate_reference(x_pair, torch.arange(T))
    torch.testing.assert_close(fast, ref[..., perm].float(), atol=1e-5, rtol=1e-5)


def test_too_long_sequence_and_bad_kind_raise():
    with pytest.raises(ConfigError, match="max_seq_len=4"):
        SinusoidalPositions(4, max_seq_len=4).add(torch.zeros(1, 5, 4))
    with pytest.raises(ConfigError, match="choose one of"):
        build_positional("relative", d_model=4, n_heads=1, max_seq_len=4)
    with pytest.raises(ConfigError, match="even head dim"):
        RotaryPositions(3, max_seq_len=4)
