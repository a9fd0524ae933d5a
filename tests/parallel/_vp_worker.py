"""One rank of the vocab-parallel tests: ``python _vp_worker.py OUT CASE[,CASE...]`` under the env:// variables.

Builds each case's model from ``_vp_cases`` with the vocab-parallel layers, runs loss + backward,
and saves (per rank) the loss, the gathered logits, every gathered gradient and the gradient of
this rank's padding rows to ``OUT/<case>.<rank>.safetensors``.
"""

import os
import sys

import torch
from safetensors.torch import save_file

from _gloo_rank import exit_rank, gloo_group
from _vp_cases import CASES, MODEL_CASES, PAD_VALUE, V, D, body, build_model, case_data, model_config, train
from tokembed.parallel import VocabParallelEmbedding, VocabParallelHead, vocab_parallel_cross_entropy
from tokembed.model import Transformer
from tokembed.parallel.embedding import gather_rows


def run_case(name: str, world: int) -> dict:
    c, data = CASES[name], case_data(name, world)
    emb = VocabParallelEmbedding(V, D).load_full_(data["E"])
    head = VocabParallelHead(D, V, tie_to=emb if c["tied"] else None, bias=c["bias"])
    head.load_full_(None if c["tied"] else data["W"], data["b"] if c["bias"] else None)
    s = emb.shard
    with torch.no_grad():  # poison the padding rows: masking must keep them out of everything
        emb.weight[s.n_valid :] = PAD_VALUE
        head.weight[s.n_valid :] = PAD_VALUE
        if head.bias is not None:
            head.bias[s.n_valid :] = PAD_VALUE
    lin = body(data)
    h = torch.tanh(lin(emb(data["ids"])))
    h.retain_grad()
    loss = head.loss(h, data["targets"], **c["opts"])  # the fused projection + loss
    loss.backward()
    with torch.no_grad():
        logits = head.gather_logits(h)
    out = dict(loss=loss.detach(), logits=logits, h=h.grad, lin_w=lin.weight.grad, lin_b=lin.bias.grad)
    out["emb"] = gather_rows(emb.weight.grad, s)
    pads = [emb.weight.grad[s.n_valid :]]
    if not c["tied"]:
        out["head_w"] = gather_rows(head.weight.grad, s)
        pads.append(head.weight.grad[s.n_valid :])
    if c["bias"]:
        out["head_b"] = gather_rows(head.bias.grad, s)
        pads.append(head.bias.grad[s.n_valid :])
    out["pad_grad_abs_sum"] = torch.stack([p.abs().sum() for p in pads]).sum().reshape(1)
    out["pad_rows"] = torch.tensor([s.rows - s.n_valid])
    # after every parameter gradient was read (this pass adds to them)
    h2 = h.detach().requires_grad_(True)  # the unfused loss on the local logits: same loss and dL/dh
    loss2 = vocab_parallel_cross_entropy(head(h2), data["targets"], s, **c["opts"])
    loss2.backward()
    unfused = dict(loss=loss2.detach(), h=h2.grad)
    out |= {f"unfused_{k}": v for k, v in unfused.items()}
    return {k: v.contiguous() for k, v in out.items()}


def run_model(name: str) -> dict:
    """The single-process model's weights moved into vocab-parallel layers, then trained the same steps."""
    ref = build_model(model_config(name), seed=0)  # same seed on every rank: the starting point
    emb = VocabParallelEmbedding(V, D).load_full_(ref.embedding.weight.detach())
    tied = MODEL_CASES[name] != "untied"
    head = VocabParallelHead(D, V, tie_to=emb if tied else None, bias=True)
    if tied:
        head.load_full_(None, ref.head.bias.detach())
    else:
        head.load_full_(ref.head.proj.weight.detach(), ref.head.proj.bias.detach())
    model = Transformer(ref.config, embedding=emb, head=head)
    model.blocks.load_state_dict(ref.blocks.state_dict())
    model.ln_f.load_state_dict(ref.ln_f.state_dict())
    out = {"losses": torch.stack(train(model, name)), "emb": gather_rows(emb.weight, emb.shard), "head_b": gather_rows(head.bias, head.shard)}
    if not tied:
        out["head_w"] = gather_rows(head.weight, head.shard)
    return out


def main() -> None:
    out_dir, names = sys.argv[1], sys.argv[2].split(",")
    with gloo_group() as (rank, world):
        for name in names:
            result = run_model(name) if name in MODEL_CASES else run_case(name, world)
            save_file({k: v.contiguous() for k, v in result.items()}, os.path.join(out_dir, f"{name}.{rank}.safetensors"))


if __name__ == "__main__":
    main()
    exit_rank()
