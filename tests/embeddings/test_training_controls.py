"""freeze / freeze_rows / embedding_param_groups."""

import pytest
import torch
from torch import nn

from tokembed.embeddings import TokenEmbedding, embedding_param_groups, freeze, freeze_rows, unfreeze
from tokembed.errors import ConfigError
from tokembed.heads import TiedHead, UntiedHead

V, D = 12, 4


def _train_steps(emb, head, opt, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, V, (3, 5), generator=g)
        loss = head.loss(emb(ids), torch.randint(0, V, (3, 5), generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_gradient_mask_alone_is_not_enough_under_adamw():
    """The failure freeze_rows exists for: zero gradient, but decay + old momentum still move the row."""
    emb = TokenEmbedding(V, D, seed=1)
    head = TiedHead(emb)
    opt = torch.optim.AdamW(emb.parameters(), lr=0.05, weight_decay=0.1)
    _train_steps(emb, head, opt, 3)  # rows build up momentum
    before = emb.weight.detach()[[2, 5]].clone()
    h = emb.weight.register_hook(lambda g: g.index_fill(0, torch.tensor([2, 5]), 0.0))
    _train_steps(emb, head, opt, 3, seed=1)
    h.remove()
    assert not torch.equal(emb.weight.detach()[[2, 5]], before)


@pytest.mark.parametrize("opt_kind", ["adamw", "adamw-foreach-off", "sgd-momentum"])
def test_frozen_rows_stay_bit_identical_with_momentum_and_decay(opt_kind):
    emb = TokenEmbedding(V, D, seed=1)
    head = TiedHead(emb, bias=True)  # tied: the head also updates E
    params = list(emb.parameters()) + [head.bias]
    if opt_kind == "sgd-momentum":
        opt = torch.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=0.1)
    else:
        opt = torch.optim.AdamW(params, lr=0.05, weight_decay=0.1, foreach=opt_kind == "adamw")
    _train_steps(emb, head, opt, 3)  # rows 2 and 5 have momentum now
    assert opt.state[emb.weight]["exp_avg" if opt_kind != "sgd-momentum" else "momentum_buffer"][[2, 5]].abs().sum() > 0
    rows = [2, 5]
    handle = freeze_rows(emb, rows)
    frozen = emb.weight.detach()[rows].clone()
    others = emb.weight.detach().clone()
    _train_steps(emb, head, opt, 4, seed=2)
    assert torch.equal(emb.weight.detach()[rows], frozen)  # bit-identical
    moved = [i for i in range(V) if i not in rows and not torch.equal(emb.weight[i].detach(), others[i])]
    assert len(moved) >= V - 3  # the other rows still train
    handle.remove()
    _train_steps(emb, head, opt, 1, seed=3)
    assert not torch.equal(emb.weight.detach()[rows], frozen)  # unfrozen: they train again


def test_frozen_rows_get_zero_gradient_and_optimizer_created_later():
    emb = TokenEmbedding(V, D)
    handle = freeze_rows(emb, torch.tensor([0, 0, 7]))
    assert handle.rows.tolist() == [0, 7]
    emb(torch.tensor([[0, 7, 3]])).sum().backward()
    assert emb.weight.grad[[0, 7]].abs().sum() == 0 and emb.weight.grad[3].abs().sum() > 0
    before = emb.weight.detach()[[0, 7]].clone()
    opt = torch.optim.Adam(emb.parameters(), lr=0.1, weight_decay=0.3)  # coupled L2 decay
    for _ in range(3):
        opt.step()
    assert torch.equal(emb.weight.detach()[[0, 7]], before)
    handle.remove()


def test_freeze_rows_bad_input():
    emb = TokenEmbedding(V, D)
    with pytest.raises(ConfigError, match=r"rows \[12\] are outside \[0, 12\)"):
        freeze_rows(emb, [1, 12])
    with pytest.raises(ConfigError, match="integer row ids"):
        freeze_rows(emb, torch.tensor([1.0]))
    with pytest.raises(ConfigError, match="needs a module with a 'weight' parameter"):
        freeze_rows(nn.ReLU(), [0])


def test_freeze_and_unfreeze_module():
    emb = TokenEmbedding(V, D)
    opt = torch.optim.AdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
    freeze(emb)
    before = emb.weight.detach().clone()
    opt.step()  # no gradient: AdamW skips the parameter, no decay either
    assert torch.equal(emb.weight.detach(), before) and not emb.weight.requires_grad
    assert unfreeze(emb).weight.requires_grad


class _Tiny(nn.Module):
    def __init__(self, tied: bool):
        super().__init__()
        self.emb = TokenEmbedding(V, D)
        self.pos = nn.Embedding(8, D)
        self.block = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D, bias=False))
        self.norm = nn.LayerNorm(D)
        self.head = TiedHead(self.emb) if tied else UntiedHead(D, V, bias=True)


