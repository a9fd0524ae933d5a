"""z-loss (PaLM's ``c·log² Z``) in the single-process heads: the flat softmax and the adaptive softmax."""

import pytest
import torch

from tokembed.errors import ConfigError
from tokembed.heads import AdaptiveSoftmax, UntiedHead, cross_entropy


def test_flat_z_loss_is_c_log_partition_squared_per_kept_token():
    z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    t = torch.tensor([0, -100])
    lse = torch.logsumexp(z[0] / 2.0, -1)
    got = cross_entropy(z, t, z_loss=0.3, temperature=2.0) - cross_entropy(z, t, temperature=2.0)
    torch.testing.assert_close(got, 0.3 * lse**2)  # the ignored row adds nothing
    per = cross_entropy(z, t, z_loss=0.3, reduction="none")
    assert per[1] == 0


def test_z_loss_pulls_the_log_partition_toward_zero():
    head = UntiedHead(4, 10, seed=0)
    with torch.no_grad():
        head.proj.bias.fill_(3.0)  # log Z far above 0
    h, t = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), torch.arange(8)
    head.loss(h, t, z_loss=1.0).backward()
    assert head.proj.bias.grad.sum() > 0  # a step against the gradient lowers every bias, so log Z


def _manual_penalty(sm, h, t):
    rank = sm._rank()[t]
    out = []
    for n in range(len(t)):
        p = torch.logsumexp(sm._head_logits(h[n : n + 1])[0], 0) ** 2
        for k, (lo, hi) in enumerate(sm.bounds[1:]):
            if lo <= rank[n] < hi:
                p = p + torch.logsumexp(sm._tail_logits(k, h[n : n + 1])[0], 0) ** 2
        out.append(p)
    return torch.stack(out)


@pytest.mark.parametrize("kwargs", [{}, {"label_smoothing": 0.1}])
def test_adaptive_z_loss_adds_the_log_partitions_of_both_softmaxes(kwargs):
    sm = AdaptiveSoftmax(8, 20, cutoffs=[4, 10], div_value=2.0)
    h = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 3, 4, 9, 10, 19])  # shortlist, first tail, second tail
    base = sm.loss(h, t, reduction="none", **kwargs)
    got = sm.loss(h, t, reduction="none", z_loss=0.01, **kwargs) - base
    torch.testing.assert_close(got, 0.01 * _manual_penalty(sm, h, t))
    with pytest.raises(ConfigError, match="z_loss"):
        sm.loss(h, t, z_loss=-1.0)
