import pytest
import torch

from tokembed.embeddings.positional import POSITIONAL_KINDS, sinusoidal_table
from tokembed.errors import ConfigError, TokenIdError
from tokembed.heads import TiedHead, UntiedHead
from tokembed.model import ModelConfig, Transformer, build_model

@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared CPU
    yield
    torch.set_num_threads(n)


V = 259  # ByteTokenizer: 256 bytes + <pad>, <s>, </s>


def cfg(**kw):
    base = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=4, max_seq_len=32)
    return ModelConfig(**{**base, **kw})


def block_params(D, F):
    # 2 LayerNorms (2D each) + qkv (D·3D + 3D) + attn proj (D·D + D) + fc (D·F + F) + mlp proj (F·D + D)
    return 2 * 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + (D * F + F) + (F * D + D)


@pytest.mark.parametrize("head,head_params", [("untied", V * 32 + V), ("tied", 0), ("tied_bias", V)])
def test_parameter_counts_follow_the_formulas(head, head_params):
    m = build_model(cfg(head=head))
    n = m.num_parameters()
    assert n["embedding"] == V * 32  # V·D
    assert n["head"] == head_params  # untied: W (D×V) + b; tied: shares E
    assert n["rest"] == 2 * block_params(32, 128) + 2 * 32  # blocks + final LayerNorm
    assert n["total"] == sum(p.numel() for p in m.parameters())  # nn.Module.parameters() de-duplicates too
    assert m.embedding_bytes() == (V * 32 + head_params) * 4


def test_learned_positions_count_as_rest():
    a = build_model(cfg(positional="learned")).num_parameters()["rest"]
    b = build_model(cfg(positional="rope")).num_parameters()["rest"]
    assert a - b == 32 * 32  # Tmax·D


def test_tied_head_shares_storage_and_gets_gradients_from_both_ends():
    m = build_model(cfg(head="tied"))
    assert isinstance(m.head, TiedHead) and m.head.weight_matrix() is m.embedding.weight
    ids = torch.tensor([[1, 2, 3, 4]])
    m.loss(ids, torch.tensor([[2, 3, 4, 5]])).backward()
    g = m.embedding.weight.grad
    assert g[1].abs().sum() > 0  # input side (id 1 is only an input)
    assert g[5].abs().sum() > 0  # output side (id 5 is only a target)


def test_forward_hidden_states_and_logits_are_consistent():
    m = build_model(cfg(positional="sinusoidal")).eval()
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    out = m(ids, output_hidden_states=True)
    assert out.logits.shape == (2, 3, V)
    assert len(out.hidden_states) == 1 + 2  # embedding output + every block
    torch.testing.assert_close(out.hidden_states[0], m.embedding(ids) + sinusoidal_table(3, 32))  # x_t = e_t + PE_t
    torch.testing.assert_close(out.logits, m.head(m.ln_f(out.hidden_states[-1])))
    assert m(ids).hidden_states is None


def test_loss_is_cross_entropy_of_logits():
    m = build_model(cfg()).eval()
    ids, tgt = torch.randint(0, V, (2, 7)), torch.randint(0, V, (2, 7))
    logits = m(ids).logits
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
    torch.testing.assert_close(m.loss(ids, tgt), ref)


@pytest.mark.parametrize("kind", POSITIONAL_KINDS)
def test_causal_and_fast_attention_matches_reference(kind):
    m = build_model(cfg(positional=kind)).eval()
    ids = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(1))
    fast = m(ids).logits
    changed = ids.clone()
    changed[:, 6] = (changed[:, 6] + 1) % V
    torch.testing.assert_close(m(changed).logits[:, :6], fast[:, :6])  # the future does not leak into the past
    assert not torch.allclose(m(changed).logits[:, 6:], fast[:, 6:])
    for b in m.blocks:
        b.attn.reference = True
    torch.testing.assert_close(m(ids).logits, fast, atol=1e-5, rtol=1e-4)


def test_positions_matter_except_for_none():
    # Without positions, attention sees the prefix as a set: swapping two earlier tokens leaves the last state unchanged.
    a, b = torch.tensor([[1, 2, 3, 9]]), torch.tensor([[2, 1, 3, 9]])
    for kind in ("sinusoidal", "learned", "rope", "alibi"):
        m = build_model(cfg(positional=kind, n_layers=1)).eval()
        assert not torch.allclose(m(a).logits[0, -1], m(b).logits[0, -1]), kind
    m = build_model(cfg(positional="none", n_layers=1)).eval()  # one layer: keys are the raw embeddings
    torch.testing.assert_close(m(a).logits[0, -1], m(b).logits[0, -1])


def test_build_is_deterministic_per_seed_and_composition_accepts_components():
    a, b = build_model(cfg(), seed=3), build_model(cfg(), seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = build_model(cfg(), seed=4)
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)
    emb = a.embedding
    m = Transformer(cfg(), embedding=emb, head=UntiedHead(32, V, bias=False))
    assert m.num_parameters()["head"] == 32 * V


def test_bad_configs_and_ids_raise():
    with pytest.raises(ConfigError, match="not divisible"):
        cfg(d_model=30)
    with pytest.raises(ConfigError, match="positional="):
        cfg(positional="relative")
    with pytest.raises(ConfigError, match="embedding="):
        cfg(embedding="bogus")
    with pytest.raises(ConfigError, match="vocab_size=0"):
        build_model(ModelConfig.from_name("tiny"))
    with pytest.raises(TokenIdError, match=r"\[0, 259\)"):
        build_model(cfg())(torch.tensor([[1, 300]]))
    with pytest.raises(ConfigError, match="max_seq_len=32"):
        build_model(cfg())(torch.zeros(1, 33, dtype=torch.long))
