import pytest
import torch

from tokembed.embeddings.positional import POSITIONAL_KINDS, sinusoidal_table
from tokembed.errors import ConfigError, TokenIdError
from tokembed.heads import TiedHead, UntiedHead
from tokembed.model import ModelConfig, Transformer, build_model

from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


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


@pytest.mark.parametrize("head", ["untied", "tied"])
def test_factorized_and_hashed_designs_plug_in(head):
    m = build_model(cfg(embedding="factorized", rank=8, head=head))
    n = m.num_parameters()
    assert n["embedding"] == V * 8 + 8 * 32  # V·r + r·D
    assert n["head"] == (V * 32 + V if head == "untied" else 0)
    ids = torch.tensor([[1, 2, 3]])
    assert m(ids).logits.shape == (1, 3, V)
    m = build_model(cfg(embedding="hashed", head=head, extra={"num_buckets": 16, "num_hashes": 2}))
    assert m.num_parameters()["embedding"] == 16 * 32 + V * 2  # n_b·D buckets + V·k importance weights
    with pytest.raises(ConfigError, match="model.rank"):
        build_model(cfg(embedding="factorized"))


def test_type_dropout_drops_whole_types_in_training_only():
    m = build_model(cfg(positional="none"), embedding_dropout=0.5)
    ids = torch.tensor([[4, 4, 4, 4, 9, 9, 9, 9] * 4])
    torch.manual_seed(0)
    x = m.hidden(ids, output_hidden_states=True).hidden_states[0][0]  # (T, D)
    e = m.embedding(ids)[0]
    scale = (x / e)[:, 0]  # 0 (dropped) or 1/(1-p) = 2 per position
    assert set(scale[ids[0] == 4].tolist()) in ({0.0}, {2.0}) and set(scale[ids[0] == 9].tolist()) in ({0.0}, {2.0})
    m.eval()
    torch.testing.assert_close(m.hidden(ids, output_hidden_states=True).hidden_states[0], m.embedding(ids))


def test_adaptive_input_and_softmax_designs():
    from tokembed.embeddings.adaptive import adaptive_param_count
    from tokembed.heads.adaptive import adaptive_softmax_param_count

    counts = torch.arange(V)  # id V-1 is the most frequent
    for head in ("adaptive", "adaptive_tied", "tied", "untied"):
        m = build_model(cfg(embedding="adaptive", head=head, cutoffs=[16, 64]), token_counts=counts).eval()
        n = m.num_parameters()
        assert n["embedding"] == adaptive_param_count(V, 32, [16, 64], 4.0)  # Σ n_k·d_k + Σ d_k·D
        if head == "adaptive":
            assert n["head"] == adaptive_softmax_param_count(32, V, [16, 64], 4.0, head_bias=True)
        ids = torch.tensor([[V - 1, 3, 100, 7]])
        lp = m.head.log_prob(m.hidden(ids).last_hidden)  # (1, T, V)
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(1, 4))
        tgt = torch.tensor([[3, 100, 7, V - 1]])
        ref = -lp.gather(-1, tgt[..., None]).mean()
        torch.testing.assert_close(m.loss(ids, tgt), ref, atol=1e-5, rtol=1e-5)
    assert m.embedding.order[0].item() == V - 1  # frequency order from the counts
    with pytest.raises(ConfigError, match="embedding='adaptive'"):
        build_model(cfg(head="adaptive_tied"))
