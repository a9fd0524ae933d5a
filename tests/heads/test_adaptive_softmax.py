"""AdaptiveSoftmax: exact full-vocabulary log-probs, fast loss, tying with AdaptiveInput, PyTorch agreement."""

import math

import pytest
import torch
from torch import nn

from tokembed.embeddings import AdaptiveInput, frequency_permutation
from tokembed.errors import ConfigError, TokenIdError
from tokembed.heads import AdaptiveSoftmax, TiedHead
from tokembed.heads.adaptive import adaptive_softmax_param_count

V, D, CUTOFFS = 60, 16, [6, 20]


def _h(n=9, d=D, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _targets(n=9, seed=1):
    return torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(seed))


def _plain_log_prob(sm: AdaptiveSoftmax, h: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Written out with the formulas only (untied): log p(v) = log softmax(H h)[...] (+ log softmax(O_k Q_k h)[...])."""
    H = sm.head.weight.double()
    out = torch.empty(h.shape[0], V, dtype=torch.float64)
    c0 = CUTOFFS[0]
    edges = [c0, *CUTOFFS[1:], V]
    for n in range(h.shape[0]):
        x = h[n].double()
        head = H @ x
        head = head - torch.logsumexp(head, 0)
        for r in range(V):
            i = int(order[r])  # tokenizer id of rank r
            if r < c0:
                out[n, i] = head[r]
            else:
                k = max(j for j in range(len(edges) - 1) if edges[j] <= r)
                Q, O = sm.tail[k][0].weight.double(), sm.tail[k][1].weight.double()
                z = O @ (Q @ x)
                out[n, i] = head[c0 + k] + z[r - edges[k]] - torch.logsumexp(z, 0)
    return out


def test_probabilities_sum_to_one_and_match_plain_reference():
    order = frequency_permutation(torch.randint(0, 100, (V,), generator=torch.Generator().manual_seed(2)))
    sm = AdaptiveSoftmax(D, V, CUTOFFS, 2.0, permutation=order)
    h = _h()
    lp = sm.log_prob(h)
    assert lp.shape == (9, V)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(9), rtol=0, atol=1e-5)
    torch.testing.assert_close(lp.double(), _plain_log_prob(sm, h, order), rtol=0, atol=1e-5)
    torch.testing.assert_close(lp, sm._reference_log_prob(h), rtol=0, atol=1e-5)
    torch.testing.assert_close(sm(h), lp)  # forward = full log-probs


def test_leading_dims_and_temperature():
    sm = AdaptiveSoftmax(D, V, CUTOFFS, 2.0, head_bias=True)
    h = _h(12).reshape(3, 4, D)
    lp = sm.log_prob(h, temperature=2.0)
    assert lp.shape == (3, 4, V)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3, 4), rtol=0, atol=1e-5)
    torch.testing.assert_close(lp, torch.log_softmax(sm(h) / 2.0, -1))  # p^{1/τ} renormalised
    with pytest.raises(ConfigError, match="temperature"):
        sm.log_prob(h, temperature=0.0)


@pytest.mark.parametrize("tied", [False, True])
def test_fast_loss_equals_gathered_log_prob(tied):
    counts = torch.randint(0, 100, (V,), generator=torch.Generator().manual_seed(3))
    if tied:
        sm = AdaptiveSoftmax(D, V, tie_with=AdaptiveInput.from_counts(counts, D, CUTOFFS, 2.0))
    else:
        sm = AdaptiveSoftmax(D, V, CUTOFFS, 2.0, permutation=frequency_permutation(counts))
    h, t = _h(), _targets()
    lp = sm.log_prob(h)
    nll = -lp.gather(1, t[:, None]).squeeze(1)
    torch.testing.assert_close(sm.loss(h, t, reduction="none"), nll, rtol=0, atol=1e-5)
    torch.testing.assert_close(sm.loss(h, t), nll.mean(), rtol=0, atol=1e-5)
    torch.testing.assert_close(sm.loss(h, t, reduction="sum"), nll.sum(), rtol=0, atol=1e-4)
    # all targets in the shortlist: no tail is evaluated, still right
    t0 = sm._rank().argsort()[:3]  # the 3 most frequent tokenizer ids
    torch.testing.assert_close(sm.loss(h[:3], t0, reduction="none"), -lp[:3].gather(1, t0[:, None]).squeeze(1))


def test_loss_ignore_index_label_smoothing_and_temperature_match_cross_entropy():
    sm = AdaptiveSoftmax(D, V, CUTOFFS, 2.0)
    h, t = _h(), _targets()
    t[[1, 4]] = -100
    lp = sm.log_prob(h)
    none = sm.loss(h, t, reduction="none")
    assert none[1] == 0 and none[4] == 0
    # cross-entropy of the log-probs (as logits) is the reference for every option
    for kw in ({}, {"label_smoothing": 0.1}, {"temperature": 1.5}, {"temperature": 0.7, "label_smoothing": 0.2}):
        tau = kw.get("temperature", 1.0)
        ref = nn.functional.cross_entropy(lp / tau, t, label_smoothing=kw.get("label_smoothing", 0.0))
        torch.testing.assert_close(sm.loss(h, t, **kw), ref, rtol=0, atol=1e-5)
    t_all = torch.full((3,), -100)
    assert math.isnan(sm.loss(h[:3], t_all).item())


def test_agrees_with_torch_adaptive_log_softmax_with_loss():
    pt = nn.AdaptiveLogSoftmaxWithLoss(D, V, CUTOFFS, div_value=2.0, head_bias=True)
    sm = AdaptiveSoftmax(D, V, CUTOFFS, 2.0, head_bias=True)
    sm.load_state_dict({k: v for k, v in pt.state_dict().items()} | {"order": sm.order, "rank": sm.rank})
    h, t = _h(), _targets()
    out = pt(h, t)
    torch.testing.assert_close(sm.log_prob(h), pt.log_prob(h), rtol=0, atol=1e-5)
    torch.testing.assert_close(sm.loss(h, t, reduction="none"), -out.output, rtol=0, atol=1e-5)
    torch.testing.assert_close(sm.loss(h, t), out.loss, rtol=0, atol=1e-5)
    # same gradients
    h1, h2 = h.clone().requires_grad_(), h.clone().requires_grad_()
    pt(h1, t).loss.backward()
    sm.loss(h2, t).backward()
    torch.testing.assert_close(h2.grad, h1.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(sm.tail[1][1].weight.grad, pt.tail[1][1].weight.grad, rtol=0, atol=1e-6)


def test_param_count_matches_formula_and_torch():
    # known answer: 4002·512 + 512·128 + 128·28000 + 512·32 + 32·96000 (issue-3 benchmark setting)
    assert adaptive_softmax_param_count(512, 128_000, [4000, 32000], 4.0) == 8_786_944
    pt = nn.AdaptiveLogSoftmaxWithLoss(D, V, CUTOFFS, div_value=2.0, head_bias=True)
    sm = AdaptiveSoftmax(D, V, CUTOFFS, 2.0, head_bias=True)
    n = sum(p.numel() for p in sm.parameters())
    assert n == sum(p.numel() for p in pt.parameters()) == adaptive_softmax_param_count(D, V, CUTOFFS, 2.0, head_bias=True)
    # tied (tie_proj): only the K = 2 cluster rows are the head's own
    inp = AdaptiveInput(V, D, CUTOFFS, 2.0)
    tied = AdaptiveSoftmax(D, V, tie_with=inp)
    own = {id(p) for p in tied.parameters()} - {id(p) for p in inp.parameters()}
    assert sum(p.numel() for p in tied.parameters() if id(p) in own) == 2 * D


def test_tied_shares_storage_and_gradients_reach_shared_tensors_from_both_ends():
    inp = AdaptiveInput.from_counts(torch.randint(0, 50, (V,), generator=torch.Generator().manual_seed(4)), D, CUTOFFS, 2.0)
    sm = AdaptiveSoftmax(D, V, tie_with=inp)
    torch.testing.assert_close(sm.weight_matrix(), inp.weight_matrix(), rtol=0, atol=0)
    ids = torch.arange(V)[None]
    order = inp.order
    # input side only
    inp(ids).sum().backward()
    g_in = [p.grad.clone() for p in inp.parameters()]
    inp.zero_grad()
    # output side only: targets spanning every cluster
    h = _h(6)
    sm.loss(h, torch.stack([order[0], order[7], order[30], order[1], order[10], order[59]])).backward()
    g_out = [p.grad.clone() for p in inp.parameters()]
    assert all(g.abs().sum() > 0 for g in g_in) and all(g.abs().sum() > 0 for g in g_out)
    inp.zero_grad()
    sm.zero_grad()
    # both ends: gradients add
    (inp(ids).sum() + sm.loss(h, torch.stack([order[0], order[7], order[30], order[1], order[10], order[59]]))).backward()
    for p, a, b in zip(inp.parameters(), g_in, g_out):
        torch.testing.assert_close(p.grad, a + b)


def test_tied_matches_a_flat_computation_from_the_input_tables():
    inp = AdaptiveInput(V, D, CUTOFFS, 2.0)
    sm = AdaptiveSoftmax(D, V, tie_with=inp, head_bias=True)
    with torch.no_grad():
        sm.head_bias.normal_()
    h = _h()
    W = inp.weight_matrix()  # (V, D), identity order: effective output rows
    z = h @ W.T  # within-cluster logits
    head = torch.cat([z[:, :6], sm.cluster(h)], -1) + sm.head_bias
    head = head.log_softmax(-1)
    ref = torch.cat([head[:, :6], z[:, 6:20].log_softmax(-1) + head[:, 6:7], z[:, 20:].log_softmax(-1) + head[:, 7:8]], -1)
    torch.testing.assert_close(sm.log_prob(h), ref, rtol=0, atol=1e-5)


def test_untied_proj_option_and_tied_head_consistency():
    inp = AdaptiveInput(V, D, CUTOFFS, 2.0)
    sm = AdaptiveSoftmax(D, V, tie_with=inp, tie_proj=False)
    assert len(sm.tail_proj) == 2
    torch.testing.assert_close(sm.log_prob(_h()).exp().sum(-1), torch.ones(9), rtol=0, atol=1e-5)
    h, t = _h(), _targets()
    torch.testing.assert_close(sm.loss(h, t, reduction="none"), -sm.log_prob(h).gather(1, t[:, None]).squeeze(1), rtol=0, atol=1e-5)
    # a TiedHead on the same AdaptiveInput gives a flat softmax over the same effective rows
    torch.testing.assert_close(TiedHead(inp)(h), h @ inp.weight_matrix().T)


def test_bad_input():
    inp = AdaptiveInput(V, D, CUTOFFS, 2.0)
    with pytest.raises(ConfigError, match="cutoffs"):
        AdaptiveSoftmax(D, V, [5, 20], tie_with=inp)
    with pytest.raises(ConfigError, match="factor"):
        AdaptiveSoftmax(D, V, div_value=4.0, tie_with=inp)
    with pytest.raises(ConfigError, match="same V and D"):
        AdaptiveSoftmax(D, V + 1, tie_with=inp)
    with pytest.raises(ConfigError, match="AdaptiveInput"):
        AdaptiveSoftmax(D, V, tie_with=nn.Embedding(V, D))
    with pytest.raises(ConfigError, match="needs cutoffs"):
        AdaptiveSoftmax(D, V)
    sm = AdaptiveSoftmax(D, V, CUTOFFS, 2.0)
    with pytest.raises(TokenIdError, match=r"\[0, 60\)"):
        sm.loss(_h(2), torch.tensor([3, 60]))
    with pytest.raises(ConfigError, match="leading shape"):
        sm.loss(_h(2), torch.tensor([3]))
    with pytest.raises(ConfigError, match="reduction"):
        sm.loss(_h(2), torch.tensor([3, 4]), reduction="avg")


def test_fused_nll_matches_autograd_cross_entropy():
    from tokembed.heads.adaptive import _nll, _reference_nll

    z = torch.randn(7, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0, 3, 10, 3, 5, 1, 9])
    assert torch.autograd.gradcheck(lambda x: _nll(x, t), (z.clone().requires_grad_(),))
    z1, z2 = z.float().requires_grad_(), z.float().requires_grad_()
    w = torch.rand(7, generator=torch.Generator().manual_seed(6)) - 0.3  # any upstream gradient, negative too
    (_nll(z1, t) * w).sum().backward()
    (_reference_nll(z2, t) * w).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(_nll(z1, t), _reference_nll(z2, t))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    inp = AdaptiveInput.from_counts(torch.randint(0, 50, (V,), generator=torch.Generator().manual_seed(4)), D, CUTOFFS, 2.0)
    sm = AdaptiveSoftmax(D, V, tie_with=inp)
    ids = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(8))
    t = torch.roll(ids, -1, 1)
    ref = sm.loss(inp(ids), t)
    inp_c, sm_c = inp.cuda(), sm.cuda()
    out = sm_c.loss(inp_c(ids.cuda()), t.cuda())
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sm_c.log_prob(inp_c(ids.cuda())).exp().sum(-1).cpu(), torch.ones(2, 5), rtol=0, atol=1e-5)
