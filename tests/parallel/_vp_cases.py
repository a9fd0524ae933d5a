"""Cases shared by the vocab-parallel worker (run under gloo) and the single-process reference in the tests.

Each case is a tiny model ``embedding -> tanh(Linear) -> head -> cross-entropy`` with fixed
weights, ids and targets that depend only on the case and the world size (so every rank and
the reference build the same data).

V = 300 pads to 384 over 2 ranks (shards of 192: 192 + 108 real rows) and to 512 over 4 (shards
of 128: 128, 128, 44 real rows and one shard of padding only).
"""

import torch
from torch import nn

from tokembed.embeddings import TokenEmbedding
from tokembed.heads import TiedHead, UntiedHead
from tokembed.model import ModelConfig, build_model
from tokembed.parallel import VocabShard

V, D, B, T = 300, 16, 2, 12
PAD_VALUE = 1e3  # written into padded rows on every rank: a leak into the loss would be obvious

CASES = {
    "untied": dict(tied=False, bias=True, opts={}),
    "tied": dict(tied=True, bias=False, opts={}),
    "tied_bias_options": dict(tied=True, bias=True, opts=dict(label_smoothing=0.1, temperature=1.7, z_loss=1e-3)),
    "untied_options_ignored": dict(tied=False, bias=True, opts=dict(label_smoothing=0.2, temperature=0.5, z_loss=1e-4), ignore=True),
    "shard_edges": dict(tied=True, bias=True, opts=dict(label_smoothing=0.05), edges=True),
    "targets_on_rank0_only": dict(tied=False, bias=True, opts=dict(z_loss=1e-4), rank0_targets=True),
}


def edge_ids(world: int) -> list[int]:
    """0, V-1 and, for every shard, its first row, its last real row and the row before it."""
    out = {0, V - 1}
    for r in range(world):
        s = VocabShard.build(V, rank=r, world_size=world)
        if s.n_valid:
            out |= {s.lo, s.lo + s.n_valid - 1, max(0, s.lo - 1)}
    return sorted(out)


def case_data(name: str, world: int) -> dict:
    c = CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    ids = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    if c.get("edges"):
        e = torch.tensor(edge_ids(world))
        ids = e[torch.arange(B * T) % len(e)].reshape(B, T)
        targets = e.flip(0)[torch.arange(B * T) % len(e)].reshape(B, T)
    if c.get("rank0_targets"):
        targets = torch.randint(0, VocabShard.build(V, rank=0, world_size=world).n_valid, (B, T), generator=g)
    if c.get("ignore"):
        targets[0, ::3] = -100
    return dict(
        ids=ids,
        targets=targets,
        E=torch.randn(V, D, generator=g) * 0.5,
        W=torch.randn(V, D, generator=g) * 0.5,
        b=torch.randn(V, generator=g) * 0.1,
        L=torch.randn(D, D, generator=g) * 0.3,
        c=torch.randn(D, generator=g) * 0.1,
    )


def body(data: dict) -> nn.Linear:
    lin = nn.Linear(D, D)
    with torch.no_grad():
        lin.weight.copy_(data["L"])
        lin.bias.copy_(data["c"])
    return lin


def reference(name: str, world: int) -> dict:
    """Loss, logits and every gradient of the single-process model (tokembed's own heads)."""
    c, data = CASES[name], case_data(name, world)
    emb = TokenEmbedding(V, D)
    with torch.no_grad():
        emb.weight.copy_(data["E"])
    lin = body(data)
    if c["tied"]:
        head = TiedHead(emb, bias=c["bias"])
    else:
        head = UntiedHead(D, V, bias=c["bias"])
        with torch.no_grad():
            head.proj.weight.copy_(data["W"])
    if c["bias"]:
        with torch.no_grad():
            (head.bias if c["tied"] else head.proj.bias).copy_(data["b"])
    h = torch.tanh(lin(emb(data["ids"])))
    h.retain_grad()
    loss = head.loss(h, data["targets"], **c["opts"])
    loss.backward()
    out = dict(loss=loss.detach(), logits=head(h).detach(), h=h.grad, emb=emb.weight.grad, lin_w=lin.weight.grad, lin_b=lin.bias.grad)
    if not c["tied"]:
        out["head_w"] = head.proj.weight.grad
    if c["bias"]:
        out["head_b"] = (head.bias if c["tied"] else head.proj.bias).grad
    return out



# ---------------------------------------------------------------- a whole Transformer, trained a few steps
MODEL_CASES = {"transformer_tied_bias": "tied_bias", "transformer_untied": "untied"}
MODEL_STEPS = 3


def model_config(name: str) -> ModelConfig:
    return ModelConfig(vocab_size=V, d_model=D, n_layers=1, n_heads=2, max_seq_len=16, head=MODEL_CASES[name])


def model_batches(name: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    return [torch.randint(0, V, (B, 9), generator=g) for _ in range(MODEL_STEPS)]


def train(model, name: str) -> list[torch.Tensor]:
    """MODEL_STEPS AdamW steps on the case's batches; the loss of each step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    losses = []
    for ids in model_batches(name):
        loss = model.loss(ids[:, :-1], ids[:, 1:], label_smoothing=0.1, z_loss=1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses


def reference_model(name: str) -> dict:
    """Per-step losses and the final embedding/head tables of the single-process build_model."""
    model = build_model(model_config(name), seed=0)
    losses = train(model, name)
    out = {"losses": torch.stack(losses), "emb": model.embedding.weight.detach()}
    if MODEL_CASES[name] == "untied":
        out |= {"head_w": model.head.proj.weight.detach(), "head_b": model.head.proj.bias.detach()}
    else:
        out["head_b"] = model.head.bias.detach()
    return out