def _names(groups, model):
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    return {g["name"]: sorted(names[id(p)] for p in g["params"]) for g in groups}


def test_param_groups_known_answer_untied():
    m = _Tiny(tied=False)
    groups = embedding_param_groups(m, lr=1e-3, weight_decay=0.1, embedding_lr=1e-2, head_lr=5e-4)
    assert _names(groups, m) == {
        "embedding": ["emb.weight", "pos.weight"],
        "head": ["head.proj.weight"],
        "head.no_decay": ["head.proj.bias"],
        "other": ["block.0.weight", "block.2.weight"],
        "other.no_decay": ["block.0.bias", "norm.bias", "norm.weight"],
    }
    by = {g["name"]: (g["lr"], g["weight_decay"]) for g in groups}
    assert by == {
        "embedding": (1e-2, 0.0),
        "head": (5e-4, 0.1),
        "head.no_decay": (5e-4, 0.0),
        "other": (1e-3, 0.1),
        "other.no_decay": (1e-3, 0.0),
    }
    n_params = sum(p.numel() for g in groups for p in g["params"])
    assert n_params == sum(p.numel() for p in m.parameters())


def test_param_groups_tied_param_listed_once_and_adamw_accepts_them():
    m = _Tiny(tied=True)
    groups = embedding_param_groups(m, lr=1e-3, weight_decay=0.1)
    all_params = [p for g in groups for p in g["params"]]
    assert len(all_params) == len({id(p) for p in all_params}) == len(list(m.parameters()))
    assert "head" not in _names(groups, m)  # the tied table is in the embedding group
    torch.optim.AdamW(groups)  # raises if a parameter appeared in two groups
    freeze(m.pos)
    assert "pos.weight" not in _names(embedding_param_groups(m, lr=1e-3, weight_decay=0.1), m)["embedding"]


def test_param_groups_bare_embedding():
    emb = TokenEmbedding(V, D)
    assert [g["name"] for g in embedding_param_groups(emb, lr=1.0, weight_decay=0.1)] == ["embedding"]


def test_frozen_rows_follow_a_dtype_change_of_the_module():
    emb = TokenEmbedding(V, D)
    handle = freeze_rows(emb, [4])
    saved = emb.weight.detach()[4].clone()
    emb.double()  # same Parameter object, new storage: the saved rows are converted on the next restore
    opt = torch.optim.AdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
    emb(torch.tensor([[4, 5]])).sum().backward()
    opt.step()
    assert emb.weight.dtype == torch.float64 and torch.equal(emb.weight.detach()[4], saved.double())
    handle.remove()


@pytest.mark.cuda
def test_frozen_rows_on_cuda(cuda_device):
    emb = TokenEmbedding(V, D).to(cuda_device)
    handle = freeze_rows(emb, [1])
    saved = emb.weight.detach()[1].clone()
    opt = torch.optim.AdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
    emb(torch.tensor([[1, 2]], device=cuda_device)).sum().backward()
    opt.step()
    assert torch.equal(emb.weight.detach()[1], saved)
    handle.remove()
