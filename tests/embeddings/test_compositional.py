"""CompositionalEmbedding (char CNN / pieces) and FrequencyGatedEmbedding."""

import pytest
import torch

from tokembed.embeddings import CompositionalEmbedding, FrequencyGatedEmbedding, TokenEmbedding
from tokembed.embeddings.compositional import CharCNN, byte_ids
from tokembed.errors import ConfigError, TokenIdError
from tokembed.heads import TiedHead

TOKENS = ["<unk>", "the", "##ing", "Ġcat", "naïve", "東京", "a" * 40]


def test_char_cnn_parameter_formula():
    C, D, widths, filters = 16, 24, (1, 2, 3), (8, 8, 16)
    m = CharCNN(D, char_dim=C, widths=widths, filters=filters)
    expected = 259 * C + sum(C * w * f + f for w, f in zip(widths, filters)) + sum(filters) * D + D
    assert sum(p.numel() for p in m.parameters()) == expected


def test_chars_interface_and_tied_head(check_interface):
    emb = CompositionalEmbedding(TOKENS, 12, filters=(4, 4, 8, 8))
    check_interface(emb, atol=1e-6)


def test_vector_depends_only_on_the_string():
    emb = CompositionalEmbedding(TOKENS, 12)
    # the same string gives the same vector whatever else is in the batch, and via embed_strings
    a = emb(torch.tensor([[1]]))[0, 0]
    b = emb(torch.tensor([[6, 5, 1, 2]]))[0, 2]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(emb.embed_strings(["the"])[0], a, rtol=0, atol=1e-6)
    new = emb.embed_strings(["catamaran", "the"])
    assert new.shape == (2, 12) and not torch.allclose(new[0], new[1])
    # truncation: strings that agree on the first max_bytes bytes share a vector
    torch.testing.assert_close(emb.embed_strings(["a" * 40])[0], emb.embed_strings(["a" * 25])[0])


def test_byte_ids_known_answer():
    assert byte_ids(["", "東"], 4).tolist() == [[257, 258, 256, 256, 256, 256], [257, 230, 157, 177, 258, 256]]


def test_pieces_sum_and_mean_known_answer(check_interface):
    pieces_table = TokenEmbedding(5, 3, seed=2)
    pieces = [[0], [1, 2], [3, 4, 4], [2]]
    W = pieces_table.weight.detach()
    for reduce in ("sum", "mean"):
        emb = CompositionalEmbedding(
            ["x", "yz", "abb", "z"], 3, mode="pieces", piece_embedding=pieces_table, pieces=pieces, reduce=reduce
        )
        out = emb(torch.tensor([[1, 2]]))[0]
        s1, s2 = W[1] + W[2], W[3] + 2 * W[4]
        torch.testing.assert_close(out[0], s1 if reduce == "sum" else s1 / 2)
        torch.testing.assert_close(out[1], s2 if reduce == "sum" else s2 / 3)
        check_interface(emb)
    fn = {"yzz": [1, 2, 2]}.get
    emb = CompositionalEmbedding(
        ["x", "yz", "abb", "z"], 3, mode="pieces", piece_embedding=pieces_table, pieces=pieces, piece_fn=fn,
        reduce="sum",
    )
    torch.testing.assert_close(emb.embed_strings(["yzz"])[0], W[1] + 2 * W[2])
    # gradients reach the piece table
    emb(torch.tensor([[2]])).sum().backward()
    assert pieces_table.weight.grad[4].abs().sum() > 0 and pieces_table.weight.grad[1].abs().sum() == 0


def test_bad_options():
    t = TokenEmbedding(5, 3)
    with pytest.raises(ConfigError, match="needs piece_embedding"):
        CompositionalEmbedding(["a"], 3, mode="pieces")
    with pytest.raises(ConfigError, match="have no pieces"):
        CompositionalEmbedding(["a", "b"], 3, mode="pieces", piece_embedding=t, pieces=[[0], []])
    with pytest.raises(ConfigError, match="mode='bytes'"):
        CompositionalEmbedding(["a"], 3, mode="bytes")
    with pytest.raises(ConfigError, match="needs piece_fn"):
        CompositionalEmbedding(["a"], 3, mode="pieces", piece_embedding=t, pieces=[[0]]).embed_strings(["b"])
    with pytest.raises(TokenIdError):
        CompositionalEmbedding(["a"], 3)(torch.tensor([[1]]))


def _gated(mode):
    V, D = len(TOKENS), 8
    lookup = TokenEmbedding(V, D, seed=1)
    comp = CompositionalEmbedding(TOKENS, D, filters=(4, 4, 4, 4))
    counts = [0, 500, 3, 50, 0, 10, 1]
    return lookup, comp, FrequencyGatedEmbedding(lookup, comp, counts, threshold=10, mode=mode)


def test_frequency_gate_hard(check_interface):
    lookup, comp, emb = _gated("hard")
    ids = torch.tensor([[0, 1, 2, 3, 4, 5, 6]])
    out = emb(ids)[0]
    frequent = [1, 3, 5]  # counts >= 10
    torch.testing.assert_close(out[frequent], lookup(ids)[0, frequent], rtol=0, atol=0)
    torch.testing.assert_close(out[[0, 2, 4, 6]], comp(ids)[0, [0, 2, 4, 6]], rtol=0, atol=1e-6)
    check_interface(emb)
    assert sum(p.numel() for p in emb.parameters()) == sum(p.numel() for p in lookup.parameters()) + sum(
        p.numel() for p in comp.parameters()
    )
    lookup.zero_grad()
    emb(torch.tensor([[2, 1]])).sum().backward()
    assert lookup.weight.grad[2].abs().sum() == 0 and lookup.weight.grad[1].abs().sum() > 0  # rare row gets no gradient
    # strings: vocab tokens get the gated vector, new strings the compositional one
    s = emb.embed_strings(["the", "zebra"])
    torch.testing.assert_close(s[0], lookup.weight[1])
    torch.testing.assert_close(s[1], comp.embed_strings(["zebra"])[0])


def test_frequency_gate_soft_formula(check_interface):
    lookup, comp, emb = _gated("soft")
    ids = torch.tensor([[1, 2, 0]])
    g = torch.tensor([500 / 510, 3 / 13, 0.0]).unsqueeze(-1)
    torch.testing.assert_close(emb(ids)[0], g * lookup(ids)[0] + (1 - g) * comp(ids)[0])
    check_interface(emb)
    with pytest.raises(ConfigError, match="counts must hold 7"):
        FrequencyGatedEmbedding(lookup, comp, [1, 2], threshold=3)
    with pytest.raises(ConfigError, match="same V ids"):
        FrequencyGatedEmbedding(TokenEmbedding(3, 8), comp, [1, 2, 3], threshold=3)


def test_tied_head_through_gate():
    _, _, emb = _gated("soft")
    head = TiedHead(emb)
    h = torch.randn(2, 8)
    torch.testing.assert_close(head(h), h @ emb.weight_matrix().T)


@pytest.mark.cuda
def test_cuda(cuda_device):
    _, _, emb = _gated("hard")
    emb = emb.to(cuda_device)
    assert emb(torch.tensor([[0, 1, 2]], device=cuda_device)).device.type == "cuda"
    assert emb.embed_strings(["zebra", "the"]).device.type == "cuda"
